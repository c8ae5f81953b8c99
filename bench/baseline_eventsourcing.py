"""Peer baseline: the same commission rules on the ``eventsourcing`` library (PyPI) with
its PostgreSQL recorder, fed the same decoded events from Kafka.

Aggregates: ``Sharer`` (enrolled with an upline; accrues commissions), ``Click`` (which
sharer a buyer followed) and ``Order`` (its split). Per order the application loads the
named click and the sharer chain from the repository (up to the plan's levels), computes
the split with ``ledger.domain.money.split_lines``, and saves the order with the accruals
of its sharers in one ``save`` (one transaction). The two plans are kept in memory.
Variants: the library's defaults (every ``get`` replays the aggregate's events) and its
aggregate cache (``AGGREGATE_CACHE_MAXSIZE``).
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from sqlalchemy import make_url

from bench.ceiling import stream_events
from bench.support import (
    BaselineClock,
    ClickRecorded,
    OrderPlaced,
    PlanPublished,
    SharerEnrolled,
    Topics,
    fresh_database,
    split_lines,
)

SETUP_CHUNK = 500
NAMESPACE = uuid.UUID("6f1c1d2e-0000-4000-8000-000000000016")


class Sharer(Aggregate):
    @staticmethod
    def create_id(sharer_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"sharer:{sharer_id}")

    @event("Enrolled")
    def __init__(self, sharer_id: str, upline_id: str | None) -> None:
        self.sharer_id = sharer_id
        self.upline_id = upline_id
        self.pending: dict[str, int] = {}

    @event("CommissionAccrued")
    def accrue(self, order_id: str, currency: str, amount: int) -> None:  # noqa: ARG002
        # (@event stores every argument in the event, order_id included)
        self.pending[currency] = self.pending.get(currency, 0) + amount


class Click(Aggregate):
    @staticmethod
    def create_id(click_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"click:{click_id}")

    @event("Recorded")
    def __init__(self, click_id: str, sharer_id: str, buyer_id: str, occurred_at: int) -> None:
        self.click_id = click_id
        self.sharer_id = sharer_id
        self.buyer_id = buyer_id
        self.occurred_at = occurred_at


class Order(Aggregate):
    @staticmethod
    def create_id(order_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"order:{order_id}")

    @event("Placed")
    def __init__(
        self,
        order_id: str,
        buyer_id: str,
        merchant_id: str,
        currency: str,
        plan_id: str,
        levels: list[str],
        fee: int,
        shares: list[int],
    ) -> None:
        self.order_id = order_id
        self.buyer_id = buyer_id
        self.merchant_id = merchant_id
        self.currency = currency
        self.plan_id = plan_id
        self.levels = levels
        self.fee = fee
        self.shares = shares


class Commissions(Application[uuid.UUID]):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env=env)
        self.plans: list[PlanPublished] = []

    def publish_plan(self, e: PlanPublished) -> None:
        self.plans = sorted([*self.plans, e], key=lambda p: p.effective_from)

    def enroll(self, enrollments: list[SharerEnrolled]) -> None:
        """The setup (not timed), saved in chunks to keep the run short."""
        self.save(*(Sharer(e.sharer_id, e.upline_id) for e in enrollments))

    def click(self, e: ClickRecorded) -> None:
        self.save(Click(e.click_id, e.sharer_id, e.buyer_id, e.occurred_at))

    def place(self, e: OrderPlaced) -> int:
        """Saves the order and its sharers' accruals; returns the postings it implies."""
        plan = next((p for p in reversed(self.plans) if p.effective_from <= e.occurred_at), None)
        if plan is None or e.click_id is None:
            return 0
        click = self.repository.get(Click.create_id(e.click_id))
        window = plan.attribution_window_days * 86_400_000
        if click.buyer_id != e.buyer_id or not (
            e.occurred_at - window <= click.occurred_at <= e.occurred_at
        ):
            return 0
        sharers = [self.repository.get(Sharer.create_id(click.sharer_id))]
        while len(sharers) < len(plan.level_shares_bps) and sharers[-1].upline_id is not None:
            sharers.append(self.repository.get(Sharer.create_id(sharers[-1].upline_id)))
        lines = [
            (
                line.amount,
                plan.default_rate_bps if line.merchant_rate_bps is None else line.merchant_rate_bps,
            )
            for line in e.lines
        ]
        cut = split_lines(lines, plan.platform_fee_bps, plan.level_shares_bps[: len(sharers)])
        order = Order(
            e.order_id,
            e.buyer_id,
            e.merchant_id,
            e.currency,
            plan.plan_id,
            [s.sharer_id for s in sharers],
            cut.fee,
            list(cut.levels),
        )
        for sharer, amount in zip(sharers, cut.levels, strict=True):
            sharer.accrue(e.order_id, e.currency, amount)
        self.save(order, *sharers)
        return 2 + len(sharers)  # merchant, platform fee, one per level


def recorder_env(url: str, cache: bool) -> dict[str, str]:
    """The library's settings for its PostgreSQL recorder on the scratch database."""
    parsed = make_url(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parsed.database or "",
        "POSTGRES_HOST": parsed.host or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": parsed.username or "",
        "POSTGRES_PASSWORD": parsed.password or "",
    }
    if cache:
        env["AGGREGATE_CACHE_MAXSIZE"] = "100000"
    return env


def run(
    bootstrap: str, topics: Topics, pg_url: str, max_orders: int, cache: bool = False
) -> dict[str, Any]:
    with fresh_database(pg_url, prefix="bench_es_") as url:
        app = Commissions(recorder_env(url, cache))
        events = orders = postings = 0
        clock = BaselineClock()
        setup: list[SharerEnrolled] = []
        for e in stream_events(bootstrap, topics):
            if clock.first_buyer_event(e):
                app.enroll(setup)
                clock.start_orders()
            events += 1
            if isinstance(e, SharerEnrolled):
                setup.append(e)
                if len(setup) == SETUP_CHUNK:
                    app.enroll(setup)
                    setup.clear()
            elif isinstance(e, PlanPublished):
                app.publish_plan(e)
            elif isinstance(e, ClickRecorded):
                app.click(e)
            elif isinstance(e, OrderPlaced):
                postings += app.place(e)
                orders += 1
                if orders >= max_orders:
                    break
        clock.stop()
        app.close()
    return {**clock.figures(events, orders, postings), "aggregate_cache": cache}
