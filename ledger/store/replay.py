"""The replay check of ``verify``: run the stored event log through the rules again, in
arrival order, and compare what it implies with what is stored: every journal entry (by
event id and ordinal, content and chain), every event's outcome on arrival, the dead
letters of rejected events, and the reference state (plans, sharers, clicks, orders with
their levels, lines and posted commission, refunds, payouts, settlement runs, parked
events).

Why: the hash chains prove that the stored rows were not altered since they were
written, but reference state is mutable (orders change as they are refunded and settled)
and decides money later. An UPDATE of an order's levels, a forged click, a deleted
parked event all leave the chains intact; they cannot survive this comparison.

Bounded memory: the log is read ``batch_size`` events at a time and each batch runs
through the engine exactly as ingestion runs it (a ``WorkingState`` over a loader, see
ledger/store/audit.py); the replay's state lives in a SQLite file, and what it implies
(entry digests, touched keys) is written there and compared in slices at the end.

Two scopes (``Scope``): from genesis (the full check: every entry, every reference row),
or after a signed checkpoint whose state the auditor kept (the daily check: the events
after it, the entries after it, the reference rows those events touched and every
table's row count). docs/journal.md, "Verifying", says what each finds.

Assumes what the service guarantees (SPEC §4.5): arrival order (``events.seq``) is an
order in which the events were applied, so replaying in it reproduces the ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from ledger.chain.checkpoint import Checkpoint
from ledger.chain.journal import canonical_entry_bytes, entry_from_row
from ledger.domain.engine import Applied, Parked, Rejected
from ledger.domain.entries import JournalEntry
from ledger.domain.prefetch import decide
from ledger.domain.processor import Duplicate, Incoming, Result
from ledger.domain.state import Changes
from ledger.domain.validation import valid_event_id
from ledger.payload import dump_event, load_event
from ledger.store import audit
from ledger.store import tables as t
from ledger.store.refdata import BY_NAME, KINDS
from ledger.store.state_sql import CHUNK, write_changes
from ledger.store.verifier import (
    Progress,
    after,
    first_new_seq,
    ignore_progress,
    last_signed_seq,
    plain_dicts,
)

Mismatch = tuple[str, object, str]  # (table, key, what differs)
BATCH = 10_000  # events replayed at once, entries compared at once
_OUTCOME = {Applied: "applied", Rejected: "rejected", Parked: "parked"}


@dataclass
class Scope:
    """What one replay check covers. ``since`` None: from genesis (the state in ``store``
    is reset); else the state in ``store`` is at ``since`` and only what came after it is
    replayed and compared. ``keep_at``: when everything verifies, leave the state in
    ``store`` at this checkpoint (None: at genesis when from genesis, else unchanged)."""

    store: audit.AuditStore
    since: Checkpoint | None = None
    keep_at: Checkpoint | None = None
    batch_size: int = BATCH
    kept: bool = False  # set when the state was left at ``keep_at``


def is_prefix(conn: Connection, checkpoint: Checkpoint) -> bool:
    """Whether the events the checkpoint covers are exactly those up to some seq (its
    state is then the replay of a prefix of the arrival order). Not so only when a writer
    committed a lower seq after another wrote a higher one and the checkpoint fell between."""
    signed = checkpoint.event_chains()
    first_after = first_new_seq(conn, t.events, signed)
    return first_after is None or first_after > last_signed_seq(conn, t.events, signed)


def check_replay(
    conn: Connection,
    progress: Progress = ignore_progress,
    total: int = 0,
    scope: Scope | None = None,
) -> Mismatch | None:
    """The first difference between the stored ledger and a replay of its event log
    (``total``: the events in scope, for ``progress`` only)."""
    if scope is None:
        store = audit.AuditStore()
        try:
            return check_replay(conn, progress, total, Scope(store))
        finally:
            store.dispose()
    with scope.store.engine.connect() as state:
        transaction = state.begin()
        try:
            mismatch = _check_in(conn, state, scope, progress, total)
        except BaseException:
            transaction.rollback()
            raise
        if mismatch is None:
            transaction.commit()
        else:
            transaction.rollback()  # the kept state stays where it was
    return mismatch


def _check_in(
    conn: Connection, state: Connection, scope: Scope, progress: Progress, total: int
) -> Mismatch | None:
    if scope.since is None:
        audit.reset(state)
    audit.forget_run(state)
    keep = scope.keep_at or scope.since
    boundary = 0 if keep is None else last_signed_seq(conn, t.events, keep.event_chains())
    mismatch, savepoint = _replay(conn, state, scope, boundary, progress, total)
    if mismatch is not None:
        return mismatch
    since_entries = None if scope.since is None else scope.since.chains()
    mismatch = _check_entries(conn, state, since_entries, progress) or _check_state(
        conn, state, incremental=scope.since is not None
    )
    if mismatch is not None:
        return mismatch
    savepoint.rollback()  # back to the state at ``keep``
    audit.forget_run(state)
    audit.set_reached(state, keep)
    scope.kept = keep is not None
    return None


def _events(conn: Connection, scope: Scope) -> Iterator[list[dict[str, Any]]]:
    """The events in scope in arrival order, ``batch_size`` at a time."""
    signed = None if scope.since is None else scope.since.event_chains()
    query = select(t.events).where(after(conn, t.events, signed)).order_by(t.events.c.seq)
    if signed:
        first = first_new_seq(conn, t.events, signed)
        if first is None:
            return
        query = query.where(t.events.c.seq >= first)
    result = conn.execute(query.execution_options(stream_results=True, yield_per=scope.batch_size))
    keys = tuple(result.keys())
    for partition in result.partitions(scope.batch_size):
        yield plain_dicts(keys, partition)


def _replay(
    conn: Connection,
    state: Connection,
    scope: Scope,
    boundary: int,
    progress: Progress,
    total: int,
) -> tuple[Mismatch | None, Any]:
    """Replay the events in scope into ``state``; a savepoint is taken once the events
    up to seq ``boundary`` are in (returned, with the first outcome or dead-letter
    mismatch)."""
    savepoint = None
    outcome_mismatch: Mismatch | None = None
    dead_mismatch: Mismatch | None = None
    done = 0
    record_touched = scope.since is not None
    for rows in _events(conn, scope):
        for part in _split(rows, boundary):
            if savepoint is None and part[0]["seq"] > boundary:
                savepoint = state.begin_nested()
            incoming: list[Incoming] = []
            stored_outcome: dict[str, str] = {}
            for row in part:
                event, problem = _decode(row)
                if problem is not None:
                    return ("events", row["seq"], f"event log seq {row['seq']}: {problem}"), None
                assert event is not None
                incoming.append(Incoming(event, row["seq"], row["source"], row["chain"]))
                stored_outcome[row["event_id"]] = row["outcome"]
            try:
                results = _apply_and_record(state, incoming, touched=record_touched)
            except Exception as exc:  # noqa: BLE001 - a forged log may hold anything
                return ("events", None, f"the event log cannot be replayed: {exc!r}"[:500]), None
            outcome_mismatch = outcome_mismatch or _check_outcomes(results, stored_outcome)
            dead_mismatch = dead_mismatch or _check_dead_letters(conn, results)
            done += len(part)
        progress("replay: rules", done, total)
    progress("replay: rules", done, total)
    if savepoint is None:
        savepoint = state.begin_nested()
    return outcome_mismatch or dead_mismatch, savepoint


def _split(rows: list[dict[str, Any]], boundary: int) -> list[list[dict[str, Any]]]:
    """``rows`` (by seq) cut where seq passes ``boundary``."""
    cut = next((i for i, r in enumerate(rows) if r["seq"] > boundary), len(rows))
    return [part for part in (rows[:cut], rows[cut:]) if part]


def _apply_and_record(
    state: Connection, incoming: list[Incoming], *, touched: bool
) -> list[Result]:
    """One batch through the rules into ``state``, as the service's ingestion does it:
    first assuming the ids that only a duplicate would find are new (no look-up), then,
    if a unique key of the replay store refuses one (a duplicate in the log), again with
    every look-up made."""
    for optimistic in (True, False):
        savepoint = state.begin_nested()
        try:
            results, changes = _apply(state, incoming, optimistic=optimistic)
            _record(state, results, changes, touched=touched)
        except IntegrityError:
            savepoint.rollback()
            if not optimistic:
                raise
            continue
        savepoint.commit()
        return results
    raise AssertionError("unreachable")


def _apply(
    state: Connection, incoming: list[Incoming], *, optimistic: bool
) -> tuple[list[Result], Changes]:
    """One batch through the rules, as the service's ingestion runs it."""
    results, working = decide(audit.ReplayLoader(state), incoming, optimistic=optimistic)
    return results, working.changes()


def _record(state: Connection, results: list[Result], changes: Changes, *, touched: bool) -> None:
    """Write what a batch changed, the ids it processed and the entries it implies."""
    write_changes(state, audit.insert_rows, changes, 0)
    processed = [
        {"event_id": r.incoming.event.event_id}
        for r in results
        if not r.released and not isinstance(r.outcome, Duplicate)
    ]
    if processed:
        state.execute(audit.replayed.insert(), processed)
    applied = [
        (r.incoming.chain, entry)
        for r in results
        if isinstance(r.outcome, Applied)
        for entry in r.outcome.entries
    ]
    audit.add_balances(state, (entry for _, entry in applied))
    if applied:
        state.execute(
            audit.implied_entries.insert(),
            [
                {"event_id": e.event_id, "ordinal": e.ordinal, "digest": _entry_digest(chain, e)}
                for chain, e in applied
            ],
        )
    if touched:
        keys = _touched_keys(changes)
        if keys:
            state.execute(audit.touched.insert().prefix_with("OR IGNORE"), keys)


def _touched_keys(c: Changes) -> list[dict[str, str]]:
    return [{"name": kind.name, "key": key} for kind in KINDS for key in kind.touched(c)]


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


def _check_dead_letters(conn: Connection, results: list[Result]) -> Mismatch | None:
    rejected = [
        (r.incoming.event.event_id, r.outcome.reason)
        for r in results
        if isinstance(r.outcome, Rejected) and valid_event_id(r.incoming.event.event_id)
    ]
    if not rejected:
        return None
    d = t.dead_letters
    ids = sorted({event_id for event_id, _ in rejected})
    stored: set[tuple[Any, Any]] = set()
    for chunk in audit.chunks(ids):
        query = select(d.c.event_id, d.c.reason).where(d.c.event_id.in_(chunk))
        stored.update((r.event_id, r.reason) for r in conn.execute(query))
    for event_id, reason in rejected:
        if (event_id, reason) not in stored:
            return (
                "dead_letters",
                event_id,
                f"dead letter of rejected event {event_id} ({reason}) is missing",
            )
    return None


# --- journal entries ------------------------------------------------------------------------


def _check_entries(
    conn: Connection,
    state: Connection,
    since: dict[str, tuple[int, str]] | None,
    progress: Progress = ignore_progress,
) -> Mismatch | None:
    """Every stored entry in scope against the digest the replay implies for it, in seq
    order, a batch at a time; then whether every implied entry was found."""
    implied = audit.implied_entries
    total = state.execute(select(func.count()).select_from(implied)).scalar_one()
    done = 0
    for batch in _stored_entries(conn, since):
        digests: dict[tuple[Any, Any], bytes] = {}
        for chunk in audit.chunks(sorted({entry.event_id for _, entry in batch})):
            query = select(implied).where(implied.c.event_id.in_(chunk))
            digests.update(((r.event_id, r.ordinal), r.digest) for r in state.execute(query))
        for row, entry in batch:
            done += 1
            digest = digests.get((entry.event_id, entry.ordinal))
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
    progress("replay: comparing", done, total)
    if done < total:
        missing = _first_missing_entry(conn, state)
        return (
            "entries",
            None,
            f"the event log implies entry {missing}, which the journal lacks: removed",
        )
    return None


def _first_missing_entry(conn: Connection, state: Connection) -> str:
    implied, e = audit.implied_entries, t.entries
    last: tuple[str, int] | None = None
    while True:
        query = select(implied.c.event_id, implied.c.ordinal).order_by(
            implied.c.event_id, implied.c.ordinal
        )
        if last is not None:
            query = query.where(
                or_(
                    implied.c.event_id > last[0],
                    and_(implied.c.event_id == last[0], implied.c.ordinal > last[1]),
                )
            )
        keys = [(r[0], r[1]) for r in state.execute(query.limit(CHUNK))]
        if not keys:
            return "?"
        found: set[tuple[Any, Any]] = set()
        for chunk in audit.chunks(sorted({k[0] for k in keys})):
            query = select(e.c.event_id, e.c.ordinal).where(e.c.event_id.in_(chunk))
            found.update((r[0], r[1]) for r in conn.execute(query))
        for key in keys:
            if key not in found:
                return f"{key[0]}#{key[1]}"
        last = keys[-1]


def _stored_entries(
    conn: Connection, since: dict[str, tuple[int, str]] | None, batch: int = BATCH
) -> Iterator[list[tuple[dict[str, Any], JournalEntry]]]:
    """The stored entries in scope with their postings, in seq order, ``batch`` entries at
    a time (the chains passed their checks, so every seq is an int)."""
    e, p = t.entries, t.postings
    scope = select(e).where(after(conn, e, since)).order_by(e.c.seq).limit(batch)
    last = None
    if since:
        first = first_new_seq(conn, e, since)
        if first is None:
            return
        last = first - 1
    while True:
        query = scope
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
        yield [(row, entry_from_row(row, postings.get(row["seq"], []))) for row in rows]


# --- reference state ------------------------------------------------------------------------


def _check_state(conn: Connection, state: Connection, *, incremental: bool) -> Mismatch | None:
    """The reference state: every replayed row (from genesis) or the rows the replayed
    events touched (after a checkpoint) against the stored row of the same key, then each
    table's row count (a forged or removed row anywhere)."""
    for kind in KINDS:
        name, key = kind.name, kind.key
        stored_table, replay_table = t.metadata.tables[name], audit.metadata.tables[name]
        matched = 0
        for keys in _replayed_keys(state, name, key, incremental):
            replayed = _rows(state, replay_table, key, keys)
            stored = _rows(conn, stored_table, key, keys)
            for k in keys:
                if k not in replayed:  # touched, then gone (a parked event released)
                    if k in stored:
                        return (name, k, f"{name} {k!r} is stored but not implied by the event log")
                    continue
                if k not in stored:
                    return (name, k, f"{name} {k!r} is implied by the event log but missing")
                matched += 1
                mismatch = _compare_row(name, k, replayed[k], stored[k])
                if mismatch is not None:
                    return mismatch
        count = select(func.count()).select_from
        stored_count = conn.execute(count(stored_table)).scalar_one()
        replay_count = state.execute(count(replay_table)).scalar_one()
        if stored_count != replay_count or (not incremental and matched != stored_count):
            return _unmatched(conn, state, name, key)
    return None


def _replayed_keys(
    state: Connection, name: str, key: str, incremental: bool
) -> Iterator[list[Any]]:
    if incremental:
        column = audit.touched.c.key
        query = select(column).where(audit.touched.c.name == name).order_by(column)
    else:
        column = audit.metadata.tables[name].c[key]
        query = select(column).order_by(column)
    last = None
    while True:
        page = query if last is None else query.where(column > last)
        keys = list(state.execute(page.limit(CHUNK)).scalars())
        if not keys:
            return
        yield keys
        last = keys[-1]


def _rows(
    conn: Connection, table: Table, key: str, keys: Sequence[Any]
) -> dict[Any, dict[str, Any]]:
    result = conn.execute(select(table).where(table.c[key].in_(list(keys))))
    return {row[key]: row for row in plain_dicts(result.keys(), result)}


def _unmatched(conn: Connection, state: Connection, name: str, key: str) -> Mismatch:
    """The first row in one of the two tables and not the other (the counts differ)."""
    stored_table, replay_table = t.metadata.tables[name], audit.metadata.tables[name]
    for a, b, found in (
        (conn, state, "stored but not implied by the event log"),
        (state, conn, "implied by the event log but missing"),
    ):
        table_a = stored_table if a is conn else replay_table
        table_b = replay_table if b is state else stored_table
        column = table_a.c[key]
        last = None
        while True:
            query = select(column).order_by(column).limit(CHUNK)
            keys = list(a.execute(query if last is None else query.where(column > last)).scalars())
            if not keys:
                break
            there = set(b.execute(select(table_b.c[key]).where(table_b.c[key].in_(keys))).scalars())
            for k in keys:
                if k not in there:
                    return (name, k, f"{name} {k!r} is {found}")
            last = keys[-1]
    return (name, None, f"{name}: the stored rows differ in number from the replayed ones")


def _compare_row(
    name: str, key: Any, replayed: dict[str, Any], stored: dict[str, Any]
) -> Mismatch | None:
    kind = BY_NAME[name]
    implied, value = kind.compared(replayed), kind.compared(stored)
    if implied == value:
        return None
    return (
        name,
        key,
        f"{name} {key!r} differs from the replayed event log: {_difference(implied, value)}",
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


def _entry_digest(chain: str, entry: JournalEntry) -> bytes:
    return hashlib.sha256(canonical_entry_bytes(chain, 0, entry)).digest()


def _difference(implied: Any, stored: Any) -> str:
    if isinstance(implied, dict) and isinstance(stored, dict):
        for name in implied:
            if implied[name] != stored.get(name):
                return f"{name} is {_short(stored.get(name))}, replay gives {_short(implied[name])}"
    return f"stored {_short(stored)}, replay gives {_short(implied)}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= 200 else text[:200] + "…"
