"""The replay check of ``verify``: run the stored event log through the rules again, in
arrival order, on an empty in-memory state, and compare what it implies with what is
stored: every journal entry (by event id and ordinal, content and chain), every event's
outcome on arrival, the dead letters of rejected events, and the whole reference state
(plans, sharers, clicks, orders with their levels, lines and posted commission, refunds,
payouts, settlement runs, parked events).

Why: the hash chains prove that the stored rows were not altered since they were
written, but reference state is mutable (orders change as they are refunded and settled)
and decides money later. An UPDATE of an order's levels, a forged click, a deleted
parked event all leave the chains intact; they cannot survive this comparison.

Assumes what the service guarantees (SPEC §4.5): arrival order (``events.seq``) is an
order in which the events were applied, so replaying in it reproduces the ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, select

from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.events import SharerEnrolled
from ledger.domain.processor import Duplicate, Incoming, Result, process
from ledger.domain.state import Changes, WorkingState
from ledger.domain.validation import valid_event_id
from ledger.journal import canonical_entry_bytes, entry_from_row
from ledger.payload import dump_event, load_event
from ledger.store import tables as t
from ledger.store.state_sql import order_from_row, order_to_row, plan_from_json
from ledger.store.verifier import Progress, ignore_progress, plain_dicts

Mismatch = tuple[str, object, str]  # (table, key, what differs)
PROGRESS_EVERY = 10_000
_OUTCOME = {Applied: "applied", Rejected: "rejected", Parked: "parked"}


def check_replay(
    conn: Connection, progress: Progress = ignore_progress, total: int = 0
) -> Mismatch | None:
    """The first difference between the stored ledger and a replay of its event log
    (``total``: the events the log holds, for ``progress`` only)."""
    incoming: list[Incoming] = []
    stored_outcome: dict[str, str] = {}
    for row in conn.execute(select(t.events).order_by(t.events.c.seq)).mappings():
        event, problem = _decode(row)
        if problem is not None:
            return ("events", row["seq"], f"event log seq {row['seq']}: {problem}")
        assert event is not None
        incoming.append(Incoming(event, row["seq"], row["source"], row["chain"]))
        stored_outcome[row["event_id"]] = row["outcome"]
        if len(incoming) % PROGRESS_EVERY == 0:
            progress("replay: reading", len(incoming), total)
    progress("replay: reading", len(incoming), total)
    state = WorkingState()
    results: list[Result] = []
    try:
        # in slices only to report progress: process() carries nothing between calls but
        # the state, so the slices give the results of one call
        for start in range(0, len(incoming), PROGRESS_EVERY):
            results += process(incoming[start : start + PROGRESS_EVERY], state)
            progress("replay: rules", min(start + PROGRESS_EVERY, len(incoming)), len(incoming))
    except Exception as exc:  # noqa: BLE001 - a forged log may hold anything
        return ("events", None, f"the event log cannot be replayed: {exc!r}"[:500])
    return (
        _check_outcomes(results, stored_outcome)
        or _check_entries(conn, results, progress)
        or _check_dead_letters(conn, results)
        or _check_state(conn, state.changes())
    )


def _decode(row: Any) -> tuple[Any, str | None]:
    try:
        event = load_event(row["payload"])
    except Exception as exc:  # noqa: BLE001 - any undecodable payload is tampering
        return None, f"payload does not decode ({exc!r})"[:500]
    if (event.event_id, event.TYPE, event.occurred_at) != (
        row["event_id"],
        row["type"],
        row["occurred_at"],
    ):
        return None, "event_id, type or occurred_at differ from the payload's"
    if dump_event(event) != row["payload"]:
        return None, "payload is not in canonical form"
    return event, None


def _check_outcomes(results: list[Result], stored: dict[str, str]) -> Mismatch | None:
    for result in results:
        if result.released:
            continue
        event_id = result.incoming.event.event_id
        if isinstance(result.outcome, Duplicate):
            return (
                "events",
                result.incoming.arrival,
                f"event log seq {result.incoming.arrival}: {event_id} is logged twice",
            )
        replayed = _OUTCOME[type(result.outcome)]
        if stored.get(event_id) != replayed:
            return (
                "events",
                result.incoming.arrival,
                (
                    f"event log seq {result.incoming.arrival}: {event_id} is logged as "
                    f"{stored.get(event_id)} but the rules give {replayed}"
                ),
            )
    return None


def _entry_digest(chain: str, entry: JournalEntry) -> bytes:
    return hashlib.sha256(canonical_entry_bytes(chain, 0, entry)).digest()


def _check_entries(
    conn: Connection, results: list[Result], progress: Progress = ignore_progress
) -> Mismatch | None:
    """Digests, not entries, are kept for the replayed side: memory grows by ~100 bytes
    per entry however large the ledger."""
    implied: dict[tuple[str, int], bytes] = {}
    for result in results:
        if isinstance(result.outcome, Applied):
            for entry in result.outcome.entries:
                implied[(entry.event_id, entry.ordinal)] = _entry_digest(
                    result.incoming.chain, entry
                )
    total, done = len(implied), 0
    for row, entry in _stored_entries(conn):
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress("replay: comparing", done, total)
        key = (entry.event_id, entry.ordinal)
        digest = implied.pop(key, None)
        where = f"journal entry seq {row['seq']} ({entry.event_id}#{entry.ordinal})"
        if digest is None:
            return ("entries", row["seq"], f"{where} is not implied by the event log: forged")
        if digest != _entry_digest(row["chain"], entry):
            return (
                "entries",
                row["seq"],
                f"{where} differs from what the rules give for its event",
            )
    progress("replay: comparing", done, total)
    if implied:
        event_id, ordinal = min(implied)
        return (
            "entries",
            None,
            (f"the event log implies entry {event_id}#{ordinal}, which the journal lacks: removed"),
        )
    return None


def _stored_entries(conn: Connection, batch: int = 10_000) -> Iterator[tuple[Any, JournalEntry]]:
    """Every stored entry with its postings, in seq order, ``batch`` entries at a time (the
    chains passed their checks, so every seq is an int)."""
    e, p = t.entries, t.postings
    last = None
    while True:
        query = select(e).order_by(e.c.seq).limit(batch)
        result = conn.execute(query if last is None else query.where(e.c.seq > last))
        rows = plain_dicts(result.keys(), result)
        if not rows:
            return
        last = rows[-1]["seq"]
        postings: dict[int, list[Any]] = {}
        query = select(p).where(p.c.entry_seq.in_([row["seq"] for row in rows]))
        result = conn.execute(query.order_by(p.c.entry_seq, p.c.ordinal))
        for posting in plain_dicts(result.keys(), result):
            postings.setdefault(posting["entry_seq"], []).append(posting)
        for row in rows:
            yield row, entry_from_row(row, postings.get(row["seq"], []))


def _check_dead_letters(conn: Connection, results: list[Result]) -> Mismatch | None:
    d = t.dead_letters
    stored = {(r.event_id, r.reason) for r in conn.execute(select(d.c.event_id, d.c.reason))}
    for result in results:
        outcome, event_id = result.outcome, result.incoming.event.event_id
        if not isinstance(outcome, Rejected) or not valid_event_id(event_id):
            continue
        if (event_id, outcome.reason) not in stored:
            return (
                "dead_letters",
                event_id,
                f"dead letter of rejected event {event_id} ({outcome.reason}) is missing",
            )
    return None


# --- reference state ------------------------------------------------------------------------


def _check_state(conn: Connection, c: Changes) -> Mismatch | None:
    implied: dict[str, dict[Any, Any]] = {
        "plans": {p.plan_id: p for p in c.plans},
        "sharers": {s.sharer_id: (s.upline_id, s.enrolled_at) for s in c.sharers},
        "clicks": {
            k.click_id: (k.buyer_id, k.sharer_id, k.occurred_at, k.arrival) for k in c.clicks
        },
        "orders": {o.order_id: order_to_row(o) for o in c.new_orders},
        "refunds": dict(c.refunds),
        "payouts": {
            p.payout_id: (p.sharer_id, p.currency, p.amount, p.state) for p in c.new_payouts
        },
        "settlement_runs": dict(c.runs),
        "parked": {p.event.event_id: _parked_row(p) for p in c.parked},
    }
    for table, rows in implied.items():
        mismatch = _compare(table, rows, _stored_state(conn, table, rows))
        if mismatch is not None:
            return mismatch
    return None


def _parked_row(p: Any) -> tuple[Any, ...]:
    subject = p.event.sharer_id if isinstance(p.event, SharerEnrolled) else None
    return (p.waits_for, subject, p.arrival, p.event.TYPE, p.source, dump_event(p.event))


def _stored_state(
    conn: Connection, table: str, implied: dict[Any, Any]
) -> Iterable[tuple[Any, Any]]:
    rows = conn.execute(select(t.metadata.tables[table])).mappings()
    for r in rows:
        if table == "plans":
            yield r["plan_id"], _stored_plan(r)
        elif table == "sharers":
            yield r["sharer_id"], (r["upline_id"], r["enrolled_at"])
        elif table == "clicks":
            yield r["click_id"], (r["buyer_id"], r["sharer_id"], r["occurred_at"], r["arrival"])
        elif table == "orders":
            # Nearly every row equals its replayed (canonical) form: compare it as stored
            # first, and parse only a row that differs, to say how.
            stored = dict(r)
            same = implied.get(r["order_id"]) == stored
            yield r["order_id"], stored if same else _stored_order(r)
        elif table == "refunds":
            yield r["refund_id"], r["order_id"]
        elif table == "payouts":
            yield r["payout_id"], (r["sharer_id"], r["currency"], r["amount"], r["state"])
        elif table == "settlement_runs":
            yield r["run_id"], r["as_of"]
        else:
            yield (
                r["event_id"],
                (r["waits_for"], r["subject"], r["arrival"], r["type"], r["source"], r["payload"]),
            )


def _stored_plan(r: Any) -> Any:
    try:
        plan = plan_from_json(r["body"])
    except Exception as exc:  # noqa: BLE001 - an altered body may hold anything
        return f"an unreadable body ({exc!r})"
    if (plan.plan_id, plan.effective_from) != (r["plan_id"], r["effective_from"]):
        return "a body that disagrees with its plan_id or effective_from"
    return plan


def _stored_order(r: Any) -> Any:
    """The row as the service would write it back after reading it (so a value that reads
    the same but was stored differently, say reformatted JSON, also counts as altered)."""
    try:
        order = order_from_row(r)
        canonical = order_to_row(order)
    except Exception as exc:  # noqa: BLE001 - altered JSON may hold anything
        return f"an unreadable row ({exc!r})"
    stored = dict(r)
    return canonical if canonical == stored else stored


def _compare(
    table: str, implied: dict[Any, Any], stored: Iterable[tuple[Any, Any]]
) -> Mismatch | None:
    seen: set[Any] = set()
    for key, value in stored:
        if key in seen or key not in implied:
            return (table, key, f"{table} {key!r} is stored but not implied by the event log")
        seen.add(key)
        if implied[key] != value:
            return (
                table,
                key,
                (
                    f"{table} {key!r} differs from the replayed event log: "
                    f"{_difference(implied[key], value)}"
                ),
            )
    missing = sorted(set(implied) - seen, key=repr)
    if missing:
        return (
            table,
            missing[0],
            (f"{table} {missing[0]!r} is implied by the event log but missing"),
        )
    return None


def _difference(implied: Any, stored: Any) -> str:
    if isinstance(implied, dict) and isinstance(stored, dict):
        for name in implied:
            if implied[name] != stored.get(name):
                return f"{name} is {_short(stored.get(name))}, replay gives {_short(implied[name])}"
    return f"stored {_short(stored)}, replay gives {_short(implied)}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= 200 else text[:200] + "…"
