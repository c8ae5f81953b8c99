"""SPEC §3's public worked example: its events, shared by the tests that start from it."""

from ledger.domain.events import (
    ClickRecorded,
    MinPayout,
    OrderLine,
    OrderPlaced,
    PlanPublished,
    SharerEnrolled,
)
from ledger.domain.memory import InMemoryLedger

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def plan() -> PlanPublished:
    return PlanPublished(
        "e-plan",
        T0,
        "test",
        plan_id="P1",
        effective_from=T0,
        default_rate_bps=1000,
        platform_fee_bps=800,
        level_shares_bps=(5000, 3000, 2000),
        frozen_days=7,
        attribution_window_days=30,
        self_purchase_allowed=False,
        min_payouts=(MinPayout("CNY", 100),),
    )


def setup() -> InMemoryLedger:
    ledger = InMemoryLedger()
    ledger.ingest(
        [
            plan(),
            SharerEnrolled("e-s3", T0 + 1, "test", sharer_id="S3"),
            SharerEnrolled("e-s2", T0 + 2, "test", sharer_id="S2", upline_id="S3"),
            SharerEnrolled("e-s1", T0 + 3, "test", sharer_id="S1", upline_id="S2"),
            ClickRecorded(
                "e-c1",
                T0 + 10,
                "test",
                click_id="C1",
                sharer_id="S1",
                buyer_id="B1",
                product_id="P",
            ),
            OrderPlaced(
                "e-o1",
                T0 + 20,
                "test",
                order_id="O1",
                buyer_id="B1",
                merchant_id="M1",
                currency="CNY",
                lines=(OrderLine("L1", "P", 1, 8800, 2500), OrderLine("L2", "Q", 2, 1200, None)),
            ),
        ]
    )
    return ledger
