"""Schemathesis fuzzes the API from its own OpenAPI document: no response is a 500, every
status code and body matches the schema, every response carries the security headers.
Each operation is called with a token of a role allowed to make it (so the fuzzing
reaches the handlers), plus a share with no token."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.api.app import create_app
from tests.support.api import auth, small_ledger, token_book

ROLE_OF_TAG = {
    "finance": "finance",
    "finance commands": "finance",
    "dead letters": "finance",
    "auditor": "auditor",
    "publisher": "publisher",
    "sharer": "sharer",
}
SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")


@schemathesis.check
def carries_security_headers(ctx, response, case) -> None:
    """Every response, whatever the input, carries the edge's headers (ledger/api/edge.py)."""
    have = {name.lower() for name in response.headers}
    missing = [h for h in SECURITY_HEADERS if h not in have]
    if missing:
        raise AssertionError(f"{case.operation.label}: no {', '.join(missing)}")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    carries_security_headers,
]


# Built at import: schemathesis parametrizes from a loaded schema (its lazy fixture loader
# does not work with this pytest). A small SQLite ledger in a directory removed at exit.
_DIR = Path(tempfile.mkdtemp(prefix="ledger-fuzz-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(small_ledger(_DIR / "ledger.sqlite", orders=60), token_book()),
)


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_the_api_never_fails_and_matches_its_schema(case) -> None:
    tags = case.operation.definition.raw.get("tags", [])
    role = ROLE_OF_TAG[tags[0]]
    case.call_and_validate(headers=auth(role), checks=CHECKS)


@schema.parametrize()
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_without_a_token_every_operation_says_401(case) -> None:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    response = case.call()
    if case.method.upper() == case.operation.method.upper():  # not a probe of another method
        assert response.status_code == 401, (case.operation.label, response.text)
    case.validate_response(response, checks=CHECKS)
