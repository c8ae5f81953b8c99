"""The closed sets of names the ledger stores: entry kinds, sharer buckets, payout states,
arrival outcomes and reference kinds.

Each is a ``Literal``, so a misspelt name is a type error where it is written; the tuple
beside it is the same set at run time (read off the ``Literal``, never restated). The
spellings are in the database (``entries.kind``, ``postings.account``, ``payouts.state``,
``events.outcome``, ``parked.waits_for``): they are a contract. Dead-letter reasons are
the ``Reason`` enum (ledger/domain/reasons.py).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

EntryKind = Literal[
    "accrual", "reversal", "settlement", "payout_requested", "payout_settled", "payout_failed"
]
ENTRY_KINDS: Final[tuple[EntryKind, ...]] = get_args(EntryKind)

# A sharer's four accounts (``sharer:{id}:{bucket}``), in the balances view's column order.
Bucket = Literal["pending", "available", "inflight", "paid"]
BUCKETS: Final[tuple[Bucket, ...]] = get_args(Bucket)

PayoutState = Literal["inflight", "paid", "failed", "rejected"]
PAYOUT_STATES: Final[tuple[PayoutState, ...]] = get_args(PayoutState)

# What an event did on arrival (the event log's ``outcome``; the values are engine.Outcome).
OutcomeName = Literal["applied", "rejected", "parked"]
OUTCOMES: Final[tuple[OutcomeName, ...]] = get_args(OutcomeName)

# What a parked event waits for: ``{kind}:{id}`` (ledger/domain/refs.py).
RefKind = Literal["order", "sharer", "payout"]
REF_KINDS: Final[tuple[RefKind, ...]] = get_args(RefKind)
