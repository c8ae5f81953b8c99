"""The journal's hash chains and their verification, as pure functions (no SQL, no clock).

Chains
------
The journal is a set of independent hash chains, one per writer partition (the service
names them, e.g. ``"ledger.orders/3"`` or ``"file"``), so that writers running side by side
never contend on one head. Entry number ``k`` of chain ``C`` (``chain_seq`` 1, 2, 3 …)
links to entry ``k - 1`` of the same chain; entry #1 links to :data:`GENESIS`::

    hash(C, k) = sha256_hex( prev_hash  ‖  canonical_entry_bytes(C, k, entry) )

``prev_hash`` is the 64 ASCII hex characters of the previous link (fixed length, so the
concatenation is unambiguous).

Canonical bytes (version 1)
---------------------------
The canonical form of an entry is the UTF-8 (in fact pure ASCII) encoding of this JSON
object, written with sorted keys, no whitespace (``separators=(",", ":")``) and every
non-ASCII character escaped as ``\\uXXXX`` (``ensure_ascii``)::

    {"chain": str, "chain_seq": int, "event_id": str, "kind": str, "occurred_at": int,
     "order_id": str|null, "ordinal": int, "payout_id": str|null, "plan_id": str|null,
     "postings": [[account, currency, amount], …],   # in the entry's order
     "rule": str, "v": 1}

JSON string escaping makes every field boundary unambiguous, and integers are written in
plain decimal, so equal entries give equal bytes and different entries different bytes.

Deliberately **not** hashed: the global ``seq`` (allocated from a shared counter, so it
differs between two runs with several writers) and ``recorded_at`` (wall-clock time of the
write). Re-ingesting the same events into the same chains therefore reproduces the same
hashes and the same :func:`ledger_head`. ``verify`` still checks that ``seq`` grows with
``chain_seq`` inside a chain, so rows cannot be reordered by swapping their seqs.

Limits
------
Removing the last N entries of a chain *and* rewinding its ``chain_heads`` row (or
appending forged entries with correctly computed hashes and advancing the head) cannot
be detected from inside the database. That is why verify reports the ledger head: an
auditor records it outside the database and later passes it back as ``expect_head``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.domain.entries import JournalEntry, Posting, UnbalancedEntry

# JSON string encoding as json.dumps(ensure_ascii=True) does it (the C implementation)
_str = json.encoder.encode_basestring_ascii

GENESIS = "0" * 64
CANONICAL_VERSION = 1


def canonical_entry_bytes(chain: str, chain_seq: int, entry: JournalEntry) -> bytes:
    """The version-1 canonical byte form of ``entry`` at position ``chain_seq`` of ``chain``.

    Raises TypeError when a field has the wrong type (a bool or float where an int is due),
    so that two different values can never serialise alike.
    """
    if not isinstance(chain, str):
        raise TypeError(f"chain must be a str, not {chain!r}")
    _require_int("chain_seq", chain_seq)
    validate_entry(entry)
    return _canonical_entry_bytes(chain, chain_seq, entry)


def _canonical_entry_bytes(chain: str, chain_seq: int, entry: JournalEntry) -> bytes:
    """``canonical_entry_bytes`` of arguments already checked as it checks them."""
    # Written out by hand in sorted key order: byte for byte what json.dumps(sort_keys=True,
    # separators=(",", ":"), ensure_ascii=True) gives (a test holds them equal), at a
    # fraction of its cost on the hot path and in verify.
    postings = ",".join(
        f"[{_str(p.account)},{_str(p.currency)},{p.amount}]" for p in entry.postings
    )
    return (
        f'{{"chain":{_str(chain)},"chain_seq":{chain_seq},"event_id":{_str(entry.event_id)},'
        f'"kind":{_str(entry.kind)},"occurred_at":{entry.occurred_at},'
        f'"order_id":{_opt(entry.order_id)},"ordinal":{entry.ordinal},'
        f'"payout_id":{_opt(entry.payout_id)},"plan_id":{_opt(entry.plan_id)},'
        f'"postings":[{postings}],"rule":{_str(entry.rule)},"v":{CANONICAL_VERSION}}}'
    ).encode("ascii")


def canonical_entry_bytes_reference(chain: str, chain_seq: int, entry: JournalEntry) -> bytes:
    """The definition ``canonical_entry_bytes`` implements (kept for the equality test)."""
    body = {
        "v": CANONICAL_VERSION,
        "chain": chain,
        "chain_seq": chain_seq,
        "event_id": entry.event_id,
        "ordinal": entry.ordinal,
        "kind": entry.kind,
        "rule": entry.rule,
        "plan_id": entry.plan_id,
        "order_id": entry.order_id,
        "payout_id": entry.payout_id,
        "occurred_at": entry.occurred_at,
        "postings": [[p.account, p.currency, p.amount] for p in entry.postings],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def _opt(value: str | None) -> str:
    return "null" if value is None else _str(value)


def validate_entry(entry: JournalEntry) -> None:
    """Raise TypeError unless every field has exactly its declared type (str, int, None)."""
    # exact type checks, spelled out: this runs for every entry written and verified
    if not (
        type(entry.event_id) is str
        and type(entry.kind) is str
        and type(entry.rule) is str
        and (entry.plan_id is None or type(entry.plan_id) is str)
        and (entry.order_id is None or type(entry.order_id) is str)
        and (entry.payout_id is None or type(entry.payout_id) is str)
        and type(entry.ordinal) is int
        and type(entry.occurred_at) is int
        and type(entry.postings) in (tuple, list)
        and all(
            type(p.account) is str and type(p.currency) is str and type(p.amount) is int
            for p in entry.postings
        )
    ):
        _check_slowly(entry)


def _check_slowly(entry: JournalEntry) -> None:
    for name in ("event_id", "kind", "rule"):
        if not isinstance(getattr(entry, name), str):
            raise TypeError(f"{name} must be a str, not {getattr(entry, name)!r}")
    for name in ("plan_id", "order_id", "payout_id"):
        value = getattr(entry, name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a str or None, not {value!r}")
    _require_int("ordinal", entry.ordinal)
    _require_int("occurred_at", entry.occurred_at)
    if not isinstance(entry.postings, tuple | list):
        raise TypeError(f"postings must be a tuple, not {type(entry.postings).__name__}")
    for posting in entry.postings:
        if not isinstance(posting.account, str) or not isinstance(posting.currency, str):
            raise TypeError(f"posting account and currency must be str: {posting!r}")
        _require_int("amount", posting.amount)
    # reached only for str subclasses (a StrEnum kind, say): they serialise as their text


def _require_int(name: str, value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, not {value!r}")


def link_hash(prev_hash: str, chain: str, chain_seq: int, entry: JournalEntry) -> str:
    """sha256 hex of ``prev_hash`` (64 ASCII hex chars) followed by the canonical bytes."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_entry_bytes(chain, chain_seq, entry))
    return digest.hexdigest()


def link_hash_checked(prev_hash: str, chain: str, chain_seq: int, entry: JournalEntry) -> str:
    """``link_hash`` for the writer, whose entries already passed ``validate_entry`` (the
    store checks a batch before writing any of it) and whose chain and chain_seq are a
    checked name and an int: the same hash without checking each entry twice."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(_canonical_entry_bytes(chain, chain_seq, entry))
    return digest.hexdigest()


def ledger_head(heads: Mapping[str, tuple[int, str]]) -> str:
    """One digest over every chain's last link: sha256 hex of GENESIS followed by the
    canonical JSON list ``[[chain, chain_seq, hash], …]`` sorted by chain (code points).

    An empty ledger gives ``sha256(GENESIS + "[]")``; the value does not depend on the
    database, the global seqs or the record times.
    """
    # a chain with no entries (only event-log links, ledger/chain/eventlog.py) is left out
    items = [[chain, seq, digest] for chain, (seq, digest) in sorted(heads.items()) if seq > 0]
    payload = json.dumps(items, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return hashlib.sha256(GENESIS.encode("ascii") + payload).hexdigest()


@dataclass(frozen=True)
class VerifyReport:
    """What verify found. ``ok`` is True only when no problem was found.

    ``first_bad_seq`` is the global seq of the lowest-seq row that fails a check (for a
    removed row, the row right after the gap), or None when the problem is not a row
    (a chain head table disagreement, a head differing from ``expect_head``).
    """

    ok: bool
    entries_checked: int
    chains: dict[str, tuple[int, str]]  # chain -> (last chain_seq, last hash) in the journal
    head: str  # ledger_head(chains)
    first_bad_seq: int | None = None
    chain_of_bad: str | None = None
    problem: str | None = None
    problems_found: int = 0
    # where the first problem is: "entries" (first_bad_seq is an entries seq), "events"
    # (an events seq: the event log), "chain_heads", or a reference-state table
    table: str | None = None
    events_checked: int = 0
    event_chains: dict[str, tuple[int, str]] = field(default_factory=dict)
    events_head: str = ""
    # the signed checkpoint (created_at, ms) the check started from; None: from genesis
    since: int | None = None


@dataclass(frozen=True)
class EntryRow:
    """One stored entry with its postings, as verify reads it back.

    ``malformed`` names a stored value of the wrong type (or NULL where none belongs),
    found before the entry could be rebuilt: such a row is reported as it is, never hashed.
    """

    seq: Any
    chain: Any
    chain_seq: Any
    prev_hash: Any
    hash: Any
    entry: JournalEntry | None
    posting_times: tuple[int, ...] = ()  # occurred_at of each stored posting
    malformed: str | None = None
    posting_ordinals: tuple[int, ...] | None = None  # as stored; None: not read

    def recompute(self) -> str:
        assert self.entry is not None
        return link_hash(self.prev_hash, self.chain, self.chain_seq, self.entry)

    def content_problem(self, where: str) -> str | None:
        assert self.entry is not None
        try:
            self.entry.check_balanced()
        except UnbalancedEntry:
            return f"postings of seq {self.seq} do not balance ({where})"
        if any(t != self.entry.occurred_at for t in self.posting_times):
            return f"posting occurred_at differs from its entry at {where}: posting altered"
        ordinals = self.posting_ordinals
        if ordinals is not None and ordinals != tuple(range(len(ordinals))):
            return f"postings of {where} are numbered {list(ordinals)}, not 0, 1, …: renumbered"
        return None


class LinkedRow(Protocol):
    """A hash-chained row (an entry, an event-log row) as the checker reads it."""

    @property
    def seq(self) -> Any: ...
    @property
    def chain(self) -> Any: ...
    @property
    def chain_seq(self) -> Any: ...
    @property
    def prev_hash(self) -> Any: ...
    @property
    def hash(self) -> Any: ...
    @property
    def malformed(self) -> str | None: ...

    def recompute(self) -> str: ...
    def content_problem(self, where: str) -> str | None: ...


@dataclass
class _ChainState:
    chain_seq: int = 0
    hash: str = GENESIS
    seq: int = -1


def _is_link(value: object) -> bool:
    return type(value) is str and _LINK.fullmatch(value) is not None


_LINK = re.compile("[0-9a-f]{64}")


@dataclass
class ChainChecker:
    """Feeds on stored rows in (chain, chain_seq) order and remembers the first problem.

    ``stored_heads`` is the chain head table (chain -> (chain_seq, hash)). Problems are
    ranked by global seq; head-table problems (which have no row) rank after row problems.
    ``label`` prefixes every message (e.g. "event log: ") when the rows are not entries.
    Never raises for any stored value: a value of the wrong type is a reported problem.
    """

    stored_heads: Mapping[str, tuple[int, str]]
    label: str = ""
    chains: dict[str, _ChainState] = field(default_factory=dict)
    entries_checked: int = 0
    problems_found: int = 0
    _best: tuple[float, int | None, str, str] | None = None

    def feed(self, row: LinkedRow) -> None:
        self.entries_checked += 1
        if row.malformed is not None or type(row.chain) is not str:
            why = row.malformed or f"chain name {row.chain!r} is not text"
            self._note(row.seq, _text(row.chain), f"malformed row at seq {row.seq!r}: {why}")
            return
        state = self.chains.get(row.chain)
        if state is None:
            state = self.chains[row.chain] = _ChainState()
        well_typed = type(row.chain_seq) is int and type(row.seq) is int and _is_link(row.hash)
        problem = self._row_problem(row, state, well_typed)
        if problem is not None:
            self._note(row.seq, row.chain, problem)
        if well_typed and row.chain_seq > state.chain_seq:
            state.chain_seq, state.hash, state.seq = row.chain_seq, row.hash, row.seq

    def start_at(self, chain: str, chain_seq: int, digest: str, seq: int) -> None:
        """Walk ``chain`` on from a link already trusted (a signed checkpoint's)."""
        self.chains[chain] = _ChainState(chain_seq, digest, seq)

    def note_orphan_posting(self, entry_seq: object) -> None:
        self._note(
            entry_seq,
            None,
            f"postings of seq {entry_seq!r} have no entry: an entry was "
            "removed or postings were forged",
        )

    def note(self, seq: object, chain: str | None, problem: str) -> None:
        """Record a problem found outside the chain walk (ranked like the others)."""
        self._note(seq, chain, problem)

    @property
    def first_problem(self) -> tuple[int | None, str | None, str] | None:
        """(seq, chain, problem) of the best-ranked problem so far, or None."""
        best = self._best
        return None if best is None else (best[1], best[2] or None, best[3])

    def heads(self) -> dict[str, tuple[int, str]]:
        return {c: (s.chain_seq, s.hash) for c, s in self.chains.items()}

    def report(self, expect_head: str | None = None) -> VerifyReport:
        self.check_heads()
        heads = self.heads()
        head = ledger_head(heads)
        if expect_head is not None and head != expect_head and self._best is None:
            self._note(None, None, f"ledger head {head} differs from the expected {expect_head}")
        best = self._best
        return VerifyReport(
            ok=best is None,
            entries_checked=self.entries_checked,
            chains=heads,
            head=head,
            first_bad_seq=None if best is None else best[1],
            chain_of_bad=None if best is None else (best[2] or None),
            problem=None if best is None else best[3],
            problems_found=self.problems_found,
        )

    def _row_problem(self, row: LinkedRow, state: _ChainState, well_typed: bool) -> str | None:
        # The common case, a row that follows its chain's last one and hashes right, is
        # decided before any message is worded.
        if (
            well_typed
            and row.chain_seq == state.chain_seq + 1
            and row.seq > state.seq
            and row.prev_hash == state.hash
            and _is_link(row.prev_hash)
        ):
            stored_head = self.stored_heads.get(row.chain)
            if stored_head is not None and row.chain_seq <= stored_head[0]:
                try:
                    recomputed = row.recompute()
                except (TypeError, ValueError):
                    recomputed = None
                if recomputed == row.hash:
                    where = f"{self.label}seq {row.seq} (chain {row.chain} #{row.chain_seq})"
                    return row.content_problem(where)
        return self._worded_problem(row, state)

    def _worded_problem(self, row: LinkedRow, state: _ChainState) -> str | None:
        where = f"{self.label}seq {row.seq} (chain {row.chain} #{row.chain_seq})"
        for name in ("seq", "chain_seq"):
            if type(getattr(row, name)) is not int:
                return f"malformed row at {where}: {name} is {getattr(row, name)!r}"
        for name in ("prev_hash", "hash"):
            if not _is_link(getattr(row, name)):
                return f"malformed row at {where}: {name} is {getattr(row, name)!r}"
        if row.chain_seq <= state.chain_seq:
            return f"duplicate/extra row at {where}: chain position already taken"
        if row.chain_seq != state.chain_seq + 1:
            return (
                f"{self.label}gap in chain {row.chain} after #{state.chain_seq}: a row was "
                f"removed (next row is {where})"
            )
        if row.seq <= state.seq:
            return (
                f"rows reordered at {where}: its seq is not after the seq {state.seq} of "
                f"#{state.chain_seq}"
            )
        stored_head = self.stored_heads.get(row.chain)
        if stored_head is None or row.chain_seq > stored_head[0]:
            return f"extra row at {where}: beyond the chain head table"
        try:
            recomputed = row.recompute()
        except (TypeError, ValueError) as exc:
            return f"malformed row at {where}: {exc}"
        if recomputed != row.hash:
            return f"hash mismatch at {where}: row altered"
        if row.prev_hash != state.hash:
            return (
                f"broken link at {where}: prev_hash is not the hash of #{state.chain_seq}; "
                "a row before it was altered or replaced"
            )
        return row.content_problem(where)

    def check_heads(self) -> None:
        for chain, (head_seq, head_hash) in sorted(self.stored_heads.items()):
            state = self.chains.get(chain, _ChainState())
            if (state.chain_seq, state.hash) != (head_seq, head_hash):
                self._note(
                    None,
                    chain,
                    f"{self.label}chain head table says {chain} #{head_seq}/{head_hash} but "
                    f"the {'log' if self.label else 'journal'} ends at "
                    f"#{state.chain_seq}/{state.hash}",
                )
        # A chain with rows but no head row is reported row by row ("extra row").

    def _note(self, seq: object, chain: str | None, problem: str) -> None:
        self.problems_found += 1
        int_seq = seq if type(seq) is int else None
        # a row whose seq is not even an int ranks after every well-numbered row
        rank = float(int_seq) if int_seq is not None else float("inf")
        if seq is not None and int_seq is None:
            rank = 2.0**64
        if self._best is None or rank < self._best[0]:
            self._best = (rank, int_seq, chain or "", problem)


def _text(value: object) -> str | None:
    return value if type(value) is str else None


def entry_from_row(row: Mapping[Any, Any], postings: Iterable[Mapping[Any, Any]]) -> JournalEntry:
    """Rebuild a JournalEntry from an ``entries`` row and its ``postings`` rows in order."""
    return JournalEntry(
        event_id=row["event_id"],
        ordinal=row["ordinal"],
        kind=row["kind"],
        rule=row["rule"],
        occurred_at=row["occurred_at"],
        postings=tuple(Posting(p["account"], p["currency"], p["amount"]) for p in postings),
        plan_id=row["plan_id"],
        order_id=row["order_id"],
        payout_id=row["payout_id"],
    )
