"""Every reason code a dead letter can carry (docs/rules.md "Reason codes").

A ``StrEnum``: members equal their strings, so stored and reported values are the codes
themselves. tests/unit/test_reasons.py keeps this list and docs/rules.md equal.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class Reason(StrEnum):
    # the JSON form could not be read (ledger/jsonform.py, ledger/ingest_file.py)
    MALFORMED_JSON = "malformed_json"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_FIELD = "invalid_field"
    LINE_TOO_LONG = "line_too_long"
    # Kafka records that could not be decoded (schemas/codec.py, consumers/)
    BAD_MARKER = "bad_marker"
    TRUNCATED = "truncated"
    UNKNOWN_FINGERPRINT = "unknown_fingerprint"
    MALFORMED_PAYLOAD = "malformed_payload"
    EMPTY_RECORD = "empty_record"
    BAD_BARRIER_MARKER = "bad_barrier_marker"
    MARKER_AHEAD_OF_ACCOUNTS = "marker_ahead_of_accounts"
    # an event whose type does not belong on the topic it came from (consumers/decode.py)
    WRONG_TOPIC = "wrong_topic"
    RESERVED_EVENT_ID = "reserved_event_id"
    # value checks (validation.py) and the bounds
    INVALID_VALUE = "invalid_value"
    BALANCE_OUT_OF_RANGE = "balance_out_of_range"
    # the rules (engine.py, referrals.py)
    ALREADY_ENROLLED = "already_enrolled"
    ENROLLMENT_CYCLE = "enrollment_cycle"
    DUPLICATE_PLAN_ID = "duplicate_plan_id"
    DUPLICATE_EFFECTIVE_FROM = "duplicate_effective_from"
    DUPLICATE_CLICK_ID = "duplicate_click_id"
    DUPLICATE_ORDER_ID = "duplicate_order_id"
    DUPLICATE_REFUND_ID = "duplicate_refund_id"
    DUPLICATE_PAYOUT_ID = "duplicate_payout_id"
    DUPLICATE_RUN_ID = "duplicate_run_id"
    ALREADY_COMPLETED = "already_completed"
    BUYER_MISMATCH = "buyer_mismatch"
    UNKNOWN_LINE = "unknown_line"
    INVALID_REFUND_AMOUNT = "invalid_refund_amount"
    OVER_REFUND = "over_refund"
    AS_OF_IN_FUTURE = "as_of_in_future"
    INVALID_AMOUNT = "invalid_amount"
    NO_PLAN_IN_FORCE = "no_plan_in_force"
    UNKNOWN_CURRENCY = "unknown_currency"
    BELOW_MINIMUM = "below_minimum"
    INSUFFICIENT_AVAILABLE = "insufficient_available"
    PAYOUT_NOT_INFLIGHT = "payout_not_inflight"
    PAYOUT_MISMATCH = "payout_mismatch"
    # the database refused the record (ledger/service.py)
    UNSTORABLE = "unstorable"

    def __repr__(self) -> str:
        # shown like the plain code it replaced, e.g. in a logged {reason: count} dict
        return str.__repr__(self)
