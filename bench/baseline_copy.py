"""Bare batched COPY baseline: the fastest plausible writer of the same postings.

Reads the same topics, keeps the uplines, the clicks and the plans in dicts, and for
each order computes the same split (the plan in force, the named click's sharer and its
uplines, ``money.split_lines``), then COPYs the posting rows into one bare table, one
transaction per 1,000 orders. No validation, no idempotency, no attribution window, no
hash chain, no event log, no reference state: what "just write the money" costs.
"""

from __future__ import annotations

import io
from typing import Any

from sqlalchemy import create_engine, text

from bench.ceiling import stream_events
from bench.support import (
    BaselineClock,
    ClickRecorded,
    OrderPlaced,
    PlanPublished,
    SharerEnrolled,
    Topics,
    fresh_database,
    merchant_account,
    sharer_account,
    split_lines,
)

BATCH_ORDERS = 1_000


def _levels(sharer: str, uplines: dict[str, str | None], depth: int) -> list[str]:
    chain = [sharer]
    while len(chain) < depth:
        up = uplines.get(chain[-1])
        if up is None:
            break
        chain.append(up)
    return chain


def run(bootstrap: str, topics: Topics, pg_url: str, max_orders: int) -> dict[str, Any]:
    with fresh_database(pg_url, prefix="bench_copy_") as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE bare_postings (order_id text, account text,"
                    " currency text, amount bigint)"
                )
            )
        raw = engine.raw_connection()
        cursor = raw.cursor()
        uplines: dict[str, str | None] = {}
        clicks: dict[str, str] = {}
        plans: list[PlanPublished] = []
        buffer = io.StringIO()
        events = orders = postings = 0
        clock = BaselineClock()

        def flush() -> None:
            buffer.seek(0)
            cursor.copy_expert("COPY bare_postings FROM STDIN", buffer)
            raw.commit()
            buffer.seek(0)
            buffer.truncate()

        for event in stream_events(bootstrap, topics):
            if clock.first_buyer_event(event):
                clock.start_orders()
            events += 1
            if isinstance(event, SharerEnrolled):
                uplines[event.sharer_id] = event.upline_id
            elif isinstance(event, PlanPublished):
                plans.append(event)
                plans.sort(key=lambda p: p.effective_from)
            elif isinstance(event, ClickRecorded):
                clicks[event.click_id] = event.sharer_id
            elif isinstance(event, OrderPlaced):
                orders += 1
                plan = next(
                    (p for p in reversed(plans) if p.effective_from <= event.occurred_at), None
                )
                sharer = clicks.get(event.click_id or "")
                if plan is not None and sharer is not None:
                    levels = _levels(sharer, uplines, len(plan.level_shares_bps))
                    lines = [
                        (
                            line.amount,
                            plan.default_rate_bps
                            if line.merchant_rate_bps is None
                            else line.merchant_rate_bps,
                        )
                        for line in event.lines
                    ]
                    cut = split_lines(
                        lines, plan.platform_fee_bps, plan.level_shares_bps[: len(levels)]
                    )
                    rows = [
                        (merchant_account(event.merchant_id), -cut.merchant_charge),
                        ("platform:fees", cut.fee),
                        *(
                            (sharer_account(s, "pending"), amount)
                            for s, amount in zip(levels, cut.levels, strict=True)
                        ),
                    ]
                    for account, amount in rows:
                        buffer.write(f"{event.order_id}\t{account}\t{event.currency}\t{amount}\n")
                    postings += len(rows)
                if orders % BATCH_ORDERS == 0:
                    flush()
                if orders >= max_orders:
                    break
        flush()
        clock.stop()
        cursor.close()
        raw.close()
        engine.dispose()
    return clock.figures(events, orders, postings)
