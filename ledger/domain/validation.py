"""Value checks every event must pass before any rule reads it.

``problem(event)`` returns None for a well-formed event, else a ``(reason, message)``
pair. Reasons are machine-readable codes (docs/rules.md); messages name the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ledger.domain.events import (
    ClickRecorded,
    Event,
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
from ledger.domain.reasons import Reason

CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_ID = 200
MAX_TEXT = 200  # producer names, payout failure reasons: bounded like ids
# SPEC §3 "Bounds": a line amount, an order's or a refund's total and a payout amount are
# at most 10^15 minor units (far above any real order, 2^13 times below int64 overflow).
MAX_AMOUNT = 10**15
MAX_LINES = 10_000  # lines of one order or refund: bounds the work and the stored JSON
MAX_DAYS = 3650
# Event times: years 0001..9999 in ms since the epoch, the range the schemas document
# (Avro timestamp-millis may be negative); schemas/times.py holds the same bounds.
MIN_TIME_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

Problem = tuple[Reason, str]


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _int(value: object, name: str, low: int, high: int) -> None:
    if type(value) is not int:
        raise _Invalid(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise _Invalid(f"{name} must be in [{low}, {high}], got {value}")


def valid_event_id(value: object) -> bool:
    """A usable id: 1..200 printable characters (so no control characters, no lone
    surrogates, nothing a database or a terminal would choke on)."""
    return type(value) is str and 0 < len(value) <= MAX_ID and value.isprintable()


def _id(value: object, name: str) -> None:
    if not valid_event_id(value):
        raise _Invalid(
            f"{name} must be a string of 1 to {MAX_ID} characters without control characters"
        )


def _optional_id(value: object, name: str) -> None:
    if value is not None:
        _id(value, name)


def _text(value: object, name: str) -> None:
    if not (type(value) is str and 0 < len(value) <= MAX_TEXT and value.isprintable()):
        raise _Invalid(
            f"{name} must be a string of 1 to {MAX_TEXT} characters without control characters"
        )


def _time(value: object, name: str) -> None:
    _int(value, name, MIN_TIME_MS, MAX_TIME_MS)


def _currency(value: object, name: str = "currency") -> None:
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise _Invalid(f"{name} must be an ISO 4217 code like CNY, got {value!r}")


def _common(event: Event) -> None:
    _id(event.event_id, "event_id")
    _time(event.occurred_at, "occurred_at")
    _text(event.producer, "producer")


def _enrolled(e: SharerEnrolled) -> None:
    _id(e.sharer_id, "sharer_id")
    _optional_id(e.upline_id, "upline_id")


def _plan(e: PlanPublished) -> None:
    _id(e.plan_id, "plan_id")
    _time(e.effective_from, "effective_from")
    _int(e.default_rate_bps, "default_rate_bps", 0, 10_000)
    _int(e.platform_fee_bps, "platform_fee_bps", 0, 10_000)
    if len(e.level_shares_bps) != 3:
        raise _Invalid(f"level_shares_bps must hold 3 values, got {len(e.level_shares_bps)}")
    for k, share in enumerate(e.level_shares_bps, 1):
        _int(share, f"level_shares_bps[{k}]", 0, 10_000)
    if sum(e.level_shares_bps) > 10_000:
        raise _Invalid(f"level shares sum to {sum(e.level_shares_bps)} bps, more than 10000")
    _int(e.frozen_days, "frozen_days", 0, MAX_DAYS)
    _int(e.attribution_window_days, "attribution_window_days", 0, MAX_DAYS)
    if type(e.self_purchase_allowed) is not bool:
        raise _Invalid("self_purchase_allowed must be a boolean")
    seen: set[str] = set()
    for m in e.min_payouts:
        _currency(m.currency, "min_payouts.currency")
        _int(m.amount, f"min_payouts[{m.currency}].amount", 0, MAX_AMOUNT)
        if m.currency in seen:
            raise _Invalid(f"min_payouts lists {m.currency} twice")
        seen.add(m.currency)


def _click(e: ClickRecorded) -> None:
    for name in ("click_id", "sharer_id", "buyer_id", "product_id"):
        _id(getattr(e, name), name)


def _order(e: OrderPlaced) -> None:
    for name in ("order_id", "buyer_id", "merchant_id"):
        _id(getattr(e, name), name)
    _currency(e.currency)
    _optional_id(e.click_id, "click_id")
    _line_ids(e.lines, "an order")
    for line in e.lines:
        _id(line.product_id, f"lines[{line.line_id}].product_id")
        _int(line.quantity, f"lines[{line.line_id}].quantity", 0, 10**9)
        _int(line.amount, f"lines[{line.line_id}].amount", 0, MAX_AMOUNT)
        if line.merchant_rate_bps is not None:
            _int(line.merchant_rate_bps, f"lines[{line.line_id}].merchant_rate_bps", 0, 10_000)
    _total(sum(line.amount for line in e.lines), "the order's total")


def _total(total: int, what: str) -> None:
    if total > MAX_AMOUNT:
        raise _Invalid(f"{what} is {total}, more than {MAX_AMOUNT} minor units")


def _line_ids(lines: tuple[OrderLine, ...] | tuple[RefundLine, ...], what: str) -> None:
    """At least one line, each with a usable id, no id twice."""
    if not lines:
        raise _Invalid(f"{what} needs at least one line")
    if len(lines) > MAX_LINES:
        raise _Invalid(f"{what} has {len(lines)} lines, more than {MAX_LINES}")
    seen: set[str] = set()
    for line in lines:
        _id(line.line_id, "lines.line_id")
        if line.line_id in seen:
            raise _Invalid(f"line {line.line_id!r} appears twice")
        seen.add(line.line_id)


def _completed(e: OrderCompleted) -> None:
    _id(e.order_id, "order_id")
    _id(e.buyer_id, "buyer_id")


def _refund(e: RefundIssued) -> None:
    for name in ("refund_id", "order_id", "buyer_id"):
        _id(getattr(e, name), name)
    _line_ids(e.lines, "a refund")
    for line in e.lines:  # amounts ≤ 0 are the rules' business (invalid_refund_amount)
        _int(line.amount, f"lines[{line.line_id}].amount", -MAX_AMOUNT, MAX_AMOUNT)
    _total(sum(line.amount for line in e.lines), "the refund's total")


def _run(e: SettlementRun) -> None:
    _id(e.run_id, "run_id")
    _time(e.as_of, "as_of")


def _payout_requested(e: PayoutRequested) -> None:
    _id(e.payout_id, "payout_id")
    _id(e.sharer_id, "sharer_id")
    _currency(e.currency)
    _int(e.amount, "amount", -MAX_AMOUNT, MAX_AMOUNT)  # ≤ 0: the rules' invalid_amount


def _payout_ended(e: PayoutSettled | PayoutFailed) -> None:
    _id(e.payout_id, "payout_id")
    _id(e.sharer_id, "sharer_id")
    if e.currency is not None:
        _currency(e.currency)
    if e.amount is not None:
        _int(e.amount, "amount", -MAX_AMOUNT, MAX_AMOUNT)
    if isinstance(e, PayoutFailed) and e.reason is not None:
        _text(e.reason, "reason")


# One check per event type (tests/unit/test_registries.py checks that none is missing).
CHECKS: dict[type[Event], Callable[[Any], None]] = {
    SharerEnrolled: _enrolled,
    PlanPublished: _plan,
    ClickRecorded: _click,
    OrderPlaced: _order,
    OrderCompleted: _completed,
    RefundIssued: _refund,
    SettlementRun: _run,
    PayoutRequested: _payout_requested,
    PayoutSettled: _payout_ended,
    PayoutFailed: _payout_ended,
}


def problem(event: Event) -> Problem | None:
    """None when ``event`` is well formed, else ("invalid_value", what is wrong)."""
    try:
        _common(event)
        check = CHECKS.get(type(event))
        if check is None:
            return (Reason.UNKNOWN_EVENT_TYPE, f"no rules for {type(event).__name__}")
        check(event)
    except _Invalid as bad:
        return (Reason.INVALID_VALUE, bad.message)
    return None
