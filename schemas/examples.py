"""The example events behind the golden test vectors (``schemas/vectors/``) and the
examples of docs/events.md, and where each vector lives. ``python -m ledger.docgen``
writes the vectors and the docs from them; the codec tests read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

VECTORS_DIR = Path(__file__).parent / "vectors"
T0 = 1_772_352_000_000  # 2026-03-01T08:00:00.000Z
HOUR = 3_600_000
DAY = 86_400_000

# One example per event type: the public worked example of SPEC §3 where it applies.
EXAMPLES: list[Event] = [
    PlanPublished(
        event_id="ev-plan-2026-03",
        occurred_at=T0 - DAY,
        producer="finance",
        plan_id="plan-2026-03",
        effective_from=T0 - HOUR,
        default_rate_bps=1000,
        platform_fee_bps=800,
        level_shares_bps=(5000, 3000, 2000),
        frozen_days=7,
        attribution_window_days=15,
        self_purchase_allowed=False,
        min_payouts=(MinPayout("CNY", 1000), MinPayout("USD", 500)),
    ),
    SharerEnrolled(
        event_id="ev-enroll-alice",
        occurred_at=T0 - 2 * DAY,
        producer="user-service",
        sharer_id="u-alice",
        upline_id="u-bob",
    ),
    ClickRecorded(
        event_id="ev-click-1",
        occurred_at=T0 - 30 * 60_000,
        producer="click-tracker",
        click_id="c-1",
        sharer_id="u-alice",
        buyer_id="u-carol",
        product_id="p-tea",
    ),
    OrderPlaced(
        event_id="ev-order-1",
        occurred_at=T0,
        producer="shop",
        order_id="o-1",
        buyer_id="u-carol",
        merchant_id="m-teahouse",
        currency="CNY",
        lines=(
            OrderLine("l-1", "p-tea", 2, 8800, 2500),
            OrderLine("l-2", "p-cup", 1, 1200, None),
        ),
        click_id="c-1",
    ),
    OrderCompleted(
        event_id="ev-complete-1",
        occurred_at=T0 + 3 * DAY,
        producer="shop",
        order_id="o-1",
        buyer_id="u-carol",
    ),
    RefundIssued(
        event_id="ev-refund-1",
        occurred_at=T0 + 4 * DAY,
        producer="refund-service",
        refund_id="r-1",
        order_id="o-1",
        buyer_id="u-carol",
        lines=(RefundLine("l-1", 4400),),
    ),
    SettlementRun(
        event_id="ev-settle-2026-03-15",
        occurred_at=T0 + 14 * DAY + HOUR,
        producer="finance",
        run_id="run-2026-03-15",
        as_of=T0 + 14 * DAY,
    ),
    PayoutRequested(
        event_id="ev-payout-1-req",
        occurred_at=T0 + 15 * DAY,
        producer="finance",
        payout_id="po-1",
        sharer_id="u-alice",
        amount=1000,
        currency="CNY",
    ),
    PayoutSettled(
        event_id="ev-payout-1-ok",
        occurred_at=T0 + 16 * DAY,
        producer="finance",
        payout_id="po-1",
        sharer_id="u-alice",
        amount=1000,
        currency="CNY",
    ),
    PayoutFailed(
        event_id="ev-payout-2-failed",
        occurred_at=T0 + 16 * DAY + HOUR,
        producer="finance",
        payout_id="po-2",
        sharer_id="u-bob",
        amount=None,
        currency=None,
        reason="收款账户已冻结 (account frozen)",
    ),
]


def vector_paths(event_type: str, version: int) -> tuple[Path, Path]:
    stem = f"{event_type}.v{version}"
    return VECTORS_DIR / f"{stem}.json", VECTORS_DIR / f"{stem}.hex"


def json_text(obj: dict[str, Any]) -> str:
    """The vector/docs rendering of a JSON form: 2-space indent, schema field order."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
