"""The daily check: ``verify`` from the signed checkpoint whose replay state
the auditor kept, against the full check, over the whole tampering suite
(tests/integration/test_tampering.py), with the checkpoint before the tampered rows and
after them; and the replay's memory bounded by its batch, whatever the ledger's size.

What the division of work is (docs/journal.md, "Verifying"): after a checkpoint, the
daily check finds every tampering of what came after it, a rewrite of anything up to it
(the signed links), and a row forged or removed in any reference table (row counts). A
value changed in place, before the checkpoint, in a row nothing after it touched (an old
order's levels, a plan's fee, an old payout's state, a removed old dead letter) is found
by the full check only: no check finds a change to a row without reading that row, and
the daily check does not read the history. ``FULL_CHECK_ONLY`` lists those kinds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.checkpoint import Checkpoint, keygen, load_private_key
from ledger.cli import main
from ledger.domain import prefetch as deciding  # runs each batch through the rules
from ledger.domain import processor
from ledger.domain.state import WorkingState
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store import replay
from ledger.store.audit import AuditStore, reached_checkpoint
from ledger.store.checkpoints import sign_checkpoint
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.store.verify import verify
from tests.integration.test_tampering import KINDS
from tests.support.streams import streams
from tests.support.tamper import build_ledger, triggers_lifted

# signed once the ledger is built, then tampered with: values changed in place in rows
# that no event after the checkpoint touches
FULL_CHECK_ONLY = {
    "order levels redirected",
    "order remaining amounts",
    "order posted commission",
    "order unsettled",
    "upline changed",
    "payout state",
    "plan fee changed",
    "dead letter removed",
}
# the rows these tamper with (the first sharer with an upline, the first plan) are written
# by the first batch, so they are older than a checkpoint signed after it too
IN_FIRST_BATCH = {"upline changed", "plan fee changed"}


class Audited:
    """A ledger, a signing key and the auditor's state file kept at a checkpoint."""

    def __init__(self, store: Store, state_path: Path) -> None:
        self.store = store
        self.key = load_private_key(keygen()[0])
        self.state = AuditStore(state_path)
        self.checkpoint: Checkpoint | None = None

    def sign_and_keep(self) -> None:
        """Sign the ledger as it is and verify it in full, keeping the state there."""
        self.checkpoint = sign_checkpoint(self.store, self.key, 1_800_000_000_000)
        report = verify(self.store, state=self.state, keep_at=self.checkpoint)
        assert report.ok, report.problem
        with self.state.begin() as conn:
            assert reached_checkpoint(conn) == self.checkpoint

    def daily(self, **kwargs: object):  # type: ignore[no-untyped-def]
        return verify(self.store, state=self.state, since=self.checkpoint, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def audited(db_url: str, tmp_path: Path) -> Iterator[Audited]:
    store = open_store(db_url)
    yield Audited(store, tmp_path / "audit.sqlite")
    store.dispose()


def _tamper(store: Store, name: str) -> str:
    kind = KINDS[name]
    if kind.needs_lifted_triggers:
        with triggers_lifted(store) as conn:
            return kind.tamper(conn)
    with store.begin() as conn:
        return kind.tamper(conn)


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("checkpoint", ["before", "after"])
def test_the_daily_check_finds_what_the_full_check_finds(
    audited: Audited, name: str, checkpoint: str
) -> None:
    if checkpoint == "before":  # signed after the first batch: plans and enrollments
        build_ledger(audited.store, after_batch=lambda n: n == 1 and audited.sign_and_keep())
    else:
        build_ledger(audited.store)
        audited.sign_and_keep()
    clean = audited.daily()
    assert clean.ok and clean.since == audited.checkpoint.created_at  # type: ignore[union-attr]
    key = _tamper(audited.store, name)
    full = verify(audited.store)
    assert not full.ok and key in full.problem
    assert verify(audited.store, batch_size=7) == full  # batched replay, same finding
    daily = audited.daily()
    older = FULL_CHECK_ONLY if checkpoint == "after" else IN_FIRST_BATCH
    if name in older:
        assert daily.ok  # documented: only the full check reads the old rows
        return
    assert not daily.ok, f"the daily check missed: {full.problem}"
    if "signed" in daily.problem:  # a rewrite up to the checkpoint: its signature
        assert daily.table in ("events", "entries", "chain_heads")
    else:
        assert daily.table == full.table and key in daily.problem, daily.problem


def test_the_daily_check_replays_only_what_came_after(audited: Audited) -> None:
    build_ledger(audited.store)
    audited.sign_and_keep()
    more = generate(9, orders=5, sharers=3, buyers=4).all()
    LedgerService(audited.store).ingest([Received(e, f"more:{n}", "t") for n, e in enumerate(more)])
    seen: list[int] = []
    real = deciding.process

    def counting(incoming, state):  # type: ignore[no-untyped-def]
        seen.append(len(incoming))
        return real(incoming, state)

    deciding.process = counting  # type: ignore[assignment]
    try:
        daily = audited.daily()
    finally:
        deciding.process = real  # type: ignore[assignment]
    assert daily.ok, daily.problem
    assert sum(seen) <= len(more)  # never the history
    assert daily.events_checked == sum(seen) > 0
    full = verify(audited.store)
    assert (daily.head, daily.events_head, daily.chains) == (
        full.head,
        full.events_head,
        full.chains,
    )


def test_the_replay_holds_one_batch_whatever_the_ledger_size(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size-independent bound: the rules see at most ``batch_size`` events at once,
    each batch on a fresh WorkingState (the engine's cache) over the replay store, so
    what the replay holds in memory is one batch, however long the history."""
    store = open_store(db_url)
    try:
        build_ledger(store)
        sizes: list[int] = []
        states: set[int] = set()

        def recording(incoming, state):  # type: ignore[no-untyped-def]
            sizes.append(len(incoming))
            states.add(id(state))
            assert isinstance(state, WorkingState)
            return processor.process(incoming, state)

        monkeypatch.setattr(deciding, "process", recording)
        report = verify(store, batch_size=7)
    finally:
        store.dispose()
    assert report.ok, report.problem
    assert max(sizes) <= 7 and sum(sizes) >= report.events_checked
    assert len(sizes) >= report.events_checked // 7  # a new state per batch, not one for all


def test_a_parked_event_released_after_the_checkpoint_is_no_false_alarm(
    audited: Audited,
) -> None:
    """The refund waiting for "O-not-yet" (tests/support/tamper.py) is released by its
    order after the checkpoint: its parked row goes, and the daily check agrees."""
    batch = build_ledger(audited.store)
    audited.sign_and_keep()
    placed = next(
        i.event for i in batch if isinstance(i, Received) and i.event.TYPE == "order_placed"
    )
    late = dataclasses.replace(placed, event_id="ev-late-order", order_id="O-not-yet")
    report = LedgerService(audited.store).ingest([Received(late, "shop:late", "t")])
    assert report.released == 1
    daily = audited.daily()
    assert daily.ok, daily.problem
    assert daily.events_checked == 1


def test_the_cli_runs_the_daily_check_from_the_state_file(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    try:
        build_ledger(store)
    finally:
        store.dispose()
    private, public, state = tmp_path / "k.pem", tmp_path / "k.pub", tmp_path / "audit.sqlite"
    run = lambda *args: CliRunner().invoke(main, [str(a) for a in args])  # noqa: E731
    assert run("keygen", "--private", private, "--public", public).exit_code == 0
    assert run("checkpoint", "sign", "--db", db_url, "--key", private).exit_code == 0
    daily = ("verify", "--db", db_url, "--state", state, "--pub", public, "--since-checkpoint")
    first = run(*daily)  # no state yet: the full check, which keeps the state
    assert first.exit_code == 0 and "since the checkpoint" not in first.stdout, first.output
    second = run(*daily)
    assert second.exit_code == 0 and "since the checkpoint of" in second.stdout, second.output
    assert json.loads(run(*daily, "--json").stdout)["since_checkpoint"] is not None
    store = open_store(db_url)
    try:
        with store.begin() as conn:
            key = KINDS["entry forged and linked"].tamper(conn)
    finally:
        store.dispose()
    found = run(*daily)
    assert found.exit_code == 1 and key in found.stderr
    assert run("verify", "--db", db_url, "--state", state).exit_code == 2  # usage: --pub too


def test_an_id_taken_earlier_is_replayed_as_the_service_decided(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay assumes new ids are new, as ingestion does; a click id taken in an
    earlier batch makes the replay store's unique key refuse the batch, which is redone
    with every look-up, and gives what the service gave."""
    store = open_store(db_url)
    try:
        batch = build_ledger(store)
        click = next(
            i.event for i in batch if isinstance(i, Received) and i.event.TYPE == "click_recorded"
        )
        again = dataclasses.replace(click, event_id="ev-click-again")
        report = LedgerService(store).ingest([Received(again, "shop:again", "t")])
        assert report.rejected == 1
        modes: list[bool] = []
        real = replay._apply

        def recording(state, incoming, *, optimistic):  # type: ignore[no-untyped-def]
            modes.append(optimistic)
            return real(state, incoming, optimistic=optimistic)

        monkeypatch.setattr(replay, "_apply", recording)
        assert verify(store, batch_size=50).ok  # the reuse in a later batch than the click
    finally:
        store.dispose()
    assert False in modes  # the batch holding the reused id was redone exactly


def _state_rows(state: AuditStore) -> dict[str, list[tuple[object, ...]]]:
    from sqlalchemy import select as select_

    from ledger.store import audit

    with state.begin() as conn:
        return {
            name: sorted(
                (tuple(r) for r in conn.execute(select_(audit.metadata.tables[name]))), key=repr
            )
            for name in audit.STATE_TABLES
        }


@given(events=streams(), cut=st.floats(0.1, 0.9), batch=st.integers(1, 12))
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_on_random_streams_the_daily_check_agrees_and_its_state_is_the_full_ones(
    tmp_path_factory: pytest.TempPathFactory, events: list, cut: float, batch: int
) -> None:
    """Any stream, any cut: the daily check verifies what the full one verifies, with
    the replay in batches of any size, and the state it advances to (replayed from the
    first checkpoint) is the state a replay from genesis keeps at the second."""
    tmp = tmp_path_factory.mktemp("prop")
    store = open_store(f"sqlite:///{tmp / 'l.sqlite'}")
    try:
        service = LedgerService(store, clock=lambda: 1_800_000_000_000)
        received = [Received(e, f"p:{n}", "t") for n, e in enumerate(events)]
        split = int(len(received) * cut)
        for start in range(0, split, 5):
            service.ingest(received[start : min(start + 5, split)])
        key = load_private_key(keygen()[0])
        first = sign_checkpoint(store, key, 1)
        daily_state = AuditStore(tmp / "daily.sqlite")
        assert verify(store, state=daily_state, keep_at=first, batch_size=batch).ok
        for start in range(split, len(received), 5):
            service.ingest(received[start : start + 5])
        second = sign_checkpoint(store, key, 2)
        daily = verify(store, state=daily_state, since=first, keep_at=second, batch_size=batch)
        full_state = AuditStore(tmp / "full.sqlite")
        full = verify(store, state=full_state, keep_at=second, batch_size=batch)
        assert full.ok, full.problem
        assert daily.ok and daily.since == 1, daily.problem
        assert _state_rows(daily_state) == _state_rows(full_state)
        daily_state.dispose()
        full_state.dispose()
    finally:
        store.dispose()
