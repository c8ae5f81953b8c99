"""The two event streams every row of bench/run.py is measured on (seeded, deterministic).

- ``realistic``: ``simulate.generate`` whole: plans and enrollments (setup), then clicks
  >> orders > completions > refunds (activity), then a settlement run and payouts
  (finance). Every event goes through Kafka; the publisher writes barrier markers.
- ``orders_only``: the issue's peer comparison: the plans and a 10,000-sharer referral
  forest first (barrier events on the accounts topic), then per order one click and one
  order naming that click, each order from its own buyer and on one line.
"""

from __future__ import annotations

import random

from bench.support import (
    PRODUCER,
    START,
    ClickRecorded,
    Event,
    OrderLine,
    OrderPlaced,
    SharerEnrolled,
    generate,
    plans,
)

DAY_MS = 86_400_000


def realistic(seed: int, orders: int, sharers: int = 500, buyers: int = 20_000) -> list[Event]:
    return generate(seed=seed, sharers=sharers, buyers=buyers, orders=orders).all()


def sharer_ids(sharers: int) -> list[str]:
    return [f"u{n:05d}" for n in range(sharers)]


def forest(rng: random.Random, sharers: int) -> list[SharerEnrolled]:
    """Enrollments of a forest with long chains (each upline is a recent earlier sharer),
    like ``simulate.generate``'s."""
    ids = sharer_ids(sharers)
    out = []
    for n, sharer in enumerate(ids):
        upline = None if n < 3 or rng.random() < 0.1 else ids[max(0, n - rng.randint(1, 4))]
        out.append(
            SharerEnrolled(
                f"enr-{sharer}", START + 2 + n, PRODUCER, sharer_id=sharer, upline_id=upline
            )
        )
    return out


def orders_only(seed: int, orders: int, sharers: int = 10_000) -> list[Event]:
    """Plans, ``sharers`` enrollments, then ``orders`` × (click, order naming the click)."""
    rng = random.Random(seed)
    events: list[Event] = [*plans(), *forest(rng, sharers)]
    ids = sharer_ids(sharers)
    step = max(1, (20 * DAY_MS) // max(1, orders))  # orders spread over 20 days
    for n in range(orders):
        at = START + DAY_MS + n * step
        buyer = f"b{n:07d}"
        click_id = f"clk-{n:07d}"
        events.append(
            ClickRecorded(
                f"ev-{click_id}",
                at - 60_000,
                PRODUCER,
                click_id=click_id,
                sharer_id=rng.choice(ids),
                buyer_id=buyer,
                product_id=f"sku-{rng.randrange(50)}",
            )
        )
        events.append(
            OrderPlaced(
                f"ev-ord-{n:07d}",
                at,
                PRODUCER,
                order_id=f"ord-{n:07d}",
                buyer_id=buyer,
                merchant_id=f"m{rng.randrange(8):02d}",
                currency="CNY",
                lines=(OrderLine("l0", f"sku-{rng.randrange(50)}", 1, rng.randrange(500, 30_000)),),
                click_id=click_id,
            )
        )
    return events


def count_orders(events: list[Event]) -> int:
    return sum(1 for e in events if isinstance(e, OrderPlaced))
