"""Which database URL each command uses: the service's is LEDGER_DB_URL, the
owner's LEDGER_MIGRATE_DB_URL (migrate only), and migrate grants the service's role."""

from __future__ import annotations

import pytest

from ledger.commands.migrate import _service_role
from ledger.config import load_settings

OWNER = "postgresql+psycopg2://ledger_owner:o@127.0.0.1:55432/ledger"
SERVICE = "postgresql+psycopg2://ledger_service:s@127.0.0.1:55432/ledger"


def test_the_owner_url_is_a_setting_of_its_own() -> None:
    settings = load_settings({"LEDGER_DB_URL": SERVICE, "LEDGER_MIGRATE_DB_URL": OWNER})
    assert (settings.db_url, settings.migrate_db_url) == (SERVICE, OWNER)
    assert load_settings({}).migrate_db_url == ""  # none: migrate falls back to --db/DB_URL


@pytest.mark.parametrize(
    ("owner", "service", "granted"),
    [
        (OWNER, SERVICE, ("ledger_service",)),
        (OWNER, OWNER, ()),  # the same role: nothing to grant
        (OWNER, SERVICE.replace("/ledger", "/other"), ()),  # another database
        (OWNER, SERVICE.replace("55432", "5432"), ()),  # another server
        (OWNER, "sqlite:///ledger.sqlite", ()),
        ("sqlite:///ledger.sqlite", "sqlite:///ledger.sqlite", ()),
        (OWNER, "not a url", ()),
    ],
)
def test_migrate_grants_the_service_role_of_the_same_database(
    owner: str, service: str, granted: tuple[str, ...]
) -> None:
    assert _service_role(owner, service) == granted
