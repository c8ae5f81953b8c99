"""The migration runs down to nothing and back up again on both backends."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import schema
from ledger.store.opening import alembic_config, open_store, run_migrations
from ledger.store.verify import verify
from tests.support import reads as queries
from tests.support.roles import as_owner


def test_downgrade_to_base_then_upgrade_again(db_url: str) -> None:
    store = open_store(as_owner(db_url))  # migrations are the owner's
    config = alembic_config()
    with store.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with store.engine.connect() as conn:
        left = set(inspect(conn).get_table_names()) & set(schema.metadata.tables)
    assert left == set()
    run_migrations(store)
    with store.engine.connect() as conn:
        assert set(schema.metadata.tables) <= set(inspect(conn).get_table_names())
    store.dispose()


def test_upgrade_of_a_written_ledger_keeps_it_valid_and_its_answers(empty_db_url: str) -> None:
    """A ledger written at the revision before 0007 (which reshapes ix_postings_account),
    then upgraded: it still verifies, with the same head, and every balance read through
    the reshaped index (as of now and as of an earlier time) is what it was."""
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0007").down_revision
    assert isinstance(before, str)
    store = open_store(empty_db_url, migrate=False)
    run_migrations(store, before)
    events = generate(seed=5, sharers=12, buyers=30, orders=60).all()
    service = LedgerService(store, clock=lambda: 1_800_000_000_000)
    for start in range(0, len(events), 50):  # several batches, over two chains
        chain = f"c{start // 50 % 2}"
        batch = events[start : start + 50]
        service.ingest([Received(e, f"m:{start + i}", chain) for i, e in enumerate(batch)])
    middle = events[len(events) // 2].occurred_at

    def answers() -> tuple[object, ...]:
        return (
            queries.sharer_balances(store),
            queries.sharer_balances(store, as_of=middle),
            queries.sharer_balances(store, sharer_id="u00003", as_of=middle),
            queries.account_balances(store),
        )

    old = answers()
    old_report = verify(store)
    assert old_report.ok, old_report
    assert any(b.pending or b.available for b in old[0])  # the stream did pay commissions

    run_migrations(store)
    report = verify(store)
    assert report.ok, report
    assert report.head == old_report.head
    assert answers() == old
    with store.engine.connect() as conn:
        columns = {
            index["name"]: index["column_names"] for index in inspect(conn).get_indexes("postings")
        }
    assert columns["ix_postings_account"] == ["account"]
    store.dispose()
