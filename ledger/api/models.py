"""Request and response bodies of the API (they are the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

from ledger.api import ids  # noqa: F401 - registers the {name:id} path convertor
from ledger.domain import validation as rules
from ledger.domain.money import BPS
from ledger.domain.permissions import COMMAND_ID_PREFIXES

# Every limit below is the rules' own (ledger/domain/validation.py), so the API refuses
# with 422 exactly what the ledger would dead-letter as invalid_value, before an event
# (and its id) is spent on it.


def _usable_id(value: str) -> str:
    if not rules.valid_event_id(value):
        raise ValueError(
            f"an id is 1 to {rules.MAX_ID} printable characters (no control or format "
            "characters, no line or paragraph separators)"
        )
    return value


def _usable_text(value: str) -> str:
    if not (0 < len(value) <= rules.MAX_TEXT and value.isprintable()):
        raise ValueError(f"text is 1 to {rules.MAX_TEXT} printable characters")
    return value


# Ids: what the ledger can store and look up. The pattern documents the gist in OpenAPI;
# the validator applies the rules' exact test (str.isprintable).
ID_PATTERN = rf"^[^\x00-\x1f\x7f]{{1,{rules.MAX_ID}}}$"
Id = Annotated[
    str,
    Field(pattern=ID_PATTERN, min_length=1, max_length=rules.MAX_ID),
    AfterValidator(_usable_id),
]
# an id in a URL path: one percent-encoded segment ({name:id}, ledger/api/ids.py)
IdPath = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=rules.MAX_ID), AfterValidator(_usable_id)
]
IdQuery = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, max_length=rules.MAX_ID),
    AfterValidator(lambda v: v if v is None else _usable_id(v)),
]
# A command's id becomes part of its event id (payout-requested:{payout_id}, …), which must
# itself be a valid id: so a command id leaves room for the longest prefix.
COMMAND_ID_MAX = rules.MAX_ID - max(map(len, COMMAND_ID_PREFIXES))
CommandId = Annotated[
    str,
    Field(pattern=ID_PATTERN, min_length=1, max_length=COMMAND_ID_MAX),
    AfterValidator(_usable_id),
]
CommandIdPath = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=COMMAND_ID_MAX), AfterValidator(_usable_id)
]
Text = Annotated[str, Field(min_length=1, max_length=rules.MAX_TEXT), AfterValidator(_usable_text)]
Currency = Annotated[str, Field(pattern=rules.CURRENCY.pattern)]
Millis = Annotated[StrictInt, Field(ge=rules.MIN_TIME_MS, le=rules.MAX_TIME_MS)]
Amount = Annotated[StrictInt, Field(gt=0, le=rules.MAX_AMOUNT)]
Bps = Annotated[StrictInt, Field(ge=0, le=BPS)]
Days = Annotated[StrictInt, Field(ge=0, le=rules.MAX_DAYS)]


# ISO 4217's exponent of the row's currency (ledger/read/money.py): amounts are integer
# minor units, amount / 10**currency_exponent is the amount in the currency's units.
CurrencyExponent = Annotated[
    int, Field(description="the currency's ISO 4217 minor-unit exponent (CNY 2, JPY 0, KWD 3)")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    detail: str


class Balance(BaseModel):
    sharer_id: str
    currency: str
    pending: int
    available: int
    inflight: int
    paid: int
    earned: int
    reversed: int
    currency_exponent: CurrencyExponent


class Page(BaseModel):
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class BalancePage(Page):
    items: list[Balance]


class Level(BaseModel):
    level: int
    sharer_id: str
    amount: int
    accrued: int
    reversed: int
    settled_at: int | None
    state: Literal["pending", "available", "paid", "reversed"]


class OrderPayouts(BaseModel):
    order_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    occurred_at: int
    completed_at: int | None
    settled_by: str | None
    plan_id: str | None
    no_commission_reason: str | None
    levels: list[Level]
    currency_exponent: CurrencyExponent


class SharerLevel(Level):
    order_id: str
    downline_id: str
    currency: str
    currency_exponent: CurrencyExponent


class SharerLevelPage(Page):
    items: list[SharerLevel]


class TeamLevel(BaseModel):
    level: int
    size: int
    members: list[str]


class Team(BaseModel):
    sharer_id: str
    enrolled: bool
    upline_id: str | None
    levels: list[TeamLevel]


class LevelEarning(BaseModel):
    currency: str
    level: int
    amount: int
    orders: int
    currency_exponent: CurrencyExponent


class DownlineEarning(LevelEarning):
    downline_id: str


class Earnings(BaseModel):
    by_level: list[LevelEarning]
    by_downline: list[DownlineEarning]


class MonthEarning(BaseModel):
    month: str = Field(description="UTC month of the entries' event time, YYYY-MM")
    currency: str
    amount: int
    currency_exponent: CurrencyExponent


class Sharer(BaseModel):
    sharer_id: str
    balances: list[Balance]
    team: Team
    earnings: Earnings
    earnings_by_month: list[MonthEarning] = Field(
        description="accruals less reversals per UTC month and currency, oldest first"
    )


class Total(BaseModel):
    period: str
    currency: str
    fees: int
    merchant_charges: int
    currency_exponent: CurrencyExponent


class Payout(BaseModel):
    payout_id: str
    sharer_id: str
    currency: str
    amount: int
    state: str = Field(description="inflight | paid | failed | rejected")
    currency_exponent: CurrencyExponent


class PayoutPage(Page):
    items: list[Payout]


class StatementLine(BaseModel):
    occurred_at: int
    bucket: Literal["pending", "available", "inflight", "paid"]
    amount: int = Field(description="signed minor units this line adds to the bucket")
    kind: str
    rule: str
    order_id: str | None
    level: int | None
    plan_id: str | None
    payout_id: str | None
    event_id: str
    chain: str
    chain_seq: int
    hash: str


class Statement(BaseModel):
    sharer_id: str
    currency: str
    start: int = Field(description="the period's first event time, ms (UTC)")
    end: int = Field(description="the first event time after the period, ms (UTC)")
    opening: dict[str, int]
    closing: dict[str, int]
    lines: list[StatementLine]
    currency_exponent: CurrencyExponent


class Redriven(BaseModel):
    event_id: str
    outcome: Literal["applied", "rejected", "parked"]


class DeadLetter(BaseModel):
    id: int
    event_id: str | None
    event_type: str | None
    source: str
    reason: str
    message: str
    payload: str
    recorded_at: int
    key: str = Field(description="the dedup key; its redrive's event id is redrive:<key>")
    redrive_of: str | None = Field(
        description="when this dead letter is a rejected redrive: the key of the one it corrected"
    )
    redriven: Redriven | None = Field(description="its redrive, if finance resubmitted it")


class Change(BaseModel):
    op: Literal["add", "remove", "replace"]
    path: str = Field(description="a JSON pointer into the event's JSON form")
    before: Any
    after: Any


class Redrive(BaseModel):
    event_id: str
    redrive_of: str
    by: str = Field(description="finance:<token name>")
    at: int = Field(description="when the event log recorded it, ms (UTC)")
    outcome: Literal["applied", "rejected", "parked"]
    reason: str | None
    changes: list[Change]


class DeadLetterDetail(DeadLetter):
    redrive: Redrive | None


class RedriveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: dict[str, Any] = Field(
        description="the corrected event's JSON form (docs/events.md); event_id and producer "
        "are set by the server (refused if given and different)"
    )


class DeadLetterPage(Page):
    items: list[DeadLetter]


class ParkedEvent(BaseModel):
    event_id: str
    type: str
    waits_for: str
    source: str
    parked_at: int


class ParkedPage(Page):
    items: list[ParkedEvent]


class PartitionLag(BaseModel):
    group_id: str
    topic: str
    partition: int
    next_offset: int
    end_offset: int | None = Field(
        description="the partition's high watermark, when Kafka is configured and answers"
    )
    lag: int | None


class ViewLag(BaseModel):
    view: str
    entries_behind: int


class Lag(BaseModel):
    partitions: list[PartitionLag]
    views: list[ViewLag]
    dead_letters_by_reason: dict[str, int]
    parked_by_reference: dict[str, int]


class Outcome(BaseModel):
    """What became of a command or a submitted event."""

    event_id: str
    outcome: Literal["applied", "rejected", "parked", "duplicate", "queued", "conflict"] = Field(
        description="conflict: the id was used before for another request (reason "
        "idempotency_key_reused); a retry of the same request answers the first outcome"
    )
    reason: str | None = None
    message: str | None = None


class RedriveOutcome(Outcome):
    """What became of a redrive, the dead letter it corrects and what it changed."""

    redrive_of: str
    changes: list[Change]


class SettlementRunRequest(Strict):
    run_id: CommandId
    as_of: Millis | None = Field(None, description="default: now; never later than now")


class PayoutRequest(Strict):
    payout_id: CommandId
    sharer_id: Id
    amount: Amount
    currency: Currency


class PayoutFailure(Strict):
    reason: Text | None = None


class MinPayoutModel(Strict):
    currency: Currency
    amount: Annotated[StrictInt, Field(ge=0, le=rules.MAX_AMOUNT)]


class PlanRequest(Strict):
    """A commission plan (docs/events.md, plan_published); times in ms since the epoch."""

    plan_id: CommandId
    effective_from: Millis
    default_rate_bps: Bps
    platform_fee_bps: Bps
    level_shares_bps: Annotated[list[Bps], Field(min_length=3, max_length=3)]
    frozen_days: Days
    attribution_window_days: Days
    self_purchase_allowed: StrictBool
    min_payouts: list[MinPayoutModel]


class Posting(BaseModel):
    account: str
    currency: str
    amount: int
    level: int | None = Field(description="the commission level this posting pays, if any")
    currency_exponent: CurrencyExponent


class Entry(BaseModel):
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
    postings: list[Posting]
    redrive_of: str | None = Field(
        description="the event is a redrive: the key of the dead letter it corrects"
    )


class EntryPage(Page):
    items: list[Entry]


class ChainLink(BaseModel):
    chain_seq: int
    hash: str


class Verification(BaseModel):
    ok: bool
    entries_checked: int
    head: str
    chains: dict[str, ChainLink]
    first_bad_seq: int | None
    chain: str | None
    problem: str | None


class DriftRow(BaseModel):
    view: str
    key: list[Any]
    column: str
    stored: Any
    expected: Any


class CheckReport(BaseModel):
    ok: bool
    drifts: list[DriftRow]


# --- the whole story of an order (GET /api/v1/orders/{order_id}) -----------------------


class StoryPlan(BaseModel):
    plan_id: str
    effective_from: int
    default_rate_bps: int
    platform_fee_bps: int
    level_shares_bps: list[int]
    frozen_days: int


class StoryLine(BaseModel):
    line_id: str
    amount: int
    rate_bps: int
    refunded: int
    remaining: int


class RefundedLine(BaseModel):
    line_id: str
    amount: int


class StoryRefund(BaseModel):
    refund_id: str
    event_id: str | None = Field(
        description="the refund's event, through its reversal entry; null when the refund "
        "moved no commission (its amounts are then only in the lines' refunded)"
    )
    occurred_at: int | None
    lines: list[RefundedLine]
    merchant_charge: int = Field(description="given back to the merchant (>= 0)")
    platform_fee: int = Field(description="taken back from the platform fee (>= 0)")


class OrderMoney(BaseModel):
    currency: str
    lines_amount: int
    commission_pool: str = Field(description="Σ remaining amount × rate / 10⁴, exact decimal")
    merchant_charge: int = Field(description="platform fee + Σ level shares")
    platform_fee: int
    commission: int
    merchant_keeps: str = Field(
        description="pool − merchant charge: the shares of missing levels and the rounding"
    )
    charged_at_placement: int
    refunded_to_merchant: int
    currency_exponent: CurrencyExponent


class CoveringPayout(BaseModel):
    payout_id: str
    amount: int
    covered: int = Field(description="the part of this payout that paid this level")
    paid_at: int
    entry_seq: int


class StoryShare(BaseModel):
    level: int
    sharer_id: str
    plan_id: str | None
    rule: str | None
    share_bps: int | None
    accrued: int
    reversed: int
    amount: int
    settled: int
    settled_at: int | None
    state: Literal["pending", "available", "paid", "reversed"]
    paid_by: list[CoveringPayout]


class StorySettlement(BaseModel):
    run_id: str
    as_of: int
    event_id: str | None
    occurred_at: int | None
    entry_seq: int | None


class OrderStory(BaseModel):
    order_id: str
    buyer_id: str
    merchant_id: str
    currency: str
    occurred_at: int
    completed_at: int | None
    no_commission_reason: str | None
    plan: StoryPlan | None
    lines: list[StoryLine]
    refunds: list[StoryRefund]
    money: OrderMoney
    shares: list[StoryShare]
    settlement: StorySettlement | None
    entries: list[Entry]
    payouts_rule: str
    currency_exponent: CurrencyExponent
