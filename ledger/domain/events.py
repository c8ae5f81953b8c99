"""The ledger's input events: immutable, past tense, one dataclass per type.

Field names are the contract shared by the Avro schemas (``schemas/*.avsc``), the JSON
form (``docs/events.md``) and the engine. Times are integer milliseconds since the Unix
epoch (UTC); money is integer minor units with an ISO 4217 currency code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ledger.domain.reasons import Reason
from ledger.domain.shapes import field_names, record_layout


@dataclass(frozen=True, slots=True)
class Event:
    """Fields every event carries. ``event_id`` is the idempotency key."""

    event_id: str
    occurred_at: int
    producer: str

    TYPE: ClassVar[str] = ""
    # SPEC §4 item 5: buyer events (False) may interleave across buyers; a barrier (True)
    # keeps its place among every other event. Each type says which it is.
    BARRIER: ClassVar[bool]

    def ordering_key(self) -> str:
        """The Kafka key that keeps causally related events in one partition."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class SharerEnrolled(Event):
    TYPE: ClassVar[str] = "sharer_enrolled"
    BARRIER: ClassVar[bool] = True
    sharer_id: str
    upline_id: str | None = None

    def ordering_key(self) -> str:
        return self.sharer_id


@dataclass(frozen=True, slots=True)
class MinPayout:
    currency: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanPublished(Event):
    TYPE: ClassVar[str] = "plan_published"
    BARRIER: ClassVar[bool] = True
    plan_id: str
    effective_from: int
    default_rate_bps: int
    platform_fee_bps: int
    level_shares_bps: tuple[int, ...]
    frozen_days: int
    attribution_window_days: int
    self_purchase_allowed: bool
    min_payouts: tuple[MinPayout, ...]

    def ordering_key(self) -> str:
        return self.plan_id


@dataclass(frozen=True, slots=True, kw_only=True)
class ClickRecorded(Event):
    TYPE: ClassVar[str] = "click_recorded"
    BARRIER: ClassVar[bool] = False
    click_id: str
    sharer_id: str
    buyer_id: str
    product_id: str

    def ordering_key(self) -> str:
        return self.buyer_id


@dataclass(frozen=True, slots=True)
class OrderLine:
    line_id: str
    product_id: str
    quantity: int
    amount: int
    merchant_rate_bps: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(Event):
    TYPE: ClassVar[str] = "order_placed"
    BARRIER: ClassVar[bool] = False
    order_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    lines: tuple[OrderLine, ...]
    click_id: str | None = None

    def ordering_key(self) -> str:
        return self.buyer_id


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCompleted(Event):
    TYPE: ClassVar[str] = "order_completed"
    BARRIER: ClassVar[bool] = False
    order_id: str
    buyer_id: str

    def ordering_key(self) -> str:
        return self.buyer_id


@dataclass(frozen=True, slots=True)
class RefundLine:
    line_id: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundIssued(Event):
    TYPE: ClassVar[str] = "refund_issued"
    BARRIER: ClassVar[bool] = False
    refund_id: str
    order_id: str
    buyer_id: str
    lines: tuple[RefundLine, ...]

    def ordering_key(self) -> str:
        return self.buyer_id


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementRun(Event):
    TYPE: ClassVar[str] = "settlement_run"
    BARRIER: ClassVar[bool] = True
    run_id: str
    as_of: int

    def ordering_key(self) -> str:
        return self.run_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutRequested(Event):
    TYPE: ClassVar[str] = "payout_requested"
    BARRIER: ClassVar[bool] = True
    payout_id: str
    sharer_id: str
    amount: int
    currency: str

    def ordering_key(self) -> str:
        return self.sharer_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutSettled(Event):
    """The payout reached the sharer. Amount and currency, when given, must match."""

    TYPE: ClassVar[str] = "payout_settled"
    BARRIER: ClassVar[bool] = True
    payout_id: str
    sharer_id: str
    amount: int | None = None
    currency: str | None = None

    def ordering_key(self) -> str:
        return self.sharer_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutFailed(Event):
    """The payout bounced; its amount returns to available."""

    TYPE: ClassVar[str] = "payout_failed"
    BARRIER: ClassVar[bool] = True
    payout_id: str
    sharer_id: str
    amount: int | None = None
    currency: str | None = None
    reason: str | None = None

    def ordering_key(self) -> str:
        return self.sharer_id


# Every event type. tests/unit/test_registries.py checks that each registry keyed by event
# type (rules, checks, topics, examples, the simulator) covers all of them.
EVENT_CLASSES: tuple[type[Event], ...] = (
    SharerEnrolled,
    PlanPublished,
    ClickRecorded,
    OrderPlaced,
    OrderCompleted,
    RefundIssued,
    SettlementRun,
    PayoutRequested,
    PayoutSettled,
    PayoutFailed,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in EVENT_CLASSES}


class InvalidEvent(ValueError):
    """A record that cannot become an event. ``reason`` is a machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def event_from_record(event_type: str, record: dict[str, Any]) -> Event:
    """Build a typed event from a decoded record (Avro or JSON form, times in ms).

    Fields whose default is ``None`` are optional; every other field is required.
    Raises ``InvalidEvent`` (reason ``unknown_event_type`` or ``invalid_field``) when the
    record does not fit; value rules (amounts > 0, …) are the engine's business.
    """
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise InvalidEvent(Reason.UNKNOWN_EVENT_TYPE, f"unknown event type {event_type!r}")
    kwargs: dict[str, Any] = {}
    for name, optional, item_type, nested in record_layout(cls):
        value = record.get(name)
        if value is None:
            if optional:
                continue
            raise InvalidEvent(Reason.INVALID_FIELD, f"{event_type}: missing field {name!r}")
        if nested is not None:
            if not isinstance(value, (list, tuple)):
                raise InvalidEvent(Reason.INVALID_FIELD, f"{event_type}.{name} must be a list")
            try:
                value = tuple(
                    item if isinstance(item, nested) else nested(**item) for item in value
                )
            except TypeError as exc:
                raise InvalidEvent(Reason.INVALID_FIELD, f"{event_type}.{name}: {exc}") from exc
        elif item_type is not None:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def event_to_record(event: Event) -> dict[str, Any]:
    """The plain-dict form of an event (the JSON form minus ``type``), times in ms."""
    return {name: event_to_record_value(getattr(event, name)) for name in field_names(type(event))}


def event_to_record_value(value: Any) -> Any:
    """One field's plain form: a tuple of records (order lines, minimums) as a list of
    dicts, anything else as it is."""
    if type(value) is not tuple:
        return value
    return [
        {n: getattr(item, n) for n in field_names(type(item))}
        if hasattr(item, "__dataclass_fields__")
        else item
        for item in value
    ]


__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "ClickRecorded",
    "Event",
    "InvalidEvent",
    "MinPayout",
    "OrderCompleted",
    "OrderLine",
    "OrderPlaced",
    "PayoutFailed",
    "PayoutRequested",
    "PayoutSettled",
    "PlanPublished",
    "RefundIssued",
    "RefundLine",
    "SettlementRun",
    "SharerEnrolled",
    "event_from_record",
    "event_to_record",
]
