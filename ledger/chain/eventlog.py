"""The event log's hash chains, as pure functions (no SQL, no clock).

Every row of ``events`` (the ledger's inputs: what arrived, from where, and its outcome
on arrival) is linked into a hash chain exactly like the journal's entries, one chain per
writer partition and with the same chain names, so that an inserted, removed or altered
input is as evident as an altered entry::

    hash(C, k) = sha256_hex( prev_hash  ‖  canonical_event_bytes(C, k, row) )

The canonical form (version 1) is the ASCII JSON object, sorted keys, no whitespace, of
``chain, chain_seq, event_id, type, occurred_at, source, outcome, payload`` and ``"v": 1``.
Not hashed, as for entries: the global ``seq`` (arrival number) and ``recorded_at``.
The last link of each chain is kept in ``chain_heads.events_seq`` / ``events_hash``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.chain.journal import GENESIS

_str = json.encoder.encode_basestring_ascii

EVENT_CANONICAL_VERSION = 1
HASHED_FIELDS = ("event_id", "type", "occurred_at", "source", "outcome", "payload")
_INT_FIELDS = frozenset({"occurred_at"})


def canonical_event_bytes(chain: str, chain_seq: int, row: Mapping[str, Any]) -> bytes:
    """The version-1 canonical bytes of an event-log row at ``chain_seq`` of ``chain``.

    Raises TypeError for a field of the wrong type (text where an int is due, or the
    reverse), so two different rows can never serialise alike."""
    if type(chain) is not str:
        raise TypeError(f"chain must be a str, not {chain!r}")
    if type(chain_seq) is not int:
        raise TypeError(f"chain_seq must be an int, not {chain_seq!r}")
    for name in HASHED_FIELDS:
        wanted = int if name in _INT_FIELDS else str
        if type(row[name]) is not wanted:
            raise TypeError(f"{name} must be a {wanted.__name__}, not {row[name]!r}")
    # Written out by hand in sorted key order: byte for byte what the JSON definition
    # (canonical_event_bytes_reference) gives, a test holds them equal; several times faster.
    return (
        f'{{"chain":{_str(chain)},"chain_seq":{chain_seq},"event_id":{_str(row["event_id"])},'
        f'"occurred_at":{row["occurred_at"]},"outcome":{_str(row["outcome"])},'
        f'"payload":{_str(row["payload"])},"source":{_str(row["source"])},'
        f'"type":{_str(row["type"])},"v":{EVENT_CANONICAL_VERSION}}}'
    ).encode("ascii")


def canonical_event_bytes_reference(chain: str, chain_seq: int, row: Mapping[str, Any]) -> bytes:
    """The definition ``canonical_event_bytes`` implements (kept for the equality test)."""
    body: dict[str, Any] = {"v": EVENT_CANONICAL_VERSION, "chain": chain, "chain_seq": chain_seq}
    body.update((name, row[name]) for name in HASHED_FIELDS)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def event_link_hash(prev_hash: str, chain: str, chain_seq: int, row: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_event_bytes(chain, chain_seq, row))
    return digest.hexdigest()


def link_events(chain: str, head: tuple[int, str], rows: list[dict[str, Any]]) -> tuple[int, str]:
    """Fill ``chain``, ``chain_seq``, ``prev_hash`` and ``hash`` of ``rows`` (in order) after
    the chain's ``head`` (last chain_seq, last hash); return the new head."""
    seq, prev = head
    for row in rows:
        seq += 1
        digest = event_link_hash(prev, chain, seq, row)
        row.update(chain=chain, chain_seq=seq, prev_hash=prev, hash=digest)
        prev = digest
    return seq, prev


def events_head(heads: Mapping[str, tuple[int, str]]) -> str:
    """One digest over every event chain's last link, like ``journal.ledger_head``
    (chains without events are left out, so a ledger without events has the empty head)."""
    items = [[c, s, h] for c, (s, h) in sorted(heads.items()) if s > 0]
    payload = json.dumps(items, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return hashlib.sha256(GENESIS.encode("ascii") + payload).hexdigest()


@dataclass(frozen=True)
class EventRow:
    """One stored event-log row as verify reads it back (see ``journal.LinkedRow``)."""

    seq: Any
    chain: Any
    chain_seq: Any
    prev_hash: Any
    hash: Any
    fields: Mapping[str, Any]
    malformed: str | None = None

    def recompute(self) -> str:
        return event_link_hash(self.prev_hash, self.chain, self.chain_seq, self.fields)

    def content_problem(self, where: str) -> str | None:
        return None  # what the payload means is checked by the replay (ledger/store/replay.py)
