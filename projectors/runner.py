"""Catch views up with the journal, chain by chain, and rebuild them from scratch.

A projector's view rows and its checkpoints (``{chain: last chain_seq projected}``)
change in one transaction, so a crash never leaves a range half applied or applied
twice. Chains are tailed separately because the global ``seq`` is not commit order with
several writers (docs/journal.md); within a chain ``chain_seq`` is. A catch-up reads the
committed head of each chain first and projects up to it: every entry up to a committed
head is itself committed, so no row can be skipped.

Two catch-ups of one projector serialise on its ``view_projectors`` row (PostgreSQL) or
on SQLite's write lock; different projectors run side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, select, text

from ledger.logs import get_logger
from ledger.store import tables as t
from ledger.store import view_tables as v
from ledger.store.store import Store
from projectors import catalog, sql
from projectors.catalog import Projector

log = get_logger("projectors")

Progress = Callable[[int, int], object]  # (entries done, entries to do) of this call
DEFAULT_CHUNK = 50_000  # entries per statement: bounds one statement's memory, not speed
# A rebuild reads whole chains: each statement of a big range scans postings once, so
# fewer, larger statements are faster (one scan per chain, not one per chunk).
REBUILD_CHUNK = 1_000_000


@dataclass
class Outcome:
    """What one catch-up or rebuild did, per projector: entries folded in."""

    entries: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.entries.values())


def catch_up(
    store: Store,
    views: str | list[str] | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> Outcome:
    """Fold every entry committed since the checkpoints into the named views (all when
    None). Idempotent: a second call with nothing new appended does nothing."""
    return _run(store, catalog.select(views), chunk, progress, rebuild=False)


def rebuild(
    store: Store,
    views: str | list[str] | None = None,
    *,
    chunk: int = REBUILD_CHUNK,
    progress: Progress | None = None,
) -> Outcome:
    """Drop the named views' rows and checkpoints and replay the journal into them, in
    one transaction per view (readers see the old view until the new one commits)."""
    return _run(store, catalog.select(views), chunk, progress, rebuild=True)


def _run(
    store: Store,
    projectors: list[Projector],
    chunk: int,
    progress: Progress | None,
    *,
    rebuild: bool,
) -> Outcome:
    if type(chunk) is not int or chunk < 1:
        raise ValueError(f"chunk must be a positive int, not {chunk!r}")
    outcome = Outcome()
    for projector in projectors:
        with store.begin() as conn:
            _lock(store, conn, projector.name)
            if rebuild:
                for table in projector.tables:
                    conn.execute(delete(table))
                conn.execute(
                    delete(v.view_checkpoints).where(
                        v.view_checkpoints.c.projector == projector.name
                    )
                )
            outcome.entries[projector.name] = _fold(store, conn, projector, chunk, progress)
        log.debug(
            "projected",
            view=projector.name,
            entries=outcome.entries[projector.name],
            rebuild=rebuild,
        )
    return outcome


def _lock(store: Store, conn: Connection, name: str) -> None:
    table = v.view_projectors
    conn.execute(
        store.insert(table)
        .values(projector=name)
        .on_conflict_do_nothing(index_elements=["projector"])
    )
    conn.execute(select(table.c.projector).where(table.c.projector == name).with_for_update())


def checkpoints(conn: Connection, name: str) -> dict[str, int]:
    cp = v.view_checkpoints
    rows = conn.execute(select(cp.c.chain, cp.c.chain_seq).where(cp.c.projector == name))
    return {chain: int(seq) for chain, seq in rows}


def heads(conn: Connection) -> dict[str, int]:
    h = t.chain_heads
    return {chain: int(seq) for chain, seq in conn.execute(select(h.c.chain, h.c.chain_seq))}


def _fold(
    store: Store,
    conn: Connection,
    projector: Projector,
    chunk: int,
    progress: Progress | None,
) -> int:
    done = checkpoints(conn, projector.name)
    todo = {
        chain: (done.get(chain, 0), head)
        for chain, head in heads(conn).items()
        if head > done.get(chain, 0)
    }
    total = sum(hi - lo for lo, hi in todo.values())
    statements = [text(s) for s in projector.sql_for(store.backend)]
    count = 0
    if progress:
        progress(0, total)
    for chain, (lo, hi) in sorted(todo.items()):
        while lo < hi:
            top = min(hi, lo + chunk)
            params = {**sql.PATTERNS, "chain": chain, "lo": lo, "hi": top}
            for statement in statements:
                conn.execute(statement, params)
            count += top - lo
            lo = top
            if progress:
                progress(count, total)
        _save_checkpoint(store, conn, projector.name, chain, hi)
    return count


def _save_checkpoint(store: Store, conn: Connection, name: str, chain: str, seq: int) -> None:
    cp = v.view_checkpoints
    stmt = store.insert(cp).values(projector=name, chain=chain, chain_seq=seq)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["projector", "chain"],
            set_={"chain_seq": stmt.excluded.chain_seq},
            where=cp.c.chain_seq < stmt.excluded.chain_seq,  # never backwards
        )
    )
