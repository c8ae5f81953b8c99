"""Platform fees and merchant charges per UTC day or month, from the totals view."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Connection, select

from ledger.domain.plans import DAY_MS
from ledger.read.models import Total
from ledger.store import view_tables as v
from projectors.catalog import shown

Period = Literal["day", "month"]


def day_label(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC).strftime("%Y-%m-%d")


def totals(
    conn: Connection,
    *,
    period: Period = "day",
    currency: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[Total]:
    """Platform fees and merchant charges per period ("day" or "month", UTC) and currency,
    for event times in [start, end) when given, oldest first."""
    f = v.view_fee_totals
    query = select(f).where(shown(f)).order_by(f.c.day, f.c.currency)
    if currency is not None:
        query = query.where(f.c.currency == currency)
    if start is not None:
        query = query.where(f.c.day >= start // DAY_MS)
    if end is not None:
        query = query.where(f.c.day < -(-end // DAY_MS))
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in conn.execute(query):
        label = day_label(row.day)
        key = (label if period == "day" else label[:7], row.currency)
        sums[key][0] += int(row.fees)
        sums[key][1] += int(row.merchant_charges)
    return [
        Total(period=p, currency=c, fees=fees, merchant_charges=charges)
        for (p, c), (fees, charges) in sorted(sums.items())
    ]
