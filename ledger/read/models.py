"""What the read side returns: frozen, typed rows, one class per thing a person or a
client reads. The API's response models (ledger/api/models.py) have the same fields in the
same order (tests/unit/test_read_models.py holds them to it); the CLI and the dashboard
read these directly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ledger.read.money import exponent

LevelState = Literal["pending", "available", "paid", "reversed"]
Bucket = Literal["pending", "available", "inflight", "paid"]
Outcome = Literal["applied", "rejected", "parked"]


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list: ``after`` is the key of its last row when more
    may follow (pass it back for the next page), None on the last page."""

    items: tuple[T, ...]
    after: tuple[Any, ...] | None


def page(items: list[T], limit: int, key: Any) -> Page[T]:
    return Page(tuple(items), key(items[-1]) if len(items) == limit else None)


@dataclass(frozen=True)
class Row:
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A row with money in it carries its currency's ISO 4217 exponent (derived, never passed),
# so a client shows 123456 CNY as 1234.56 without a table of its own.
def _exponent() -> Any:
    return field(init=False, compare=False, repr=False)


def _set_exponent(row: Any) -> None:
    object.__setattr__(row, "currency_exponent", exponent(row.currency))


@dataclass(frozen=True)
class Balance(Row):
    """A sharer's balance in one currency, from the balances view."""

    sharer_id: str
    currency: str
    pending: int
    available: int
    inflight: int
    paid: int
    earned: int  # accrued, ever
    reversed: int  # taken back by refunds, ever
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class JournalBalance(Row):
    """A sharer's buckets in one currency summed from the journal's postings: the
    definition of a balance, which every other one is checked against."""

    sharer_id: str
    currency: str
    pending: int = 0
    available: int = 0
    inflight: int = 0
    paid: int = 0
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class Level(Row):
    """One level of an order's commission: its sharer, amount and state."""

    level: int
    sharer_id: str
    amount: int
    accrued: int
    reversed: int
    settled_at: int | None
    state: LevelState


@dataclass(frozen=True)
class OrderPayouts(Row):
    order_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    occurred_at: int
    completed_at: int | None
    settled_by: str | None
    plan_id: str | None
    no_commission_reason: str | None
    levels: tuple[Level, ...]
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class SharerLevel(Level):
    """An order level a sharer earns on."""

    order_id: str
    downline_id: str
    currency: str
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class TeamLevel(Row):
    level: int
    size: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Team(Row):
    sharer_id: str
    enrolled: bool
    upline_id: str | None
    levels: tuple[TeamLevel, ...]


@dataclass(frozen=True)
class LevelEarning(Row):
    currency: str
    level: int
    amount: int
    orders: int
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class DownlineEarning(LevelEarning):
    downline_id: str = field(kw_only=True)  # after the derived exponent: by keyword


@dataclass(frozen=True)
class MonthEarning(Row):
    """A sharer's earnings (accrued less reversed) in one UTC month ("2026-03")."""

    month: str
    currency: str
    amount: int
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class Earnings(Row):
    by_level: tuple[LevelEarning, ...]
    by_downline: tuple[DownlineEarning, ...]


@dataclass(frozen=True)
class Total(Row):
    period: str
    currency: str
    fees: int
    merchant_charges: int
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class DeadLetter(Row):
    id: int
    event_id: str | None
    event_type: str | None
    source: str
    reason: str
    message: str
    payload: str
    recorded_at: int


@dataclass(frozen=True)
class ParkedEvent(Row):
    event_id: str
    type: str
    waits_for: str
    source: str
    parked_at: int


@dataclass(frozen=True)
class PartitionLag(Row):
    group_id: str
    topic: str
    partition: int
    next_offset: int
    end_offset: int | None
    lag: int | None


@dataclass(frozen=True)
class ViewLag(Row):
    view: str
    entries_behind: int


@dataclass(frozen=True)
class Lag(Row):
    partitions: tuple[PartitionLag, ...]
    views: tuple[ViewLag, ...]
    dead_letters_by_reason: dict[str, int]
    parked_by_reference: dict[str, int]


@dataclass(frozen=True)
class Posting(Row):
    account: str
    currency: str
    amount: int
    level: int | None  # the commission level this posting pays, if any
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class Entry(Row):
    seq: int
    chain: str
    chain_seq: int
    event_id: str
    ordinal: int
    kind: str
    rule: str
    plan_id: str | None
    order_id: str | None
    payout_id: str | None
    occurred_at: int
    recorded_at: int
    hash: str
    postings: tuple[Posting, ...]


@dataclass(frozen=True)
class Payout(Row):
    payout_id: str
    sharer_id: str
    currency: str
    amount: int
    state: str
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)


@dataclass(frozen=True)
class LoggedOutcome(Row):
    """An event-log row as the idempotency of commands needs it: what was logged under an
    event id and what became of it on arrival (with the dead letter's reason if rejected)."""

    event_type: str
    payload: str  # the event's JSON form (ledger/payload.py)
    outcome: Outcome
    reason: str | None
    message: str | None


@dataclass(frozen=True)
class StatementLine(Row):
    """One posting to the sharer's accounts in the period, with where it came from."""

    occurred_at: int
    bucket: Bucket
    amount: int  # signed minor units: what this line adds to the bucket
    kind: str  # the entry's kind: accrual, reversal, settlement, payout, …
    rule: str  # the rule that wrote the entry
    order_id: str | None
    level: int | None  # the commission level this line pays, for an order's lines
    plan_id: str | None
    payout_id: str | None
    event_id: str
    chain: str  # the entry's place in the journal: its hash chain, position and hash
    chain_seq: int
    hash: str


@dataclass(frozen=True)
class Statement(Row):
    """A sharer's statement (对账单) for one currency and period [start, end) of event
    time: opening and closing balance per bucket, and every line between them."""

    sharer_id: str
    currency: str
    start: int
    end: int
    opening: dict[str, int]
    closing: dict[str, int]
    lines: tuple[StatementLine, ...]
    currency_exponent: int = _exponent()

    def __post_init__(self) -> None:
        _set_exponent(self)
