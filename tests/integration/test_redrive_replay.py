"""Redrives survive export -> replay (the link is the event id ``redrive:<key>`` and the
dead letters' keys, both reproduced and compared by the replay), on both backends; and a
property over random streams with random redrives: postings sum to zero, each dead letter
is redriven at most once (a second redrive answers the first or is a conflict), and the
replayed ledger equals the live one, links included."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ledger.domain.events import Event
from ledger.domain.permissions import WRITER, Role
from ledger.export.replay import replay
from ledger.export.write import export
from ledger.read import operations
from ledger.read import redrives as reads
from ledger.redrives import IGNORED_ON_RETRY, prepare
from ledger.service import LedgerService, Received
from ledger.store import tables as t
from ledger.store.opening import open_store
from ledger.store.store import Store
from ledger.submission import submit_once
from tests.support.streams import T0, Ev, streams

PUBLISHER_TYPES = {t_ for t_, r in WRITER.items() if r is Role.PUBLISHER}
# the field that names the thing a reused id collided on: a fresh value lets it apply
FRESH_FIELD = {
    "order_placed": "order_id",
    "click_recorded": "click_id",
    "refund_issued": "refund_id",
    "sharer_enrolled": "sharer_id",
}


class ServiceSink:
    """The embedded sink without the views (the property needs no views)."""

    def __init__(self, store: Store) -> None:
        self.service = LedgerService(store)

    def submit(self, event: Event, source: str) -> dict[str, str | None]:
        report = self.service.ingest_isolating([Received(event, source, "redrives")])
        if report.duplicates:
            return {"event_id": event.event_id, "outcome": "duplicate"}
        outcome = "rejected" if report.rejected else "parked" if report.parked else "applied"
        return {"event_id": event.event_id, "outcome": outcome}


def redrivable(store: Store) -> list[Any]:
    with store.read() as conn:
        rows = operations.dead_letters(conn, redriven=False, limit=10_000).items
    return [r for r in rows if r.event_type in PUBLISHER_TYPES]


def corrigible(dead: Any) -> dict[str, Any]:
    """The original's JSON form without what the server sets (its id and producer)."""
    form = reads.original_form(dead)
    assert form is not None
    return {k: v for k, v in form.items() if k not in ("event_id", "producer")}


def redrive_once(store: Store, dead_id: int, fresh: bool, author: str) -> dict[str, Any]:
    with store.read() as conn:
        dead = reads.dead_letter(conn, dead_id)
        assert dead is not None
        form = corrigible(dead)
        if fresh and dead.event_type in FRESH_FIELD:
            field = FRESH_FIELD[dead.event_type]
            form[field] = f"{form[field]}-r{dead_id}"
        prepared = prepare(conn, dead_id, form, author)
    return submit_once(
        store, ServiceSink(store), prepared.event, "redrive", IGNORED_ON_RETRY
    ).outcome


def links(store: Store) -> dict[str, Any]:
    """Every dead letter's redrive as the read side shows it, by the dead letter's key."""
    with store.read() as conn:
        ids = conn.execute(select(t.dead_letters.c.id)).scalars().all()
        out = {}
        for dead_id in ids:
            detail = reads.dead_letter(conn, dead_id)
            assert detail is not None
            out[detail.key] = (
                detail.redrive_of,
                None if detail.redrive is None else dataclasses.asdict(detail.redrive),
            )
    return out


def without_times(found: dict[str, Any]) -> dict[str, Any]:
    """The links without the redrives' recorded times: the replay does not keep the event
    log's recorded_at (it records each event when it replays it)."""
    return {
        key: (of, None if r is None else {k: v for k, v in r.items() if k != "at"})
        for key, (of, r) in found.items()
    }


def postings_balance(store: Store) -> list[Any]:
    """Entries whose postings do not sum to zero per currency (expected: none)."""
    p = t.postings
    with store.read() as conn:
        return list(
            conn.execute(
                select(p.c.entry_seq, p.c.currency, func.sum(p.c.amount))
                .group_by(p.c.entry_seq, p.c.currency)
                .having(func.sum(p.c.amount) != 0)
            )
        )


def a_ledger_with_redrives(store: Store) -> None:
    """Orders under a reused id and a refund of an unknown line, each redriven: one
    corrected and applied, one rejected again (a chain) then corrected."""
    ev = Ev("x")
    events = [
        ev.plan("P1", T0, at=T0),
        ev.enroll("S1", None, at=T0),
        ev.click("K1", "S1", "B1", T0 + 1),
        ev.order("O1", "B1", T0 + 2, [("L1", 10_000, None)], click="K1"),
        ev.order("O1", "B1", T0 + 3, [("L1", 20_000, None)], click="K1"),  # reused id
        ev.refund("R1", "O1", "B1", [("L9", 1_000)], T0 + 4),  # unknown line
    ]
    LedgerService(store).ingest([Received(e, f"f:{n}", "f") for n, e in enumerate(events)])
    dead = {d.event_type: d for d in redrivable(store)}
    assert set(dead) == {"order_placed", "refund_issued"}
    assert (
        redrive_once(store, dead["order_placed"].id, True, "finance:alice")["outcome"] == "applied"
    )
    first = redrive_once(store, dead["refund_issued"].id, False, "finance:bob")
    assert first["outcome"] == "rejected"  # still the unknown line: a dead letter of its own
    [again] = [d for d in redrivable(store) if d.redrive_of == dead["refund_issued"].key]
    with store.read() as conn:
        form = corrigible(again)
        form["lines"] = [{"line_id": "L1", "amount": 1_000}]
        prepared = prepare(conn, again.id, form, "finance:bob")
    done = submit_once(store, ServiceSink(store), prepared.event, "redrive", IGNORED_ON_RETRY)
    assert done.outcome["outcome"] == "applied"


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request, tmp_path) -> tuple[str, str]:
    """(source, target): each backend as the source, the other as the replay's target."""
    sqlite = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    if request.param == "sqlite":
        return sqlite, request.getfixturevalue("empty_pg_url")
    return request.getfixturevalue("fresh_pg_url"), sqlite


def test_export_replay_keeps_the_redrives_and_their_links(two_urls, tmp_path) -> None:
    source_url, target_url = two_urls
    source = open_store(source_url)
    a_ledger_with_redrives(source)
    live = links(source)
    assert sum(1 for _, r in live.values() if r is not None) == 3
    assert sum(1 for of, _ in live.values() if of is not None) == 1  # the chain's middle
    out = tmp_path / "history.avro"
    export(source, out)
    target = open_store(target_url)
    replayed = replay(out, target)
    assert replayed.equal, replayed.differences
    replayed_links = links(target)
    assert without_times(replayed_links) == without_times(live)
    # "at" is the event log's recorded time: a replay records anew (as for every event)
    for key, (_, redrive) in replayed_links.items():
        if redrive is not None:
            assert redrive["at"] >= live[key][1]["at"]
    assert postings_balance(target) == []
    source.dispose()
    target.dispose()


PROPERTY = settings(
    max_examples=12,
    phases=[Phase.generate],  # a failure shrinks for minutes on this machine: shown as found
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(
    events=streams(max_buyers=3, max_steps=25, payouts=False),
    picks=st.lists(st.tuples(st.integers(0, 50), st.booleans(), st.booleans()), max_size=6),
)
def test_random_redrives_keep_the_ledger_whole(events, picks) -> None:
    with tempfile.TemporaryDirectory() as work:
        store = open_store(f"sqlite:///{Path(work) / 'live.sqlite'}")
        LedgerService(store).ingest([Received(e, f"s:{n}", "s") for n, e in enumerate(events)])
        redriven: dict[int, dict[str, Any]] = {}
        for index, fresh, retry in picks:
            candidates = redrivable(store)
            if not candidates:
                break
            dead = candidates[index % len(candidates)]
            first = redrive_once(store, dead.id, fresh, "finance:prop")
            redriven[dead.id] = first
            if retry:  # the same redrive again answers the first; another is a conflict
                again = redrive_once(store, dead.id, fresh, "finance:other")
                assert (again["event_id"], again["outcome"]) == (
                    first["event_id"],
                    first["outcome"],
                )
                other = redrive_once(store, dead.id, not fresh, "finance:prop")
                if dead.event_type in FRESH_FIELD:
                    assert other["outcome"] == "conflict"
        assert postings_balance(store) == []
        with store.read() as conn:
            redrive_ids = (
                conn.execute(
                    select(t.events.c.event_id).where(t.events.c.event_id.like("redrive:%"))
                )
                .scalars()
                .all()
            )
        assert len(redrive_ids) == len(set(redrive_ids)) == len(redriven)
        live = links(store)
        assert sum(1 for _, r in live.values() if r is not None) == len(redriven)
        out = Path(work) / "h.avro"
        export(store, out)
        target = open_store(f"sqlite:///{Path(work) / 'replayed.sqlite'}")
        replayed = replay(out, target)
        assert replayed.equal, replayed.differences
        assert without_times(links(target)) == without_times(live)
        store.dispose()
        target.dispose()
