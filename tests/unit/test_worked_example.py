"""SPEC §3's public worked example, to the unit."""

from ledger.domain.events import (
    ClickRecorded,
    MinPayout,
    OrderLine,
    OrderPlaced,
    PlanPublished,
    RefundIssued,
    RefundLine,
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


def test_worked_example_accrual() -> None:
    ledger = setup()
    assert ledger.rejected == []
    b = ledger.balance
    assert b("platform:fees", "CNY") == 185
    assert b("sharer:S1:pending", "CNY") == 1067
    assert b("sharer:S2:pending", "CNY") == 640
    assert b("sharer:S3:pending", "CNY") == 426
    assert b("merchant:M1:charges", "CNY") == -2318


def test_worked_example_partial_refund_posts_the_differences() -> None:
    ledger = setup()
    ledger.ingest(
        [
            RefundIssued(
                "e-r1",
                T0 + 30,
                "test",
                refund_id="R1",
                order_id="O1",
                buyer_id="B1",
                lines=(RefundLine("L1", 4400),),
            )
        ]
    )
    reversal = ledger.entries[-1]
    assert reversal.kind == "reversal"
    amounts = {p.account: p.amount for p in reversal.postings}
    assert amounts == {
        "platform:fees": -88,
        "sharer:S1:pending": -506,
        "sharer:S2:pending": -304,
        "sharer:S3:pending": -202,
        "merchant:M1:charges": 1100,
    }


def test_full_refund_returns_every_party_to_zero() -> None:
    ledger = setup()
    ledger.ingest(
        [
            RefundIssued(
                "e-r1",
                T0 + 30,
                "test",
                refund_id="R1",
                order_id="O1",
                buyer_id="B1",
                lines=(RefundLine("L1", 4400),),
            ),
            RefundIssued(
                "e-r2",
                T0 + 31,
                "test",
                refund_id="R2",
                order_id="O1",
                buyer_id="B1",
                lines=(RefundLine("L1", 4400), RefundLine("L2", 1200)),
            ),
        ]
    )
    assert ledger.rejected == []
    assert ledger.balances() == {}
