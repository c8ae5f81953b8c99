"""References: what a parked event waits for and what an applied event creates.

A reference is ``{kind}:{id}`` (ids may contain ':'; the kind never does). Stored in
``parked.waits_for``, so the spelling is part of the database contract.
"""

from __future__ import annotations

from typing import Final

from ledger.domain.kinds import REF_KINDS, RefKind

ORDER: Final = "order"
SHARER: Final = "sharer"
PAYOUT: Final = "payout"
KINDS: Final = REF_KINDS


def ref(kind: RefKind, ident: str) -> str:
    return f"{kind}:{ident}"


def order_ref(order_id: str) -> str:
    return ref(ORDER, order_id)


def sharer_ref(sharer_id: str) -> str:
    return ref(SHARER, sharer_id)


def payout_ref(payout_id: str) -> str:
    return ref(PAYOUT, payout_id)


def ref_id(reference: str, kind: RefKind) -> str:
    """The id inside a reference of ``kind`` (``ref_id("sharer:S1", SHARER) == "S1"``)."""
    return reference.removeprefix(ref(kind, ""))
