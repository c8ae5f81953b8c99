"""SPEC §3's public worked example, to the unit."""

from ledger.domain.events import (
    RefundIssued,
    RefundLine,
)
from tests.support.worked_example import T0, setup


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
