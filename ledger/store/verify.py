"""Verify a stored ledger: every hash chain recomputed, then (by default) the event log
replayed through the rules and compared with the journal and the reference state; from
genesis (the full check) or from a signed checkpoint whose replay state the auditor kept
(the daily check, docs/journal.md "Verifying")."""

from __future__ import annotations

import dataclasses
from functools import partial

from sqlalchemy import Connection, Table, select

from ledger.chain.checkpoint import Checkpoint, missing_links
from ledger.chain.journal import VerifyReport
from ledger.store import tables
from ledger.store.audit import AuditStore
from ledger.store.errors import StoreError
from ledger.store.store import Store
from ledger.store.verifier import Progress, verify_snapshot


def verify(
    store: Store,
    *,
    batch_size: int = 10_000,
    expect_head: str | None = None,
    replay: bool = True,
    progress: Progress | None = None,
    state: AuditStore | None = None,
    since: Checkpoint | None = None,
    keep_at: Checkpoint | None = None,
) -> VerifyReport:
    """Recompute every chain from the stored rows and report the first bad row.

    Reads one consistent snapshot, streaming rows ordered by (chain, chain_seq),
    ``batch_size`` at a time. Journal: chain_seq continuity from 1, seq order within a
    chain, each link's hash and prev_hash, balance per currency, postings' occurred_at,
    orphan postings and agreement with ``chain_heads``. Event log: the same chain checks
    (ledger/chain/eventlog.py). Then, unless ``replay`` is False, the event log is replayed
    through the rules and what it implies is compared with the journal and the reference
    state (ledger/store/replay.py). Compares the ledger head with ``expect_head`` when
    given. Never raises for a stored value of any type: that is a reported problem.
    ``progress(stage, done, total)`` is called as each stage advances (``STAGES``).

    ``state``: the auditor's replay state (ledger/store/audit.py); without it a
    temporary one is used. ``since``: a checkpoint whose signature the caller checked and
    at which ``state`` is: only what came after it is walked, replayed and compared (a
    checkpoint that is not a prefix of the arrival order falls back to genesis; the
    report's ``since`` says which). ``keep_at``: when all verifies, ``state`` is left at
    this checkpoint (signature checked by the caller; its links must be in place)."""
    if type(batch_size) is not int or batch_size < 1:
        raise StoreError(f"batch_size must be a positive int, not {batch_size!r}")
    if since is not None and state is None:
        raise StoreError("a check since a checkpoint needs the replay state kept at it")
    with store.read() as conn:
        if since is not None and not _is_prefix(conn, since):
            since = None  # rare (see is_prefix): the full check instead
        if keep_at is not None:
            moved = _links_moved(conn, keep_at)
            if moved:
                return _tampered(conn, moved)
            if not _is_prefix(conn, keep_at) or not _extends(keep_at, since):
                keep_at = since
        check = None
        if replay:
            from ledger.store.replay import Scope, check_replay

            scope = Scope(state or AuditStore(), since, keep_at, batch_size)
            check = partial(check_replay, scope=scope)
        try:
            report = verify_snapshot(
                conn,
                batch_size=batch_size,
                expect_head=expect_head,
                replay=check,
                progress=progress,
                since=since,
            )
        finally:
            if replay and state is None:
                scope.store.dispose()
    return dataclasses.replace(report, since=None if since is None else since.created_at)


def _is_prefix(conn: Connection, checkpoint: Checkpoint) -> bool:
    from ledger.store.replay import is_prefix

    return is_prefix(conn, checkpoint)


def _extends(newer: Checkpoint, older: Checkpoint | None) -> bool:
    """Whether every chain ``older`` signed is at or beyond its position in ``newer``."""
    if older is None:
        return True
    for signed, later in (
        (older.chains(), newer.chains()),
        (older.event_chains(), newer.event_chains()),
    ):
        for chain, (seq, _) in signed.items():
            if later.get(chain, (0, ""))[0] < seq:
                return False
    return True


def _links_moved(conn: Connection, checkpoint: Checkpoint) -> list[str]:
    return missing_links(
        checkpoint.chains(), stored_links(conn, tables.entries, checkpoint.chains()), "journal"
    ) + missing_links(
        checkpoint.event_chains(),
        stored_links(conn, tables.events, checkpoint.event_chains()),
        "event log",
    )


def _tampered(conn: Connection, problems: list[str]) -> VerifyReport:
    from ledger.chain.journal import ledger_head
    from ledger.store.verifier import _stored_heads

    heads, _, _ = _stored_heads(conn)
    return VerifyReport(
        ok=False,
        entries_checked=0,
        chains=heads,
        head=ledger_head(heads),
        problem=f"a stored checkpoint signed by the key: {problems[0]}",
        problems_found=len(problems),
        table="chain_heads",
    )


def stored_links(
    conn: Connection, table: Table, signed: dict[str, tuple[int, str]]
) -> dict[tuple[str, int], str | None]:
    """The stored hash at each signed (chain, chain_seq) of ``table`` (None: no such row)."""
    found: dict[tuple[str, int], str | None] = {}
    for chain, (seq, _digest) in signed.items():
        found[(chain, seq)] = conn.execute(
            select(table.c.hash).where(table.c.chain == chain, table.c.chain_seq == seq)
        ).scalar()
    return found
