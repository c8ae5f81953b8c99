"""Journal entries as the engine produces them: balanced sets of postings with provenance.

Position in the hash chain (seq, chain, hashes) and record time are added by the journal
when the entry is written; the engine knows nothing of them.

Sign convention: a posting's amount is what the ledger owes the account's holder, so a
sharer's pending account grows with positive postings and the merchant's charges account
goes negative by what the merchant is charged. Every entry sums to zero per currency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from ledger.domain.kinds import BUCKETS, Bucket, EntryKind


class UnbalancedEntry(ValueError):
    """An entry whose postings do not sum to zero in some currency (a bug, never input)."""


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class JournalEntry:
    event_id: str
    ordinal: int  # 0, 1, … among the entries one event produced
    kind: EntryKind
    rule: str  # the rule (and its version) that produced it
    occurred_at: int  # event time, ms
    postings: tuple[Posting, ...]
    plan_id: str | None = None
    order_id: str | None = None
    payout_id: str | None = None

    def check_balanced(self) -> None:
        """Raise UnbalancedEntry unless postings sum to zero per currency."""
        totals: dict[str, int] = defaultdict(int)
        for posting in self.postings:
            if type(posting.amount) is not int:
                raise UnbalancedEntry(f"{self.event_id}: non-integer amount {posting.amount!r}")
            totals[posting.currency] += posting.amount
        unbalanced = {c: t for c, t in totals.items() if t != 0}
        if unbalanced or not self.postings:
            raise UnbalancedEntry(f"{self.event_id}#{self.ordinal} does not balance: {unbalanced}")


# Account names: ``sharer:{id}:{bucket}`` (ids may contain ':'; the bucket never does),
# ``merchant:{id}:charges``, ``platform:fees``. Each is per currency: the posting carries
# the currency. Stored in ``postings.account``, so the spelling is a database contract.
SHARER_BUCKETS: Final = BUCKETS
# bucket name -> itself as a ``Bucket``: the look-up that both checks and narrows a name
_BUCKET: Final[dict[str, Bucket]] = {bucket: bucket for bucket in BUCKETS}
_SHARER_PREFIX = "sharer:"
SHARER_ACCOUNTS_LIKE = _SHARER_PREFIX + "%"  # a SQL LIKE pattern matching every sharer account


def sharer_account(sharer_id: str, bucket: Bucket) -> str:
    return f"{_SHARER_PREFIX}{sharer_id}:{bucket}"


def sharer_accounts(sharer_id: str) -> list[str]:
    """The sharer's four accounts, in ``SHARER_BUCKETS`` order."""
    return [sharer_account(sharer_id, bucket) for bucket in SHARER_BUCKETS]


def split_sharer_account(account: str) -> tuple[str, Bucket] | None:
    """(sharer id, bucket) of a sharer account, else None."""
    if not account.startswith(_SHARER_PREFIX):
        return None
    sharer, _, name = account[len(_SHARER_PREFIX) :].rpartition(":")
    bucket = _BUCKET.get(name)
    return (sharer, bucket) if bucket is not None else None


def merchant_account(merchant_id: str) -> str:
    return f"merchant:{merchant_id}:charges"


PLATFORM_FEES = "platform:fees"
