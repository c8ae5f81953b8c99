"""The descriptors of stored reference data (ledger/store/refdata.py): the state loader,
the writer and verify's replay all go through them, so each must map every column, round
trip its model exactly, and agree with what the schema and the grants allow."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger.domain.engine import Applied
from ledger.domain.events import OrderCompleted
from ledger.domain.plans import Plan
from ledger.domain.prefetch import decide
from ledger.domain.processor import Incoming, process
from ledger.domain.state import Changes, WorkingState
from ledger.simulate import generate
from ledger.store import audit, roles, tables
from ledger.store.refdata import BY_NAME, KINDS, PLANS, Kind, plan_json
from ledger.store.state_sql import write_changes
from tests.support.streams import streams


def _models(kind: Kind[Any], changes: Changes) -> list[Any]:
    return [*kind.added(changes), *kind.changed(changes)]


def _final_state(events: list[Any]) -> Changes:
    """Every row the stream leaves, in its latest version: the changes of one state over
    nothing committed, all events in one batch (each row is then a new one)."""
    state = WorkingState()
    process([Incoming(e, n, "test", "c") for n, e in enumerate(events, start=1)], state)
    return state.changes()


def test_one_descriptor_per_reference_table() -> None:
    names = [kind.name for kind in KINDS]
    assert len(set(names)) == len(names) and BY_NAME.keys() == set(names)
    assert (*names, "account_balances") == audit.STATE_TABLES
    for kind in KINDS:
        assert kind.table is tables.metadata.tables[kind.name]
        assert [c.name for c in kind.table.primary_key] == [kind.key]


def test_write_once_kinds_are_the_append_only_tables() -> None:
    """A kind that is never changed nor removed is exactly one the database refuses to
    UPDATE or DELETE (tables.WRITE_ONCE_TABLES, migration 0004)."""
    write_once = {kind.name for kind in KINDS if not kind.locked}
    assert write_once == set(tables.WRITE_ONCE_TABLES)


def test_the_service_role_may_write_what_each_kind_writes() -> None:
    for kind in KINDS:
        needed = set()
        if kind.mutable == "row":
            needed.add("DELETE")  # replaced whole: deleted and inserted again
        elif kind.mutable:
            needed.add("UPDATE")
        if kind.locked:
            needed.add("UPDATE")  # read FOR UPDATE
        if kind.removed(Changes(released=["x"])):
            needed.add("DELETE")
        assert needed <= set(roles.EXTRA.get(kind.name, ())), kind.name


def _simulated() -> list[Any]:
    """A simulated platform, and an event that waits (a completion of an unknown order)."""
    events = generate(7, orders=60, buyers=30, sharers=10).all()
    last = events[-1].occurred_at
    return [*events, OrderCompleted("ev-waits", last, "shop", order_id="o-none", buyer_id="b")]


def test_a_simulated_platform_has_every_kind_and_round_trips() -> None:
    events = _simulated()
    changes = _final_state(events)
    assert all(_models(kind, changes) for kind in KINDS)  # the checks below see every kind
    _check_round_trips(events)
    _check_batches(events, 7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_every_model_round_trips_through_its_row(events: list[Any]) -> None:
    _check_round_trips(events)


def _check_round_trips(events: list[Any]) -> None:
    changes = _final_state(events)
    for kind in KINDS:
        columns = {c.name for c in kind.table.columns}
        for model in _models(kind, changes):
            row = kind.rows([model], now_ms=7)[0]
            assert set(row) == columns, kind.name  # every column, nothing else
            assert kind.from_row(row) == model
            assert row[kind.key] == kind.key_of_model(model)
            assert kind.compared(row) == kind.compared(dict(row))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 12))
def test_written_and_loaded_in_batches_the_state_is_the_in_memory_models(
    events: list[Any], batch: int
) -> None:
    """The stream in batches through the rules over SQLite (the loader and the writer, as
    ingestion and verify's replay run them): every stored row reads back as the model the
    stream leaves in one batch in memory, and nothing else is stored."""
    _check_batches(events, batch)


def _check_batches(events: list[Any], batch: int) -> None:
    expected = _final_state(events)
    store = audit.AuditStore()
    try:
        with store.begin() as conn:
            for start in range(0, len(events), batch):
                part = events[start : start + batch]
                incoming = [
                    Incoming(e, start + i, "test", "c") for i, e in enumerate(part, start=1)
                ]
                results, working = decide(audit.ReplayLoader(conn), incoming, optimistic=False)
                conn.execute(
                    audit.replayed.insert().prefix_with("OR IGNORE"),
                    [{"event_id": e.event_id} for e in part],
                )
                write_changes(conn, audit.insert_rows, working.changes(), 0)
                applied = [r.outcome for r in results if isinstance(r.outcome, Applied)]
                audit.add_balances(conn, (e for outcome in applied for e in outcome.entries))
            for kind in KINDS:
                stored = {
                    row[kind.key]: kind.from_row(row)
                    for row in conn.execute(select(kind.table)).mappings()
                }
                wanted = {kind.key_of_model(m): m for m in _models(kind, expected)}
                assert stored == wanted, kind.name
    finally:
        store.dispose()


def _plan_json_before(p: Plan) -> str:
    """The stored body as written before the descriptors (its fields spelled out)."""
    return json.dumps(
        {
            "plan_id": p.plan_id,
            "effective_from": p.effective_from,
            "default_rate_bps": p.default_rate_bps,
            "platform_fee_bps": p.platform_fee_bps,
            "level_shares_bps": list(p.level_shares_bps),
            "frozen_days": p.frozen_days,
            "attribution_window_days": p.attribution_window_days,
            "self_purchase_allowed": p.self_purchase_allowed,
            "min_payouts": [list(m) for m in p.min_payouts],
        },
        sort_keys=True,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(min_steps=1, max_steps=5))
def test_a_plan_body_is_the_text_it_was(events: list[Any]) -> None:
    for plan in _final_state(events).plans:
        assert plan_json(plan) == _plan_json_before(plan)
        assert PLANS.to_row(plan)["body"] == _plan_json_before(plan)
