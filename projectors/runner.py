"""Catch views up with the journal, chain by chain, and rebuild them from scratch.

A projector's view rows and its checkpoints (``{chain: last chain_seq projected}``)
change in one transaction, so a crash never leaves a range half applied or applied
twice. Chains are tailed separately because the global ``seq`` is not commit order with
several writers (docs/journal.md); within a chain ``chain_seq`` is. A catch-up reads the
committed head of each chain first and projects up to it: every entry up to a committed
head is itself committed, so no row can be skipped.

A rebuild writes the next generation of the view's rows (ledger/store/view_tables.py)
and switches ``view_projectors.generation`` to it when it commits.

Two catch-ups of one projector serialise on its ``view_projectors`` row (PostgreSQL) or
on SQLite's write lock; different projectors run side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select, text, update

from ledger.logs import get_logger
from ledger.store import tables as t
from ledger.store import view_tables as v
from ledger.store.store import Store
from projectors import catalog, sql
from projectors.catalog import Projector

log = get_logger("projectors")

Progress = Callable[[int, int], object]  # (entries done, entries to do) of this call
DEFAULT_CHUNK = 50_000  # entries per statement: bounds one statement's memory, not speed
# A rebuild folds the ranges of every chain together: each statement scans postings once,
# so fewer, larger statements are faster (one scan in all, not one per chain or chunk).
REBUILD_CHUNK = 2_000_000
REBUILD_WORK_MEM = "256MB"  # per hash/sort node of a rebuild statement (PostgreSQL)


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
    """Replay the journal into a new generation of each named view and show it to
    readers, in one transaction per view (readers see the old generation until the new
    one commits, and never wait for it); then delete the old generation's rows."""
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
            generation = _lock(store, conn, projector.name)
            if rebuild:
                if store.backend == "postgresql":
                    # hash the whole journal in memory rather than in batches on disk
                    conn.execute(text(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'"))
                # the next generation, written beside the one readers see until this commits
                generation += 1
                conn.execute(
                    delete(v.view_checkpoints).where(
                        v.view_checkpoints.c.projector == projector.name
                    )
                )
            outcome.entries[projector.name] = _fold(
                store, conn, projector, chunk, progress, generation, rebuild=rebuild
            )
            if rebuild:
                _show(conn, projector.name, generation)
        if rebuild:  # the old generation's rows, which no new reader sees
            with store.begin() as conn:
                _delete_other_generations(conn, projector, _lock(store, conn, projector.name))
        log.debug(
            "projected",
            view=projector.name,
            entries=outcome.entries[projector.name],
            rebuild=rebuild,
        )
    return outcome


def _lock(store: Store, conn: Connection, name: str) -> int:
    """Take the projector's lock; returns the generation readers see."""
    table = v.view_projectors
    conn.execute(
        store.insert(table)
        .values(projector=name, generation=0)
        .on_conflict_do_nothing(index_elements=["projector"])
    )
    found = conn.execute(
        select(table.c.generation).where(table.c.projector == name).with_for_update()
    ).scalar_one()
    return int(found)


def _show(conn: Connection, name: str, generation: int) -> None:
    """Readers see ``generation`` of the view from the commit on."""
    table = v.view_projectors
    conn.execute(update(table).where(table.c.projector == name).values(generation=generation))


def _delete_other_generations(conn: Connection, projector: Projector, shown: int) -> None:
    """Rows of any generation but ``shown`` (the one a rebuild replaced; also what a
    rebuild that stopped before this step left)."""
    for table in projector.tables:
        conn.execute(delete(table).where(table.c.generation != shown))


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
    generation: int,
    *,
    rebuild: bool,
) -> int:
    done = checkpoints(conn, projector.name)
    todo = {
        chain: (done.get(chain, 0), head)
        for chain, head in heads(conn).items()
        if head > done.get(chain, 0)
    }
    total = sum(hi - lo for lo, hi in todo.values())
    count = 0
    if progress:
        progress(0, total)
    if rebuild:
        statements = [text(s) for s in projector.sql_for_ranges(store.backend)]
        for ranges in batches(todo, chunk):
            params = {**sql.PATTERNS, "generation": generation, "ranges": json.dumps(ranges)}
            for statement in statements:
                conn.execute(statement, params)
            count += sum(r["hi"] - r["lo"] for r in ranges)
            if progress:
                progress(count, total)
    else:
        statements = [text(s) for s in projector.sql_for(store.backend)]
        for chain, (lo, hi) in sorted(todo.items()):
            for ranges in batches({chain: (lo, hi)}, chunk):
                params = {**sql.PATTERNS, "generation": generation, **ranges[0]}
                for statement in statements:
                    conn.execute(statement, params)
                count += ranges[0]["hi"] - ranges[0]["lo"]
                if progress:
                    progress(count, total)
    for chain, (_, hi) in sorted(todo.items()):
        _save_checkpoint(store, conn, projector.name, chain, hi)
    return count


def batches(todo: dict[str, tuple[int, int]], chunk: int) -> Iterator[list[dict[str, Any]]]:
    """The ranges ``{chain: (lo, hi)}`` cut into lists of {"chain", "lo", "hi"} holding at
    most ``chunk`` entries each (chains in name order, so the cut is deterministic)."""
    batch: list[dict[str, Any]] = []
    room = chunk
    for chain, (lo, hi) in sorted(todo.items()):
        while lo < hi:
            top = min(hi, lo + room)
            batch.append({"chain": chain, "lo": lo, "hi": top})
            room -= top - lo
            lo = top
            if room == 0:
                yield batch
                batch, room = [], chunk
    if batch:
        yield batch


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
