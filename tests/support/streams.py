"""Event builders and hypothesis strategies for the engine's rule and property tests.

* ``Ev``: terse builders for every event type, with fresh event ids unless one is given.
* ``streams(...)``: a strategy drawing a coherent random event stream (plans, a referral
  forest enrolled partly out of order, clicks, multi-line multi-currency orders, completions,
  partial/full/over refunds, settlement runs, payouts, exact redeliveries, reused ids).
* ``barrier_structure(events)`` and ``interleavings(events)``: SPEC §4.5's reordering
  promise. Buyer events (click, order, completion, refund) between two barriers may be
  interleaved in any way that keeps each buyer's order; every other event is a barrier.

Ids that the engine keys on (order, click, refund) embed the buyer id, so that two buyers
never collide on one: a collision across buyers would make the outcome depend on which
arrives first, which §4.5 does not promise to hide.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

from ledger.domain.events import (
    ClickRecorded,
    Event,
    MinPayout,
    OrderCompleted,
    OrderLine,
    OrderPlaced,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    PlanPublished,
    RefundIssued,
    RefundLine,
    SettlementRun,
    SharerEnrolled,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
BUYER_EVENTS = (ClickRecorded, OrderPlaced, OrderCompleted, RefundIssued)


class Ev:
    """Event builders. Each call returns one event with a fresh event id ``e1, e2, …``."""

    def __init__(self, prefix: str = "e") -> None:
        self.prefix = prefix
        self.count = 0

    def _eid(self, event_id: str | None) -> str:
        if event_id is not None:
            return event_id
        self.count += 1
        return f"{self.prefix}{self.count}"

    def plan(
        self,
        plan_id: str = "P1",
        effective_from: int = T0,
        *,
        rate: int = 1000,
        fee: int = 800,
        shares: tuple[int, int, int] = (5000, 3000, 2000),
        frozen: int = 7,
        window: int = 30,
        self_ok: bool = False,
        mins: Iterable[tuple[str, int]] = (("CNY", 100),),
        at: int | None = None,
        event_id: str | None = None,
    ) -> PlanPublished:
        return PlanPublished(
            self._eid(event_id),
            effective_from if at is None else at,
            "test",
            plan_id=plan_id,
            effective_from=effective_from,
            default_rate_bps=rate,
            platform_fee_bps=fee,
            level_shares_bps=shares,
            frozen_days=frozen,
            attribution_window_days=window,
            self_purchase_allowed=self_ok,
            min_payouts=tuple(MinPayout(c, a) for c, a in mins),
        )

    def enroll(
        self, sharer: str, upline: str | None = None, *, at: int = T0, event_id: str | None = None
    ) -> SharerEnrolled:
        return SharerEnrolled(self._eid(event_id), at, "test", sharer_id=sharer, upline_id=upline)

    def click(
        self,
        click_id: str,
        sharer: str,
        buyer: str,
        at: int,
        *,
        product: str = "P",
        event_id: str | None = None,
    ) -> ClickRecorded:
        return ClickRecorded(
            self._eid(event_id),
            at,
            "test",
            click_id=click_id,
            sharer_id=sharer,
            buyer_id=buyer,
            product_id=product,
        )

    def order(
        self,
        order_id: str,
        buyer: str,
        at: int,
        lines: Sequence[tuple[Any, ...]] = (("L1", 10_000, None),),
        *,
        merchant: str = "M1",
        currency: str = "CNY",
        click: str | None = None,
        event_id: str | None = None,
    ) -> OrderPlaced:
        """``lines``: (line_id, amount, rate_bps or None[, quantity[, product]])."""
        built = []
        for line in lines:
            line_id, amount, rate = line[:3]
            quantity = line[3] if len(line) > 3 else 1
            product = line[4] if len(line) > 4 else f"prod-{line_id}"
            built.append(OrderLine(line_id, product, quantity, amount, rate))
        return OrderPlaced(
            self._eid(event_id),
            at,
            "test",
            order_id=order_id,
            buyer_id=buyer,
            merchant_id=merchant,
            currency=currency,
            lines=tuple(built),
            click_id=click,
        )

    def complete(
        self, order_id: str, buyer: str, at: int, *, event_id: str | None = None
    ) -> OrderCompleted:
        return OrderCompleted(self._eid(event_id), at, "test", order_id=order_id, buyer_id=buyer)

    def refund(
        self,
        refund_id: str,
        order_id: str,
        buyer: str,
        lines: Sequence[tuple[str, int]],
        at: int,
        *,
        event_id: str | None = None,
    ) -> RefundIssued:
        return RefundIssued(
            self._eid(event_id),
            at,
            "test",
            refund_id=refund_id,
            order_id=order_id,
            buyer_id=buyer,
            lines=tuple(RefundLine(lid, amount) for lid, amount in lines),
        )

    def run(
        self, run_id: str, as_of: int, *, at: int | None = None, event_id: str | None = None
    ) -> SettlementRun:
        return SettlementRun(
            self._eid(event_id), as_of if at is None else at, "test", run_id=run_id, as_of=as_of
        )

    def request(
        self,
        payout_id: str,
        sharer: str,
        amount: int,
        currency: str = "CNY",
        *,
        at: int,
        event_id: str | None = None,
    ) -> PayoutRequested:
        return PayoutRequested(
            self._eid(event_id),
            at,
            "test",
            payout_id=payout_id,
            sharer_id=sharer,
            amount=amount,
            currency=currency,
        )

    def settled(
        self,
        payout_id: str,
        sharer: str,
        *,
        at: int,
        amount: int | None = None,
        currency: str | None = None,
        event_id: str | None = None,
    ) -> PayoutSettled:
        return PayoutSettled(
            self._eid(event_id),
            at,
            "test",
            payout_id=payout_id,
            sharer_id=sharer,
            amount=amount,
            currency=currency,
        )

    def failed(
        self,
        payout_id: str,
        sharer: str,
        *,
        at: int,
        amount: int | None = None,
        currency: str | None = None,
        event_id: str | None = None,
    ) -> PayoutFailed:
        return PayoutFailed(
            self._eid(event_id),
            at,
            "test",
            payout_id=payout_id,
            sharer_id=sharer,
            amount=amount,
            currency=currency,
            reason="bounced",
        )


# --- the barrier structure of SPEC §4.5 --------------------------------------------------


def buyer_of(event: Event) -> str | None:
    """The buyer whose order an event belongs to, or None for a barrier event."""
    if isinstance(event, BUYER_EVENTS):
        return event.buyer_id
    return None


Segment = Event | dict[str, list[Event]]


def barrier_structure(events: Sequence[Event]) -> list[Segment]:
    """The stream cut at its barriers: a barrier event stands alone; each maximal run of
    buyer events between two barriers becomes {buyer: that buyer's events, in order}."""
    segments: list[Segment] = []
    run: dict[str, list[Event]] = {}
    for event in events:
        buyer = buyer_of(event)
        if buyer is None:
            if run:
                segments.append(run)
                run = {}
            segments.append(event)
        else:
            run.setdefault(buyer, []).append(event)
    if run:
        segments.append(run)
    return segments


def flatten(
    segments: Sequence[Segment], orders: Sequence[Sequence[str]] | None = None
) -> list[Event]:
    """Events of ``segments`` in order; for the k-th buyer run, ``orders[k]`` is the
    sequence of buyer ids to take next events from (default: buyer by buyer)."""
    out: list[Event] = []
    k = 0
    for segment in segments:
        if isinstance(segment, dict):
            if orders is None:
                for events in segment.values():
                    out.extend(events)
            else:
                cursors = {buyer: iter(events) for buyer, events in segment.items()}
                out.extend(next(cursors[buyer]) for buyer in orders[k])
            k += 1
        else:
            out.append(segment)
    return out


def interleavings(events: Sequence[Event]) -> st.SearchStrategy[list[Event]]:
    """Any reordering of ``events`` that §4.5 promises gives identical final balances."""
    segments = barrier_structure(events)
    tokens = [
        [buyer for buyer, evs in segment.items() for _ in evs]
        for segment in segments
        if isinstance(segment, dict)
    ]
    return st.tuples(*(st.permutations(t) for t in tokens)).map(
        lambda orders: flatten(segments, orders)
    )


# --- coherent random streams --------------------------------------------------------------


@dataclass
class _Order:
    buyer: str
    event: OrderPlaced
    refunded: dict[str, int] = field(default_factory=dict)
    completed: bool = False

    def remaining(self, line: OrderLine) -> int:
        return line.amount - self.refunded.get(line.line_id, 0)


@dataclass
class _World:
    """What the generator has emitted so far, so that later events refer to it."""

    ev: Ev
    currencies: tuple[str, ...]
    sharers: list[str]
    buyers: list[str]
    out: list[Event] = field(default_factory=list)
    clock: int = T0 + 1_000
    clicks: dict[str, list[str]] = field(default_factory=dict)  # buyer -> click ids
    orders: dict[str, _Order] = field(default_factory=dict)
    payouts: dict[str, PayoutRequested] = field(default_factory=dict)
    enrollments: list[SharerEnrolled] = field(default_factory=list)  # not yet emitted
    completions: list[int] = field(default_factory=list)  # completion times emitted
    minimums: dict[str, int] = field(default_factory=dict)  # highest payout minimum emitted
    frozen: list[int] = field(default_factory=list)  # frozen days of the plans emitted
    n: int = 0

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


_STEPS = [
    "click",
    "order",
    "sale",
    "sale",
    "sale",
    "sale",
    "complete",
    "complete",
    "complete",
    "refund",
    "refund",
    "run",
    "run",
    "payout",
    "payout_end",
    "payout_end",
    "payout_cashout",
    "enroll",
    "enroll",
    "redeliver",
    "fault",
]
_TICKS = [0, 1, 1_000, DAY // 4, DAY, 2 * DAY, 8 * DAY]


def _plan_event(
    draw: st.DrawFn, world: _World, plan_id: str, effective_from: int, at: int
) -> PlanPublished:
    shares = draw(
        st.sampled_from(
            [
                (5000, 3000, 2000),
                (6000, 2500, 1500),
                (10000, 0, 0),
                (3333, 3333, 3334),
                (4000, 3000, 2000),
            ]
        )
    )
    mins = [
        (c, draw(st.sampled_from([1, 1, 100, 300])))
        for c in world.currencies
        if c == world.currencies[0] or draw(st.booleans())
    ]
    for currency, minimum in mins:
        world.minimums[currency] = max(minimum, world.minimums.get(currency, 0))
    frozen = draw(st.sampled_from([0, 1, 1, 7]))
    world.frozen.append(frozen)
    return world.ev.plan(
        plan_id,
        effective_from,
        at=at,
        rate=draw(st.sampled_from([1000, 1000, 2500, 500, 10_000, 0])),
        fee=draw(st.sampled_from([800, 800, 0, 1000, 3333, 10_000])),
        shares=shares,
        frozen=frozen,
        window=draw(st.sampled_from([30, 30, 3, 1, 0])),
        self_ok=draw(st.booleans()),
        mins=mins,
    )


def _step_click(draw: st.DrawFn, w: _World) -> None:
    buyer = draw(st.sampled_from(w.buyers))
    sharer = draw(st.sampled_from(w.sharers * 3 + ["X-" + buyer, buyer]))  # X-…: never enrolled
    click_id = w.fresh(f"C-{buyer}-")
    w.clicks.setdefault(buyer, []).append(click_id)
    at = w.clock - draw(st.sampled_from([0, 0, 1, DAY]))
    w.out.append(w.ev.click(click_id, sharer, buyer, at, product=draw(st.sampled_from("PQR"))))
    if draw(st.integers(0, 3)) == 0:  # a second click at the same ms: the first received wins
        other = draw(st.sampled_from(w.sharers))
        tie_id = w.fresh(f"C-{buyer}-")
        w.clicks[buyer].append(tie_id)
        w.out.append(w.ev.click(tie_id, other, buyer, at))


def _step_sale(draw: st.DrawFn, w: _World) -> None:
    """A click, then (most often at once) the buyer's order."""
    _step_click(draw, w)
    if draw(st.integers(0, 3)):
        buyer = w.out[-1].buyer_id  # type: ignore[attr-defined]
        w.clock += draw(st.sampled_from([0, 1, 1_000, DAY]))
        _step_order(draw, w, buyer)
        if draw(st.booleans()):  # the buyer confirms receipt soon after
            order_id = w.out[-1].order_id  # type: ignore[attr-defined]
            w.orders[order_id].completed = True
            w.completions.append(w.clock)
            w.out.append(w.ev.complete(order_id, buyer, w.clock))


def _step_order(draw: st.DrawFn, w: _World, buyer: str | None = None) -> None:
    if buyer is None:
        buyer = draw(st.sampled_from(w.buyers))
    n_lines = draw(st.integers(1, 3))
    lines = []
    for k in range(n_lines):
        amount = draw(
            st.one_of(st.sampled_from([0, 1, 999, 1200, 8800, 10_000]), st.integers(0, 50_000))
        )
        rate = draw(st.sampled_from([None, None, None, 0, 1, 2500, 10_000]))
        lines.append((f"L{k}", amount, rate, draw(st.integers(0, 5))))
    own = w.clicks.get(buyer, [])
    others = [c for b, ids in w.clicks.items() if b != buyer for c in ids]
    choices = [None, None, f"C-{buyer}-ghost"] + own[-3:] + others[-2:]
    order_id = w.fresh(f"O-{buyer}-")
    event = w.ev.order(
        order_id,
        buyer,
        w.clock,
        lines,
        merchant=draw(st.sampled_from(["M1", "M2"])),
        currency=draw(st.sampled_from(w.currencies)),
        click=draw(st.sampled_from(choices)),
    )
    w.orders[order_id] = _Order(buyer, event)
    w.out.append(event)


def _pick_order(draw: st.DrawFn, w: _World) -> tuple[str, _Order] | None:
    if not w.orders:
        return None
    order_id = draw(st.sampled_from(sorted(w.orders)))
    return order_id, w.orders[order_id]


def _step_complete(draw: st.DrawFn, w: _World) -> None:
    open_orders = sorted(o for o, order in w.orders.items() if not order.completed)
    if open_orders and draw(st.integers(0, 5)) != 0:
        order_id = draw(st.sampled_from(open_orders))
        order = w.orders[order_id]
    else:  # sometimes complete twice (rejected already_completed)
        picked = _pick_order(draw, w)
        if picked is None:
            return
        order_id, order = picked
    order.completed = True
    w.completions.append(w.clock)
    w.out.append(w.ev.complete(order_id, order.buyer, w.clock))


def _step_refund(draw: st.DrawFn, w: _World) -> None:
    picked = _pick_order(draw, w)
    if picked is None:
        return
    order_id, order = picked
    lines: list[tuple[str, int]] = []
    kind = draw(
        st.sampled_from(
            ["partial", "partial", "partial", "full", "full", "over", "zero", "unknown"]
        )
    )
    for line in order.event.lines:
        left = order.remaining(line)
        if kind == "full":
            if left > 0:
                lines.append((line.line_id, left))
        elif left > 0 and draw(st.booleans()):
            lines.append((line.line_id, draw(st.integers(1, left))))
    if kind == "over":
        line = draw(st.sampled_from(order.event.lines))
        lines = [(line.line_id, order.remaining(line) + 1)]
    elif kind == "zero":
        lines = [(order.event.lines[0].line_id, draw(st.sampled_from([0, -5])))]
    elif kind == "unknown":
        lines = lines + [("L-none", 1)]
    if not lines:
        return
    if kind in ("partial", "full"):
        for line_id, amount in lines:
            order.refunded[line_id] = order.refunded.get(line_id, 0) + amount
    w.out.append(w.ev.refund(w.fresh(f"R-{order.buyer}-"), order_id, order.buyer, lines, w.clock))


def _step_run(draw: st.DrawFn, w: _World) -> None:
    as_of = w.clock + draw(st.sampled_from([0, 0, -DAY, -7 * DAY, 8 * DAY]))
    if w.completions and draw(st.booleans()) is True:  # aim at a frozen period's last millisecond
        as_of = (
            draw(st.sampled_from(w.completions))
            + draw(st.sampled_from(w.frozen)) * DAY
            + draw(st.sampled_from([-1, 0, 0]))
        )
    # mostly a run at or after its as-of; now and then one ahead of its time (as_of_in_future)
    at = w.clock if draw(st.integers(0, 4)) == 0 else max(w.clock, as_of)
    w.out.append(w.ev.run(w.fresh("RUN"), as_of, at=at))


def _step_payout(draw: st.DrawFn, w: _World) -> None:
    earners = sorted({e.sharer_id for e in w.out if isinstance(e, ClickRecorded)} & set(w.sharers))
    sharer = draw(
        st.sampled_from(earners if earners and draw(st.integers(0, 3)) != 0 else w.sharers)
    )
    payout_id = w.fresh("PAY")
    amount = draw(st.sampled_from([-1, 0, 1, 1, 1, 1, 50, 100, 300, 800]))
    currency = draw(st.sampled_from(w.currencies * 4 + ("EUR",)))
    event = w.ev.request(payout_id, sharer, amount, currency, at=w.clock)
    w.payouts[payout_id] = event
    w.out.append(event)


def _step_cashout(draw: st.DrawFn, w: _World) -> None:
    """A run settling every completed order, a small payout of an earner, maybe its end."""
    w.out.append(w.ev.run(w.fresh("RUN"), w.clock + 8 * DAY, at=w.clock + 8 * DAY))
    earners = sorted({e.sharer_id for e in w.out if isinstance(e, ClickRecorded)} & set(w.sharers))
    if not earners:
        return
    payout_id = w.fresh("PAY")
    currency = draw(st.sampled_from(w.currencies))
    amount = w.minimums.get(currency, 1) + draw(st.sampled_from([0, 1, 10]))
    event = w.ev.request(payout_id, draw(st.sampled_from(earners)), amount, currency, at=w.clock)
    w.payouts[payout_id] = event
    w.out.append(event)
    if draw(st.booleans()):
        _step_payout_end(draw, w, event)


def _step_payout_end(draw: st.DrawFn, w: _World, request: PayoutRequested | None = None) -> None:
    if request is None:
        if not w.payouts:
            return
        request = w.payouts[draw(st.sampled_from(sorted(w.payouts)))]
    make = w.ev.settled if draw(st.booleans()) else w.ev.failed
    amount = draw(st.sampled_from([None, None, request.amount, request.amount + 1]))
    w.out.append(
        make(
            request.payout_id,
            request.sharer_id,
            at=w.clock,
            amount=amount,
            currency=draw(st.sampled_from([None, request.currency])),
        )
    )


def _step_enroll(draw: st.DrawFn, w: _World) -> None:
    if w.enrollments:
        w.out.append(w.enrollments.pop(draw(st.integers(0, len(w.enrollments) - 1))))


def _step_redeliver(draw: st.DrawFn, w: _World) -> None:
    if w.out:
        w.out.append(draw(st.sampled_from(w.out)))


def _step_fault(draw: st.DrawFn, w: _World) -> None:
    """An event the engine must reject: a reused id, a re-enrollment, a cycle attempt."""
    kind = draw(
        st.sampled_from(
            [
                "order_id",
                "click_id",
                "refund_id",
                "payout_id",
                "reenroll",
                "cycle",
                "self_upline",
                "plan",
                "plan_effective",
            ]
        )
    )
    ev = w.ev
    if kind == "order_id" and w.orders:
        _, order = draw(st.sampled_from(sorted(w.orders.items(), key=lambda kv: kv[0])))
        w.out.append(replace(order.event, event_id=ev._eid(None), merchant_id="M-dup"))
    elif kind == "click_id":
        buyer = draw(st.sampled_from(w.buyers))
        if w.clicks.get(buyer):
            click_id = draw(st.sampled_from(w.clicks[buyer]))
            w.out.append(ev.click(click_id, draw(st.sampled_from(w.sharers)), buyer, w.clock))
    elif kind == "refund_id":
        refunds = [e for e in w.out if isinstance(e, RefundIssued)]
        if refunds:
            old = draw(st.sampled_from(refunds))
            w.out.append(replace(old, event_id=ev._eid(None), occurred_at=w.clock))
    elif kind == "payout_id" and w.payouts:
        request = w.payouts[draw(st.sampled_from(sorted(w.payouts)))]
        w.out.append(replace(request, event_id=ev._eid(None), occurred_at=w.clock))
    elif kind == "reenroll":
        sharer = draw(st.sampled_from(w.sharers))
        w.out.append(ev.enroll(sharer, None, at=w.clock))
    elif kind == "cycle":
        x, y = w.fresh("CX"), w.fresh("CY")
        w.out.append(ev.enroll(x, y, at=w.clock))  # waits for y
        w.out.append(ev.enroll(y, x, at=w.clock))  # would close x → y → x
    elif kind == "self_upline":
        x = w.fresh("CZ")
        w.out.append(ev.enroll(x, x, at=w.clock))
    elif kind == "plan":
        w.out.append(_plan_event(draw, w, "P1", T0 + DAY * 1000, w.clock))  # plan id reused
    elif kind == "plan_effective":
        w.out.append(_plan_event(draw, w, w.fresh("PD"), T0, w.clock))  # effective-from reused


_STEP_FUNCS = {
    "click": _step_click,
    "order": _step_order,
    "sale": _step_sale,
    "complete": _step_complete,
    "refund": _step_refund,
    "run": _step_run,
    "payout": _step_payout,
    "payout_end": _step_payout_end,
    "payout_cashout": _step_cashout,
    "enroll": _step_enroll,
    "redeliver": _step_redeliver,
    "fault": _step_fault,
}


def _move_before_reference(draw: st.DrawFn, events: list[Event]) -> list[Event]:
    """Move a few completions/refunds before their order and payout ends before their
    request, so that they wait (§4.6) and are released when the reference arrives."""
    events = list(events)
    for _ in range(draw(st.integers(0, 3))):
        movable = [
            i
            for i, e in enumerate(events)
            if isinstance(e, (OrderCompleted, RefundIssued, PayoutSettled, PayoutFailed))
        ]
        if not movable:
            break
        i = draw(st.sampled_from(movable))
        event = events[i]
        if isinstance(event, (OrderCompleted, RefundIssued)):
            targets = [
                j
                for j, e in enumerate(events)
                if isinstance(e, OrderPlaced) and e.order_id == event.order_id
            ]
        else:
            assert isinstance(event, (PayoutSettled, PayoutFailed))
            targets = [
                j
                for j, e in enumerate(events)
                if isinstance(e, PayoutRequested) and e.payout_id == event.payout_id
            ]
        if targets and targets[0] < i:
            events.insert(targets[0], events.pop(i))
    return events


@st.composite
def streams(
    draw: st.DrawFn,
    max_buyers: int = 3,
    max_sharers: int = 6,
    min_steps: int = 10,
    max_steps: int = 40,
    currencies: tuple[str, ...] = ("CNY", "USD"),
    payouts: bool = True,
    plan_change: bool = True,
    faults: bool = True,
    redeliveries: bool = True,
) -> list[Event]:
    """A coherent random event stream (see the module docstring)."""
    ev = Ev()
    n_currencies = draw(st.integers(1, len(currencies)))
    sharers = [f"S{i}" for i in range(draw(st.integers(1, max_sharers)))]
    buyers = draw(
        st.lists(
            st.sampled_from([f"B{i}" for i in range(max_buyers)] + sharers),
            min_size=1,
            max_size=max_buyers,
            unique=True,
        )
    )
    world = _World(ev, currencies[:n_currencies], sharers, buyers)

    # a referral forest; upline index biased to the previous sharer, so chains grow deep
    enrollments = []
    for i, sharer in enumerate(sharers):
        if i == 0 or draw(st.integers(0, 4)) == 0:
            upline = None
        else:
            upline = sharers[draw(st.sampled_from([i - 1, i - 1, draw(st.integers(0, i - 1))]))]
        if draw(st.integers(0, 6)) > 0:  # a few sharers never enroll
            enrollments.append(ev.enroll(sharer, upline, at=T0 + i))
    if draw(st.booleans()):
        enrollments = list(draw(st.permutations(enrollments)))  # some wait for their upline
    head = len(enrollments) if draw(st.booleans()) else draw(st.integers(0, len(enrollments)))
    world.enrollments = enrollments[head:]

    world.out.append(_plan_event(draw, world, "P1", T0, T0))
    world.out.extend(enrollments[:head])

    steps = [
        s
        for s in _STEPS
        if (payouts or not s.startswith("payout"))
        and (faults or s != "fault")
        and (redeliveries or s != "redeliver")
    ]
    plan2_at = draw(st.integers(0, max_steps)) if plan_change else None
    for k in range(draw(st.integers(min_steps, max_steps))):
        world.clock += draw(st.sampled_from(_TICKS))
        if k == plan2_at:
            effective = world.clock + draw(st.sampled_from([-3 * DAY, -1, 0, DAY]))
            world.out.append(_plan_event(draw, world, "P2", effective, world.clock))
        _STEP_FUNCS[draw(st.sampled_from(steps))](draw, world)
    world.out.extend(world.enrollments)
    return _move_before_reference(draw, world.out)


# --- small helpers for the rule tests ----------------------------------------------------


def chain(ev: Ev, depth: int, *, prefix: str = "S", at: int = T0) -> list[SharerEnrolled]:
    """Enrollments of S1 → S2 → … → S<depth> (S1's upline is S2), the root first."""
    names = [f"{prefix}{k}" for k in range(1, depth + 1)]
    return [
        ev.enroll(name, names[k + 1] if k + 1 < depth else None, at=at + depth - k)
        for k, name in reversed(list(enumerate(names)))
    ]


def reasons(ledger) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """event_id -> rejection reason."""
    return {event_id: reason for event_id, reason, _ in ledger.rejected}


def sharer_buckets(ledger, sharer: str, currency: str = "CNY") -> dict[str, int]:  # type: ignore[no-untyped-def]
    """{pending, available, inflight, paid} of one sharer in one currency."""
    return {
        bucket: ledger.balance(f"sharer:{sharer}:{bucket}", currency)
        for bucket in ("pending", "available", "inflight", "paid")
    }


def earned(ledger, currency: str = "CNY") -> dict[str, int]:  # type: ignore[no-untyped-def]
    """sharer id -> pending balance, for sharers whose pending is not zero."""
    out = {}
    for (account, cur), amount in ledger.balances().items():
        if cur == currency and account.startswith("sharer:") and account.endswith(":pending"):
            out[account.split(":")[1]] = amount
    return out


def postings_of(entry) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {p.account: p.amount for p in entry.postings}


__all__ = [
    "BUYER_EVENTS",
    "DAY",
    "T0",
    "Ev",
    "barrier_structure",
    "buyer_of",
    "chain",
    "earned",
    "flatten",
    "interleavings",
    "postings_of",
    "reasons",
    "sharer_buckets",
    "streams",
]
