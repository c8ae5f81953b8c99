"""Verify a stored ledger: every hash chain recomputed, then (by default) the event log
replayed through the rules and compared with the journal and the reference state."""

from __future__ import annotations

from ledger.journal import VerifyReport
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
) -> VerifyReport:
    """Recompute every chain from the stored rows and report the first bad row.

    Reads one consistent snapshot, streaming rows ordered by (chain, chain_seq),
    ``batch_size`` at a time. Journal: chain_seq continuity from 1, seq order within a
    chain, each link's hash and prev_hash, balance per currency, postings' occurred_at,
    orphan postings and agreement with ``chain_heads``. Event log: the same chain checks
    (ledger/eventlog.py). Then, unless ``replay`` is False, the event log is replayed
    through the rules and what it implies is compared with the journal and the reference
    state (ledger/store/replay.py). Compares the ledger head with ``expect_head`` when
    given. Never raises for a stored value of any type: that is a reported problem.
    ``progress(stage, done, total)`` is called as each stage advances (``STAGES``)."""
    if type(batch_size) is not int or batch_size < 1:
        raise StoreError(f"batch_size must be a positive int, not {batch_size!r}")
    check = None
    if replay:
        from ledger.store.replay import check_replay

        check = check_replay
    with store.read() as conn:
        return verify_snapshot(
            conn,
            batch_size=batch_size,
            expect_head=expect_head,
            replay=check,
            progress=progress,
        )
