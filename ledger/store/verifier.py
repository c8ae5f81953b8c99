"""``verify``: recompute every hash chain (journal and event log) from the stored rows, then
replay the event log and compare what it implies with the journal and reference state.

Reads one snapshot. Never writes, and never raises for a stored value, whatever its type:
an impossible value is reported as tampering at its row (ledger/store/shape.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    exists,
    func,
    or_,
    select,
    text,
    true,
)

from ledger.chain.checkpoint import Checkpoint, missing_links
from ledger.chain.eventlog import EventRow, events_head
from ledger.chain.journal import ChainChecker, EntryRow, VerifyReport, entry_from_row
from ledger.store import tables
from ledger.store.shape import lenient_text, row_problem, typed_by_catalog

Heads = dict[str, tuple[int, str]]
# progress(stage, done, total): rows of the stage done so far, out of total
Progress = Callable[[str, int, int], object]
STAGES = ("journal", "event log", "replay: rules", "replay: comparing")


def verify_snapshot(
    conn: Connection,
    *,
    batch_size: int,
    expect_head: str | None,
    replay: Callable[[Connection, Progress, int], tuple[str, Any, str] | None] | None,
    progress: Progress | None = None,
    since: Checkpoint | None = None,
) -> VerifyReport:
    """Verify what ``conn`` (inside a read snapshot) sees; see ``verify.verify``. With
    ``since`` (a checkpoint whose signature was checked), only the rows after its signed
    links are walked, from those links on, once each signed link is found in place."""
    report_progress = progress or ignore_progress
    signed_entries = None if since is None else since.chains()
    signed_events = None if since is None else since.event_chains()
    with _lenient(conn):
        totals = {
            "journal": _count(conn, tables.entries, signed_entries),
            "event log": _count(conn, tables.events, signed_events),
        }
        entry_heads, event_heads, head_problems = _stored_heads(conn)
        journal = ChainChecker(entry_heads)
        log = ChainChecker(event_heads, label="event log: ")
        for chain, problem in head_problems:
            journal.note(None, chain, problem)
        if since is not None:
            _start_at_checkpoint(conn, since, journal, log)
        trusted = typed_by_catalog(conn, [tables.entries, tables.postings, tables.events])
        for row in _stream_entries(conn, batch_size, trusted, signed_entries):
            journal.feed(row)
            if journal.entries_checked % batch_size == 0:
                report_progress("journal", journal.entries_checked, totals["journal"])
        report_progress("journal", journal.entries_checked, totals["journal"])
        orphan = _first_orphan_posting(conn, signed_entries)
        if orphan is not None:
            journal.note_orphan_posting(orphan)
        report = journal.report(expect_head)
        for event in _stream_events(conn, batch_size, trusted, signed_events):
            log.feed(event)
            if log.entries_checked % batch_size == 0:
                report_progress("event log", log.entries_checked, totals["event log"])
        report_progress("event log", log.entries_checked, totals["event log"])
        log.check_heads()
        found: tuple[str, int | None, str | None, str] | None = None
        replayed = 0
        if report.problem is not None:
            where = (
                "chain_heads" if report.first_bad_seq is None and report.chain_of_bad else "entries"
            )
            found = (where, report.first_bad_seq, report.chain_of_bad, report.problem)
        elif log.first_problem is not None:
            seq, chain, problem = log.first_problem
            found = (
                "events" if seq is not None or not chain else "chain_heads",
                seq,
                chain,
                problem,
            )
        elif replay is not None:
            mismatch = replay(conn, report_progress, totals["event log"])
            if mismatch is not None:
                replayed = 1
                table, key, problem = mismatch
                seq = key if table in ("entries", "events") and type(key) is int else None
                found = (table, seq, None, problem)
    event_chains = log.heads()
    return dataclasses.replace(
        report,
        ok=found is None,
        first_bad_seq=None if found is None else found[1],
        chain_of_bad=None if found is None else found[2],
        problem=None if found is None else found[3],
        problems_found=report.problems_found + log.problems_found + replayed,
        table=None if found is None else found[0],
        events_checked=log.entries_checked,
        event_chains=event_chains,
        events_head=events_head(event_chains),
    )


def ignore_progress(stage: str, done: int, total: int) -> None:
    return None


def _count(conn: Connection, table: Table, signed: Heads | None) -> int:
    query = select(func.count()).select_from(table)
    return int(
        conn.execute(
            query if signed is None else query.where(after(conn, table, signed))
        ).scalar_one()
    )


def _start_at_checkpoint(
    conn: Connection, since: Checkpoint, journal: ChainChecker, log: ChainChecker
) -> None:
    """Seed each chain walk with the checkpoint's signed link, or note that the row at
    its position is gone or differs (rows removed, or the chain rewritten)."""
    for checker, table, signed, what in (
        (journal, tables.entries, since.chains(), "journal"),
        (log, tables.events, since.event_chains(), "event log"),
    ):
        for chain, (chain_seq, digest) in sorted(signed.items()):
            c = table.c
            row = conn.execute(
                select(c.seq, c.hash).where(c.chain == chain, c.chain_seq == chain_seq)
            ).first()
            found = None if row is None else row.hash
            problems = missing_links(
                {chain: (chain_seq, digest)}, {(chain, chain_seq): found}, what
            )
            if problems:
                checker.note(
                    None if row is None else row.seq, chain, problems[0] + " (since the checkpoint)"
                )
            elif row is not None and type(row.seq) is int:
                checker.start_at(chain, chain_seq, digest, row.seq)


@contextmanager
def _lenient(conn: Connection) -> Iterator[None]:
    """On SQLite, read text that is not UTF-8 instead of failing the query."""
    raw = conn.connection.dbapi_connection
    if conn.dialect.name != "sqlite" or raw is None:
        yield
        return
    previous = raw.text_factory
    raw.text_factory = lenient_text
    try:
        yield
    finally:
        raw.text_factory = previous


def after(conn: Connection, table: Table, signed: Heads | None) -> ColumnElement[bool]:
    """The rows of ``table`` (entries or events) beyond the signed links (all: None).

    Spelled per chain present (``chains_in``), so each term is a range of the (chain,
    chain_seq) index: a daily check reads what is new, never the whole table."""
    if not signed:
        return true()
    c = table.c
    terms: list[ColumnElement[bool]] = [c.chain.is_(None)]
    for chain in chains_in(conn, table):
        seq = signed.get(chain, (0, ""))[0]
        terms.append(and_(c.chain == chain, c.chain_seq > seq) if seq else c.chain == chain)
    return or_(*terms)


def first_new_seq(conn: Connection, table: Table, signed: Heads | None) -> int | None:
    """The lowest global seq beyond the signed links (None: nothing is), one index range
    per chain: a lower bound that keeps a seq-ordered read of what is new off the rest."""
    c = table.c
    firsts = [conn.execute(select(func.min(c.seq)).where(c.chain.is_(None))).scalar()]
    for chain in chains_in(conn, table):
        seq = (signed or {}).get(chain, (0, ""))[0]
        query = select(func.min(c.seq)).where(c.chain == chain, c.chain_seq > seq)
        firsts.append(conn.execute(query).scalar())
    return min((f for f in firsts if type(f) is int), default=None)


def chains_in(conn: Connection, table: Table) -> list[str]:
    """The distinct chains of ``table``, one index probe each (a skip scan): O(chains)."""
    name = table.name
    query = text(
        f"WITH RECURSIVE c(chain) AS (SELECT min(chain) FROM {name} UNION ALL "
        f"SELECT (SELECT min(chain) FROM {name} WHERE chain > c.chain) FROM c "
        "WHERE c.chain IS NOT NULL) SELECT chain FROM c WHERE chain IS NOT NULL"
    )
    return [chain for (chain,) in conn.execute(query)]


def _last_signed_seq(conn: Connection, table: Table, signed: Heads) -> int:
    """The largest global seq among the signed rows (0: none)."""
    seqs = [
        conn.execute(
            select(table.c.seq).where(table.c.chain == chain, table.c.chain_seq == seq)
        ).scalar()
        for chain, (seq, _) in signed.items()
    ]
    return max((s for s in seqs if type(s) is int), default=0)


last_signed_seq = _last_signed_seq


def _stored_heads(conn: Connection) -> tuple[Heads, Heads, list[tuple[str | None, str]]]:
    """(entry heads, event-log heads, problems): a malformed head row is a problem and is
    left out, so the rows of its chain are then reported as beyond the head table."""
    entry_heads: Heads = {}
    event_heads: Heads = {}
    problems: list[tuple[str | None, str]] = []
    for row in conn.execute(select(tables.chain_heads)).mappings():
        problem = row_problem(tables.chain_heads, row)
        chain = row["chain"] if type(row["chain"]) is str else None
        if problem is not None:
            problems.append((chain, f"chain head row {row['chain']!r} malformed: {problem}"))
            continue
        entry_heads[row["chain"]] = (row["chain_seq"], row["hash"])
        event_heads[row["chain"]] = (row["events_seq"], row["events_hash"])
    return entry_heads, event_heads, problems


def _ordered(
    conn: Connection, table: Table, batch_size: int, signed: Heads | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every row of ``table`` ordered by (chain, chain_seq, seq), ``batch_size`` at a time.

    One streamed query, no keyset paging: paging compares key values, and a NULL or an
    odd type in a key (possible on SQLite) would silently skip rows."""
    query = select(table).where(after(conn, table, signed))
    query = query.order_by(table.c.chain, table.c.chain_seq, table.c.seq)
    # options on the statement, not the connection: a caller's connection (a replay's one
    # transaction) must not go on streaming every later statement
    result = conn.execute(query.execution_options(stream_results=True, yield_per=batch_size))
    keys = tuple(result.keys())
    for partition in result.partitions(batch_size):
        yield plain_dicts(keys, partition)


def plain_dicts(keys: Iterable[str], rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows as plain dicts: verify reads each value several times, and a dict is much
    cheaper to index than a RowMapping."""
    names = tuple(keys)
    return [dict(zip(names, row, strict=True)) for row in rows]


def _stream_entries(
    conn: Connection, batch_size: int, trusted: set[str], signed: Heads | None
) -> Iterator[EntryRow]:
    p = tables.postings
    check_entries = tables.entries.name not in trusted
    check_postings = p.name not in trusted
    for rows in _ordered(conn, tables.entries, batch_size, signed):
        seqs = [r["seq"] for r in rows if type(r["seq"]) is int]  # others are malformed
        by_entry: dict[Any, list[Any]] = {}
        if seqs:
            query = select(p).where(p.c.entry_seq.in_(seqs)).order_by(p.c.entry_seq, p.c.ordinal)
            result = conn.execute(query)
            for posting in plain_dicts(result.keys(), result):
                by_entry.setdefault(posting["entry_seq"], []).append(posting)
        for row in rows:
            yield _entry_row(row, by_entry.get(row["seq"], []), check_entries, check_postings)


def _entry_row(
    row: dict[str, Any], postings: list[dict[str, Any]], check_entry: bool, check_postings: bool
) -> EntryRow:
    problem = row_problem(tables.entries, row) if check_entry else None
    if check_postings:
        for posting in postings:
            if problem is None:
                problem = row_problem(tables.postings, posting)
    if problem is not None:
        return EntryRow(
            row["seq"],
            row["chain"],
            row["chain_seq"],
            row["prev_hash"],
            row["hash"],
            None,
            malformed=problem,
        )
    return EntryRow(
        seq=row["seq"],
        chain=row["chain"],
        chain_seq=row["chain_seq"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        entry=entry_from_row(row, postings),
        posting_times=tuple(posting["occurred_at"] for posting in postings),
        posting_ordinals=tuple(posting["ordinal"] for posting in postings),
    )


def _stream_events(
    conn: Connection, batch_size: int, trusted: set[str], signed: Heads | None
) -> Iterator[EventRow]:
    check = tables.events.name not in trusted
    for rows in _ordered(conn, tables.events, batch_size, signed):
        for row in rows:
            yield EventRow(
                row["seq"],
                row["chain"],
                row["chain_seq"],
                row["prev_hash"],
                row["hash"],
                row,
                row_problem(tables.events, row) if check else None,
            )


def _first_orphan_posting(conn: Connection, signed: Heads | None) -> Any:
    """After a checkpoint: among the postings of entries past its last signed one."""
    e, p = tables.entries, tables.postings
    query = select(p.c.entry_seq).where(~exists().where(e.c.seq == p.c.entry_seq))
    if signed:
        query = query.where(p.c.entry_seq > _last_signed_seq(conn, e, signed))
    return conn.execute(query.order_by(p.c.entry_seq).limit(1)).scalar()
