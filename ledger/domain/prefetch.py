"""Load everything a batch will read in one bulk look-up per kind, before it runs; and run
a batch so (``decide``), as ingestion and verify's replay both do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ledger.domain import engine
from ledger.domain.events import Event
from ledger.domain.needs import Needs
from ledger.domain.processor import Incoming, Result, process
from ledger.domain.state import Key, StateLoader, WorkingState


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
    for buyer, _ in needs.attributions:  # the sharers an order may be attributed to
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
    # attribution reads one click per order: the latest back to the longest window of any
    # plan (a shorter window's answer is the same click or none)
    longest_window = max((p.window_ms for p in state.plans), default=0)
    state.prefetch(
        sharers=sharers,
        clicks=needs.named_clicks | new_clicks,
        latest_clicks=[(b, at, at - longest_window) for b, at in needs.attributions],
        orders=needs.orders | new_orders,
        refunds=needs.refunds,
        payouts=needs.payouts,
        runs=needs.runs,
        processed=event_ids,
        parked_refs=needs.refs,
        balances=needs.balances,
        enrollments=needs.enrollments,
    )
    state.prefetch_levels(sharers)


def decide(
    loader: StateLoader,
    incoming: list[Incoming],
    *,
    optimistic: bool,
    on_redo: Callable[[int], None] | None = None,
) -> tuple[list[Result], WorkingState]:
    """``incoming`` through the rules over ``loader``'s state, prefetched, with every
    balance assumed inside SPEC's ±2^62 bound. Rare: a batch that breaches it is run again
    with those balances checked event by event, so the event at fault is rejected and the
    rest applied (``on_redo`` is told how many balances)."""
    exact: set[Key] = set()
    while True:
        state = WorkingState(loader, optimistic_balances=True)
        state.prefetch(balances=exact)
        prefetch(state, [i.event for i in incoming], optimistic=optimistic)
        results = process(incoming, state)
        breached = state.breaches()
        if not breached:
            return results, state
        if on_redo is not None:
            on_redo(len(breached))
        exact |= breached
