"""Which click, and so which sharer, an order is attributed to (SPEC §3 Attribution)."""

from __future__ import annotations

from ledger.domain.model import Click


def qualifies(click: Click, buyer_id: str, order_at: int, window_ms: int) -> bool:
    """Same buyer, and ``order_at − window ≤ click time ≤ order_at``."""
    return click.buyer_id == buyer_id and order_at - window_ms <= click.occurred_at <= order_at


def attribute(
    named: Click | None,
    buyer_clicks: list[Click],
    buyer_id: str,
    order_at: int,
    window_ms: int,
) -> Click | None:
    """The named click if it qualifies, else the buyer's latest qualifying click.

    ``buyer_clicks`` is ordered by (time, arrival); among clicks at the same latest time
    the one received first wins.
    """
    if named is not None and qualifies(named, buyer_id, order_at, window_ms):
        return named
    best: Click | None = None
    for click in reversed(buyer_clicks):
        if click.occurred_at > order_at:
            continue
        if click.occurred_at < order_at - window_ms:
            break
        if best is not None and click.occurred_at < best.occurred_at:
            break
        best = click  # walking backwards: a same-time click seen later arrived earlier
    return best
