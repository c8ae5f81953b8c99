"""What the read side returns: frozen, typed rows, one class per thing a person or a
client reads. The API's response models (ledger/api/models.py) have the same fields in the
same order (tests/unit/test_read_models.py holds them to it); the CLI and the dashboard
read these directly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, TypeVar

from ledger.domain.permissions import redrive_of
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
    def __post_init__(self) -> None:
        if "currency_exponent" in self.__dataclass_fields__:  # derived, see _exponent
            money: Any = self  # a row with money: it has a currency
            object.__setattr__(self, "currency_exponent", exponent(money.currency))
        linked = self.__dataclass_fields__.get("redrive_of")
        if linked is not None and not linked.init:  # derived from the event id, see _link
            event: Any = self
            object.__setattr__(self, "redrive_of", redrive_of(event.event_id))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A row with money in it carries its currency's ISO 4217 exponent (derived, never passed:
# Row.__post_init__ sets it), so a client shows 123456 CNY as 1234.56 without a table of
# its own.
def _exponent() -> Any:
    return field(init=False, compare=False, repr=False)


# A row showing an event says which dead letter it corrects when it is a redrive
# (docs/decisions/0011-dead-letter-redrive.md): derived from its event id, never passed.
def _link() -> Any:
    return field(init=False, compare=False, repr=False)


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


@dataclass(frozen=True)
class SharerLevel(Level):
    """An order level a sharer earns on."""

    order_id: str
    downline_id: str
    currency: str
    currency_exponent: int = _exponent()


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


@dataclass(frozen=True)
class Redriven(Row):
    """The redrive of a dead letter as a list shows it: its event id and what became of it
    (applied, parked or rejected: a rejected redrive is a dead letter in turn)."""

    event_id: str
    outcome: Outcome


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
    key: str  # the dedup key: a redrive of this dead letter has event id redrive:<key>
    redrive_of: str | None  # when this dead letter is a rejected redrive: the key it corrected
    redriven: Redriven | None  # its redrive, if finance resubmitted it


@dataclass(frozen=True)
class Change(Row):
    """One field a redrive changed (ledger/domain/changes.py): a JSON pointer into the
    event's JSON form and its value before and after (op: add, remove or replace)."""

    op: Literal["add", "remove", "replace"]
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Redrive(Row):
    """Finance's correction of a dead letter: the new event, who submitted it and when
    (the event log's recorded time), what became of it, and what it changed."""

    event_id: str
    redrive_of: str
    by: str
    at: int
    outcome: Outcome
    reason: str | None
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class DeadLetterDetail(Row):
    """A dead letter, untouched, and its redrive (None: not redriven)."""

    id: int
    event_id: str | None
    event_type: str | None
    source: str
    reason: str
    message: str
    payload: str
    recorded_at: int
    key: str
    redrive_of: str | None
    redriven: Redriven | None
    redrive: Redrive | None


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
    redrive_of: str | None = _link()  # the entry's event is a redrive of this dead letter key


@dataclass(frozen=True)
class Payout(Row):
    payout_id: str
    sharer_id: str
    currency: str
    amount: int
    state: str
    currency_exponent: int = _exponent()


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


# --- the whole story of an order (ledger/read/order_story.py) ------------------------


@dataclass(frozen=True)
class StoryPlan(Row):
    """The plan the order was priced with (SPEC §3: the latest in force at placement)."""

    plan_id: str
    effective_from: int
    default_rate_bps: int
    platform_fee_bps: int
    level_shares_bps: tuple[int, ...]
    frozen_days: int


@dataclass(frozen=True)
class StoryLine(Row):
    """One line of the order: its commissionable amount, the rate in force for it, what
    refunds took off it so far and what remains."""

    line_id: str
    amount: int
    rate_bps: int
    refunded: int
    remaining: int


@dataclass(frozen=True)
class RefundedLine(Row):
    line_id: str
    amount: int


@dataclass(frozen=True)
class StoryRefund(Row):
    """A refund of the order. ``event_id``, ``occurred_at`` and ``lines`` come from its
    event, found through its reversal entry: a refund that moved no commission (an order
    earning nothing, or a change lost to rounding) has no entry, so only its id is known
    here (its amounts are in the lines' ``refunded``)."""

    refund_id: str
    event_id: str | None
    occurred_at: int | None
    lines: tuple[RefundedLine, ...]
    merchant_charge: int  # what the refund gave back to the merchant (>= 0)
    platform_fee: int  # … took back from the platform's fee (>= 0)


@dataclass(frozen=True)
class OrderMoney(Row):
    """Where the order's money stands now (after its refunds). The pool is exact: the
    rules floor from it (SPEC §3), so it is given as a decimal, never a float."""

    currency: str
    lines_amount: int  # Σ remaining commissionable amounts
    commission_pool: str  # Σ remaining amount × rate / 10⁴, an exact decimal
    merchant_charge: int  # platform fee + Σ level shares: what the merchant pays
    platform_fee: int
    commission: int  # Σ level shares
    merchant_keeps: str  # pool − merchant charge: missing levels' shares and rounding (SPEC §3)
    charged_at_placement: int  # the accrual's merchant charge, before any refund
    refunded_to_merchant: int  # Σ of the refunds' merchant charges
    currency_exponent: int = _exponent()


@dataclass(frozen=True)
class CoveringPayout(Row):
    """A payout of the level's sharer that paid (part of) the level: payouts are per
    sharer, so the sharer's paid payouts, in journal order, pay their settled levels first
    settled, first paid (the rule of the level's ``paid`` state)."""

    payout_id: str
    amount: int  # the whole payout
    covered: int  # the part of it that paid this level
    paid_at: int  # event time of the payout's settlement
    entry_seq: int  # the journal entry that moved it to paid


@dataclass(frozen=True)
class StoryShare(Row):
    """One level's share: its sharer, the plan and rule that priced it, its amounts and
    state (as the payout view has them), and the payouts that paid it."""

    level: int
    sharer_id: str
    plan_id: str | None
    rule: str | None  # the accrual entry's rule (and version)
    share_bps: int | None  # the plan's share for this level
    accrued: int
    reversed: int
    amount: int
    settled: int  # moved to available by the settlement run
    settled_at: int | None
    state: LevelState
    paid_by: tuple[CoveringPayout, ...]


@dataclass(frozen=True)
class StorySettlement(Row):
    """The settlement run that released the order's commission."""

    run_id: str
    as_of: int
    event_id: str | None  # the run's event, through its entry (None: it moved nothing here)
    occurred_at: int | None
    entry_seq: int | None


@dataclass(frozen=True)
class OrderStory(Row):
    """Where one order's money went: its lines, refunds, the split between merchant,
    platform and sharers, each level's share and who paid it, every journal entry."""

    order_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    occurred_at: int
    completed_at: int | None
    no_commission_reason: str | None
    plan: StoryPlan | None
    lines: tuple[StoryLine, ...]
    refunds: tuple[StoryRefund, ...]
    money: OrderMoney
    shares: tuple[StoryShare, ...]
    settlement: StorySettlement | None
    entries: tuple[Entry, ...]
    payouts_rule: str  # how ``paid_by`` is decided, in words
    currency_exponent: int = _exponent()


@dataclass(frozen=True)
class SharerView(Row):
    """Everything finance (or the sharer) reads of one sharer at once."""

    sharer_id: str
    balances: tuple[Balance, ...]
    team: Team
    earnings: Earnings
    earnings_by_month: tuple[MonthEarning, ...]
