"""The dead letter page and its "Correct and resubmit" form over HTTP (the browser test is
test_dashboard_redrive_browser.py): preview, submit, the redrive shown with its diff; the
form's CSRF token and origin checked; an auditor reads the redrive but cannot POST."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger.api.app import create_app
from ledger.domain.events import RefundIssued, RefundLine
from ledger.store.opening import open_store
from ledger.web import pages
from tests.support.api import (
    DAY,
    TOKENS,
    auth,
    built_world,
    dashboard_login,
    ledger_counts,
    publish,
    token_book,
)

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, int]:
    return built_world(tmp_path_factory.mktemp("dash-redrive"))


@pytest.fixture
def site(world, tmp_path) -> Iterator[tuple[TestClient, int]]:
    """A dashboard over a copy of the world with one dead letter (a typo'd refund line)."""
    copy = tmp_path / "ledger.sqlite"
    copy.write_bytes(world[0].read_bytes())
    store = open_store(f"sqlite:///{copy}")
    with TestClient(pages.mount(create_app(store, token_book()))) as http:
        refund = RefundIssued(
            "ev-refund-typo",
            world[1] - DAY,
            "shop",
            refund_id="rf-1",
            order_id="o-old",
            buyer_id="b1",
            lines=(RefundLine("lI", 40_000),),
        )
        assert publish(http, refund).json()["reason"] == "unknown_line"
        [dead] = http.get("/api/v1/dead-letters", headers=auth("finance")).json()["items"]
        yield http, dead["id"]
    store.dispose()


def _signed_in(http: TestClient, role: str) -> None:
    assert dashboard_login(http, TOKENS[role]).status_code == 303


def _form_token(http: TestClient, dead_id: int) -> str:
    page = http.get(f"/dashboard/dead-letters/{dead_id}")
    tokens = CSRF.findall(page.text)
    assert tokens, page.text
    return tokens[-1]  # the redrive form's (the first is the sign-out form's)


def _post(http: TestClient, dead_id: int, data: dict[str, str], origin: str | None = None):
    return http.post(
        f"/dashboard/dead-letters/{dead_id}/redrive",
        data=data,
        headers={"Origin": origin or "http://testserver"},
        follow_redirects=False,
    )


def test_preview_then_submit_shows_the_redrive_and_its_diff(site) -> None:
    http, dead_id = site
    _signed_in(http, "finance")
    page = http.get(f"/dashboard/dead-letters/{dead_id}")
    assert 'id="redrive-form"' in page.text and "&#34;lI&#34;" in page.text  # prefilled
    assert '"event_id"' not in page.text.split('id="event"')[1].split("</textarea>")[0]
    token = _form_token(http, dead_id)
    fixed = page.text.split('id="event"')[1].split(">", 1)[1].split("</textarea>")[0]
    fixed = fixed.replace("&#34;", '"').replace('"lI"', '"l1"')
    counts = ledger_counts(http.app.state.store)
    preview = _post(http, dead_id, {"csrf": token, "event": fixed, "action": "preview"})
    assert preview.status_code == 200 and 'id="preview"' in preview.text
    assert "/lines/0/line_id" in preview.text
    assert ledger_counts(http.app.state.store) == counts  # a preview writes nothing
    done = _post(http, dead_id, {"csrf": token, "event": fixed, "action": "submit"})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/dashboard/dead-letters/{dead_id}?submitted=applied"
    shown = http.get(done.headers["location"]).text
    api = http.get(f"/api/v1/dead-letters/{dead_id}", headers=auth("auditor")).json()
    assert api["redrive"]["outcome"] == "applied"
    assert f'id="redrive-by">{api["redrive"]["by"]}<' in shown
    assert api["redrive"]["event_id"] in shown and 'id="redrive-changes"' in shown
    assert 'href="/dashboard/orders/o-old"' in shown  # the refunded order's page
    assert 'id="redrive-form"' not in shown  # redriven once


def test_the_form_is_refused_without_its_token_or_from_another_site(site) -> None:
    http, dead_id = site
    _signed_in(http, "finance")
    token = _form_token(http, dead_id)
    counts = ledger_counts(http.app.state.store)
    body = {"event": '{"type": "refund_issued"}', "action": "submit"}
    assert _post(http, dead_id, body).status_code == 403
    assert _post(http, dead_id, {**body, "csrf": "0" * 64}).status_code == 403
    other = _post(http, dead_id, {**body, "csrf": token}, origin="https://evil.example")
    assert other.status_code == 403
    assert ledger_counts(http.app.state.store) == counts
    bad = _post(http, dead_id, {"csrf": token, "event": "{not json", "action": "submit"})
    assert bad.status_code == 422 and 'id="error"' in bad.text
    wrong_type = _post(
        http, dead_id, {"csrf": token, "event": '{"type": "payout_settled"}', "action": "submit"}
    )
    assert wrong_type.status_code == 422
    assert ledger_counts(http.app.state.store) == counts
    assert http.get("/dashboard/dead-letters/999999").status_code == 404
    assert http.get("/dashboard/dead-letters/x1").status_code == 400


def test_an_auditor_reads_but_cannot_post(site) -> None:
    http, dead_id = site
    _signed_in(http, "auditor")
    page = http.get(f"/dashboard/dead-letters/{dead_id}")
    assert page.status_code == 200 and 'id="redrive-form"' not in page.text
    assert 'id="not-redriven"' in page.text
    # the token the form would carry for this session (the auditor's page has no form)
    token = hmac.new(TOKENS["auditor"].encode(), b"redrive", hashlib.sha256).hexdigest()
    counts = ledger_counts(http.app.state.store)
    refused = _post(http, dead_id, {"csrf": token, "event": "{}", "action": "submit"})
    assert refused.status_code == 403 and "Only finance" in refused.text
    assert ledger_counts(http.app.state.store) == counts


def test_the_list_shows_the_redrive_column_and_what_is_left(site) -> None:
    http, dead_id = site
    _signed_in(http, "finance")
    listing = http.get("/dashboard/dead-letters")
    assert f'href="/dashboard/dead-letters/{dead_id}"' in listing.text
    assert "correct</a>" in listing.text
    left = http.get("/dashboard/dead-letters?redriven=false")
    assert f'data-id="{dead_id}"' in left.text
