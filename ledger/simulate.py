"""A seeded, deterministic 微商 platform: plans, a referral forest, buyers who click shared
links and order, completions, refunds, a settlement run and payouts.

Used by the demo, ``ledger simulate``, the tests and the benchmarks. The same seed always
gives the same events. One generator of buyer activity (``_buy``) serves two scenarios
that differ only in its ``Shape`` and in where the barriers fall: ``generate`` (plans
first, finance last, in phases) and ``generate_dense`` (barriers all along the stream).
``generate``'s events come in three phases so that tests running several consumers can
keep SPEC §4.5's barriers: ``setup`` (plans, enrollments), ``activity`` (clicks, orders,
completions, refunds: buyer events only), ``finance`` (settlement run, payouts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

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
from ledger.domain.plans import DAY_MS

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PRODUCER = "simulator"


@dataclass
class Workload:
    setup: list[Event] = field(default_factory=list)
    activity: list[Event] = field(default_factory=list)
    finance: list[Event] = field(default_factory=list)

    def all(self) -> list[Event]:
        return self.setup + self.activity + self.finance


def plans() -> list[PlanPublished]:
    """Two plans; the second changes the rates from day 10 on."""
    minimums = (MinPayout("CNY", 1000), MinPayout("USD", 500))
    return [
        PlanPublished(
            "plan-v1",
            START,
            PRODUCER,
            plan_id="standard-2026",
            effective_from=START,
            default_rate_bps=1000,
            platform_fee_bps=800,
            level_shares_bps=(5000, 3000, 2000),
            frozen_days=7,
            attribution_window_days=15,
            self_purchase_allowed=False,
            min_payouts=minimums,
        ),
        PlanPublished(
            "plan-v2",
            START + 1,
            PRODUCER,
            plan_id="spring-2026",
            effective_from=START + 10 * DAY_MS,
            default_rate_bps=1200,
            platform_fee_bps=1000,
            level_shares_bps=(6000, 2500, 1500),
            frozen_days=7,
            attribution_window_days=15,
            self_purchase_allowed=True,
            min_payouts=minimums,
        ),
    ]


@dataclass(frozen=True)
class Shape:
    """How a scenario's buyers act: where ids start, how far clicks reach back, which
    discounts lines carry, when orders complete and refunds come. The two scenarios differ
    only in these numbers (``REGULAR``, ``DENSE``); ``_buy`` draws the events for both."""

    ids: str  # the prefix of click, order and refund ids ("" regular, "d" dense)
    refund_ids: str  # the refund id's prefix before the order id
    order_from: int  # earliest order time after the start, ms
    click_reach: int  # clicks fall up to this long before their order, ms
    clicks_after_order_count: bool  # a click after its order can be the one referred to
    discounts: tuple[int | None, ...]
    completed: tuple[int, int]  # an order completes this long after it, ms (range)
    refunded: tuple[int, int]  # a refund comes this long after its order, ms (range)
    rest_refunded: bool  # half of the partial refunds are followed by the rest
    # the order in which the two scenarios always drew an order's click reference and its
    # merchant and currency: kept, so that a seed gives the events it always gave
    refer_first: bool


REGULAR = Shape(
    ids="",
    refund_ids="ref",
    order_from=DAY_MS,
    click_reach=20 * DAY_MS,
    clicks_after_order_count=False,
    discounts=(None, None, 0, 1500, 2500),
    completed=(DAY_MS // 2, 3 * DAY_MS),
    refunded=(DAY_MS, 12 * DAY_MS),
    rest_refunded=True,
    refer_first=True,
)
DENSE = Shape(
    ids="d",
    refund_ids="dref",
    order_from=DAY_MS // 2,
    click_reach=12 * DAY_MS,
    clicks_after_order_count=True,
    discounts=(None, None, 0, 2000),
    completed=(DAY_MS // 4, 2 * DAY_MS),
    refunded=(DAY_MS // 2, 10 * DAY_MS),
    rest_refunded=False,
    refer_first=False,
)


class Timeline:
    """Events with their times; ``events()`` in time order, ties in the order added."""

    def __init__(self) -> None:
        self._items: list[tuple[int, int, Event]] = []

    def add(self, at: int, event: Event) -> None:
        self._items.append((at, len(self._items), event))

    def events(self) -> list[Event]:
        return [event for _, _, event in sorted(self._items, key=lambda i: (i[0], i[1]))]


def _buy(
    rng: random.Random,
    timeline: Timeline,
    shape: Shape,
    *,
    n: int,
    tag: str,
    buyer: str,
    sharers: list[str],
    start: int,
    span: int,
    clicks_per_order: int,
    refund_share: float,
    currencies: tuple[str, ...],
) -> None:
    """Order ``n`` of a buyer: the clicks on shared links before it, the order, its
    completion and its refunds (the one generator of buyer activity)."""
    order_at = start + rng.randrange(shape.order_from, span - DAY_MS)
    last_click = None
    for c in range(rng.randint(1, clicks_per_order * 2 - 1)):
        click_id = f"{tag}{shape.ids}clk-{n:06d}-{c}"
        at = order_at - rng.randrange(0, shape.click_reach)
        timeline.add(
            at,
            ClickRecorded(
                f"ev-{click_id}",
                at,
                PRODUCER,
                click_id=click_id,
                sharer_id=rng.choice(sharers),
                buyer_id=buyer,
                product_id=f"sku-{rng.randrange(50)}",
            ),
        )
        if shape.clicks_after_order_count or at <= order_at:
            last_click = click_id
    order_id = f"{tag}{shape.ids}ord-{n:06d}"
    lines = tuple(
        OrderLine(
            f"l{k}",
            f"sku-{rng.randrange(50)}",
            rng.randint(1, 3),
            rng.randrange(500, 30_000),
            rng.choice(shape.discounts),
        )
        for k in range(rng.randint(1, 3))
    )
    if shape.refer_first:
        click_ref = last_click if rng.random() < 0.5 else None
    merchant = f"m{rng.randrange(8):02d}"
    currency = rng.choice(currencies)
    if not shape.refer_first:
        click_ref = last_click if rng.random() < 0.5 else None
    timeline.add(
        order_at,
        OrderPlaced(
            f"ev-{order_id}",
            order_at,
            PRODUCER,
            order_id=order_id,
            buyer_id=buyer,
            merchant_id=merchant,
            currency=currency,
            lines=lines,
            click_id=click_ref,
        ),
    )
    if rng.random() < 0.85:
        done_at = order_at + rng.randrange(*shape.completed)
        timeline.add(
            done_at,
            OrderCompleted(
                f"ev-done-{order_id}", done_at, PRODUCER, order_id=order_id, buyer_id=buyer
            ),
        )
    if rng.random() >= refund_share:
        return
    refund_at = order_at + rng.randrange(*shape.refunded)
    full = rng.random() < 0.5
    refund_lines = tuple(
        RefundLine(line.line_id, line.amount if full else max(1, line.amount // 2))
        for line in lines
    )
    timeline.add(
        refund_at,
        RefundIssued(
            f"ev-ref-{order_id}",
            refund_at,
            PRODUCER,
            refund_id=f"{shape.refund_ids}-{order_id}",
            order_id=order_id,
            buyer_id=buyer,
            lines=refund_lines,
        ),
    )
    if not shape.rest_refunded or full or rng.random() >= 0.5:
        return
    rest_at = refund_at + rng.randrange(1, 5 * DAY_MS)  # the rest comes back later
    rest = tuple(
        RefundLine(line.line_id, line.amount - part.amount)
        for line, part in zip(lines, refund_lines, strict=True)
        if line.amount > part.amount
    )
    if rest:
        timeline.add(
            rest_at,
            RefundIssued(
                f"ev-ref2-{order_id}",
                rest_at,
                PRODUCER,
                refund_id=f"ref2-{order_id}",
                order_id=order_id,
                buyer_id=buyer,
                lines=rest,
            ),
        )


def generate(
    seed: int = 7,
    *,
    sharers: int = 40,
    buyers: int = 200,
    orders: int = 300,
    clicks_per_order: int = 4,
    refund_share: float = 0.08,
    currencies: tuple[str, ...] = ("CNY", "USD"),
    days: int = 20,
    start: int = START,
    tag: str = "",
    heavy_buyers: int = 0,
    heavy_share: float = 0.0,
) -> Workload:
    """One period of a platform. ``start`` and ``tag`` (a prefix of every id the period
    creates: sharers, buyers, clicks, orders, refunds, runs, payouts) let periods be
    chained into a longer stream whose sharers and buyers grow with its orders
    (bench/long.py; the plans are the same in every period). ``heavy_buyers`` buyers
    ``h000``... (not tagged: the same in every period) place ``heavy_share`` of the
    orders. The defaults give the events this function always gave."""
    rng = random.Random(seed)
    work = Workload()
    work.setup.extend(plans())
    ids = [f"{tag}u{n:05d}" for n in range(sharers)]
    for n, sharer in enumerate(ids):
        # a forest with long chains: every sharer's upline is an earlier one, often recent
        upline = None if n < 3 or rng.random() < 0.1 else ids[max(0, n - rng.randint(1, 4))]
        work.setup.append(
            SharerEnrolled(
                f"enr-{sharer}", start + 2 + n, PRODUCER, sharer_id=sharer, upline_id=upline
            )
        )
    buyer_ids = [f"{tag}b{n:06d}" for n in range(buyers)] + ids[: sharers // 4]  # sharers buy
    heavy = [f"h{n:03d}" for n in range(heavy_buyers)]
    span = days * DAY_MS
    timeline = Timeline()
    for n in range(orders):
        heavy_order = heavy and rng.random() < heavy_share  # no draw without heavy buyers
        buyer = rng.choice(heavy) if heavy_order else rng.choice(buyer_ids)
        _buy(
            rng,
            timeline,
            REGULAR,
            n=n,
            tag=tag,
            buyer=buyer,
            sharers=ids,
            start=start,
            span=span,
            clicks_per_order=clicks_per_order,
            refund_share=refund_share,
            currencies=currencies,
        )
    work.activity.extend(timeline.events())

    run_at = start + span + 8 * DAY_MS
    work.finance.append(
        SettlementRun(f"ev-{tag}run-1", run_at, PRODUCER, run_id=f"{tag}run-1", as_of=run_at)
    )
    for n, sharer in enumerate(ids[:6]):
        payout_id = f"{tag}pay-{n:03d}"
        currency = currencies[n % len(currencies)]
        at = run_at + 1000 + n
        work.finance.append(
            PayoutRequested(
                f"ev-{payout_id}",
                at,
                PRODUCER,
                payout_id=payout_id,
                sharer_id=sharer,
                amount=1000,
                currency=currency,
            )
        )
        work.finance.append(
            PayoutSettled(
                f"ev-{payout_id}-ok", at + 60_000, PRODUCER, payout_id=payout_id, sharer_id=sharer
            )
        )
    return work


def generate_dense(
    seed: int = 11,
    *,
    sharers: int = 60,
    buyers: int = 400,
    orders: int = 2_000,
    clicks_per_order: int = 4,
    refund_share: float = 0.1,
    currencies: tuple[str, ...] = ("CNY", "USD"),
    days: int = 40,
    settle_every_days: float = 2.5,
    payouts_per_run: int = 12,
) -> list[Event]:
    """A barrier-dense platform, as one stream in publish order (event time order):
    plans published mid-stream, enrollments throughout (some before their upline, some
    cycles and re-enrollments), a settlement run every few days, payout requests after
    each run with their settled/failed (some still in flight at the end), between the
    buyers' clicks, orders, completions and refunds. Seeded: same seed, same events."""
    rng = random.Random(seed)
    span = days * DAY_MS
    timeline = Timeline()
    add = timeline.add

    minimums = (MinPayout("CNY", 1000), MinPayout("USD", 500))
    for n, (rate, fee, shares, self_ok) in enumerate(
        [
            (1000, 800, (5000, 3000, 2000), False),
            (1200, 1000, (6000, 2500, 1500), True),
            (900, 600, (5000, 2500, 2500), False),
        ]
    ):
        effective = START + n * (span // 3)
        published = START if n == 0 else effective - rng.randrange(DAY_MS, 3 * DAY_MS)
        add(
            published,
            PlanPublished(
                f"dplan-{n}",
                published,
                PRODUCER,
                plan_id=f"plan-{n}",
                effective_from=effective,
                default_rate_bps=rate,
                platform_fee_bps=fee,
                level_shares_bps=shares,
                frozen_days=3,
                attribution_window_days=10,
                self_purchase_allowed=self_ok,
                min_payouts=minimums,
            ),
        )
    ids = [f"s{n:04d}" for n in range(sharers)]
    joined: dict[str, int] = {}
    for n, sharer in enumerate(ids):
        at = START + 1 + (0 if n < 3 else rng.randrange(0, span * 3 // 4))
        joined[sharer] = at
        earlier = [s for s in ids[:n] if s != sharer]
        upline = None if n < 3 or rng.random() < 0.1 else rng.choice(earlier[-8:])
        add(at, SharerEnrolled(f"denr-{sharer}", at, PRODUCER, sharer_id=sharer, upline_id=upline))
        if rng.random() < 0.03:  # a second enrollment: rejected
            again = at + rng.randrange(1, DAY_MS)
            add(
                again,
                SharerEnrolled(
                    f"denr2-{sharer}", again, PRODUCER, sharer_id=sharer, upline_id=None
                ),
            )
    buyer_ids = [f"d{n:05d}" for n in range(buyers)] + ids[: sharers // 5]
    for n in range(orders):
        _buy(
            rng,
            timeline,
            DENSE,
            n=n,
            tag="",
            buyer=rng.choice(buyer_ids),
            sharers=ids,
            start=START,
            span=span,
            clicks_per_order=clicks_per_order,
            refund_share=refund_share,
            currencies=currencies,
        )
    run_at, run = START + int(settle_every_days * DAY_MS), 0
    while run_at < START + span:
        run += 1
        add(
            run_at,
            SettlementRun(f"ev-drun-{run}", run_at, PRODUCER, run_id=f"drun-{run}", as_of=run_at),
        )
        for k in range(payouts_per_run):
            sharer = rng.choice([s for s in ids if joined[s] < run_at] or ids)
            currency = rng.choice(currencies)
            payout_id = f"dpay-{run}-{k}"
            at = run_at + 1 + rng.randrange(0, DAY_MS // 2)
            amount = (1000 if currency == "CNY" else 500) * rng.choice([1, 1, 2, 3])
            add(
                at,
                PayoutRequested(
                    f"ev-{payout_id}",
                    at,
                    PRODUCER,
                    payout_id=payout_id,
                    sharer_id=sharer,
                    amount=amount,
                    currency=currency,
                ),
            )
            roll = rng.random()
            if roll < 0.8:
                end_at = at + rng.randrange(60_000, DAY_MS)
                ended = PayoutSettled if roll < 0.65 else PayoutFailed
                add(
                    end_at,
                    ended(
                        f"ev-{payout_id}-end",
                        end_at,
                        PRODUCER,
                        payout_id=payout_id,
                        sharer_id=sharer,
                    ),
                )
        run_at += int(settle_every_days * DAY_MS)
    return timeline.events()
