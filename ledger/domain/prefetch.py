"""Load everything a batch will read in one bulk look-up per kind, before it runs."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.domain import engine
from ledger.domain.events import Event
from ledger.domain.needs import Needs
from ledger.domain.state import WorkingState


def needs_of(events: Sequence[Event]) -> Needs:
    """The union of what each event's type declares it reads (``engine.RULES``)."""
    needs = Needs()
    for event in events:
        rules = engine.RULES.get(type(event))
        if rules is not None:
            rules.needs(event, needs)
    return needs


def prefetch(state: WorkingState, events: Sequence[Event], *, optimistic: bool) -> None:
    """One bulk look-up per kind of reference the batch's events name.

    ``optimistic``: ids that are only read to detect a duplicate (the event ids, the ids of
    new clicks and orders) are assumed new without a query. A wrong assumption cannot go
    unnoticed: the event, click or order row is then inserted a second time, the unique
    key refuses it, and the batch is redone without assumptions (the service's
    ``ingest``)."""
    needs = needs_of(events)
    sharers = set(needs.sharers)
    for buyer in needs.buyers:  # the sharers an order of this batch may be attributed to
        sharers.update(needs.click_sharers.get(buyer, ()))
    event_ids = {e.event_id for e in events}
    new_clicks, new_orders = needs.new_clicks, needs.new_orders
    if optimistic:
        state.assume_absent(
            processed=event_ids,
            clicks=new_clicks - needs.named_clicks,
            orders=new_orders - needs.orders,
        )
        event_ids, new_clicks, new_orders = set(), set(), set()
    # attribution reads clicks back to the longest window of any plan, no further
    longest_window = max((p.window_ms for p in state.plans), default=0)
    state.prefetch(
        sharers=sharers,
        clicks=needs.named_clicks | new_clicks,
        buyers=needs.buyers,
        orders=needs.orders | new_orders,
        refunds=needs.refunds,
        payouts=needs.payouts,
        runs=needs.runs,
        processed=event_ids,
        parked_refs=needs.refs,
        balances=needs.balances,
        enrollments=needs.enrollments,
        clicks_since=(needs.first_order_at or 0) - longest_window,
    )
    state.prefetch_levels(sharers)
