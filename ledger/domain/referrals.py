"""The referral tree: levels of an order and the checks on a new enrollment."""

from __future__ import annotations

from ledger.domain.reasons import Reason
from ledger.domain.state import WorkingState

MAX_LEVELS = 3  # deeper chains are pyramid selling (传销): never paid


def levels(level1: str, state: WorkingState) -> tuple[str, ...]:
    """Level 1 is ``level1`` (an enrolled sharer), then its upline, then the upline's
    upline, as far as they exist and never past level 3."""
    chain = [level1]
    sharer = state.sharer(level1)
    while sharer is not None and sharer.upline_id is not None and len(chain) < MAX_LEVELS:
        chain.append(sharer.upline_id)
        sharer = state.sharer(sharer.upline_id)
    return tuple(chain)


def enrollment_problem(
    sharer_id: str, upline_id: str | None, state: WorkingState
) -> tuple[Reason, str] | None:
    """Re-enrollment or a cycle through applied or waiting enrollments, else None."""
    waiting, _ = state.waiting_upline(sharer_id)
    if state.sharer(sharer_id) is not None or waiting:
        return (Reason.ALREADY_ENROLLED, f"sharer {sharer_id!r} is already enrolled or waiting")
    seen = {sharer_id}
    current = upline_id
    while current is not None:
        if current in seen:
            return (
                Reason.ENROLLMENT_CYCLE,
                f"enrolling {sharer_id!r} under {upline_id!r} would close a referral cycle",
            )
        seen.add(current)
        if state.sharer(current) is not None:
            # an applied enrollment's uplines are all applied (one waits until its upline
            # is), and sharer_id is not: no need to walk a chain that may be very long
            return None
        is_waiting, waiting_upline = state.waiting_upline(current)
        current = waiting_upline if is_waiting else None
    return None
