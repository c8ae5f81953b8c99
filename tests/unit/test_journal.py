"""Pure tests of the hash chain: canonical bytes, links, ledger head, the chain checker."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.chain.journal import (
    GENESIS,
    ChainChecker,
    EntryRow,
    canonical_entry_bytes,
    ledger_head,
    link_hash,
)
from ledger.domain.entries import JournalEntry, Posting

text = st.text(max_size=12)  # includes quotes, backslashes, control and non-ASCII chars
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
postings = st.lists(st.builds(Posting, text, st.text(min_size=3, max_size=3), ints), max_size=4)
entries = st.builds(
    JournalEntry,
    event_id=text,
    ordinal=st.integers(0, 100),
    kind=text,
    rule=text,
    occurred_at=ints,
    postings=postings.map(tuple),
    plan_id=st.none() | text,
    order_id=st.none() | text,
    payout_id=st.none() | text,
)
hexes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


def _sample() -> JournalEntry:
    return JournalEntry(
        event_id="E-1",
        ordinal=0,
        kind="accrual",
        rule="order_placed/v1",
        occurred_at=1_700_000_000_000,
        postings=(
            Posting("merchant:M1:charges", "CNY", -2318),
            Posting("sharer:S1:pending", "CNY", 1067),
            Posting("sharer:S2:pending", "CNY", 640),
            Posting("sharer:S3:pending", "CNY", 426),
            Posting("platform:fees", "CNY", 185),
        ),
        plan_id="P1",
        order_id="O1",
    )


def test_canonical_form_is_the_documented_json() -> None:
    raw = canonical_entry_bytes("ledger.orders/3", 7, _sample())
    assert raw.startswith(b'{"chain":"ledger.orders/3","chain_seq":7,"event_id":"E-1"')
    decoded = json.loads(raw)
    assert decoded["postings"][0] == ["merchant:M1:charges", "CNY", -2318]
    assert decoded["payout_id"] is None and decoded["v"] == 1
    assert b" " not in raw.replace(b"merchant", b"")  # no whitespace between tokens


GOLDEN = (
    b'{"chain":"file","chain_seq":1,"event_id":"E-1","kind":"accrual",'
    b'"occurred_at":1700000000000,"order_id":"O1","ordinal":0,"payout_id":null,'
    b'"plan_id":"P1","postings":[["merchant:M1:charges","CNY",-2318],'
    b'["sharer:S1:pending","CNY",1067],["sharer:S2:pending","CNY",640],'
    b'["sharer:S3:pending","CNY",426],["platform:fees","CNY",185]],'
    b'"rule":"order_placed/v1","v":1}'
)


def test_golden_vector_pins_the_format() -> None:
    # If this changes, every stored chain stops verifying: bump CANONICAL_VERSION instead.
    assert canonical_entry_bytes("file", 1, _sample()) == GOLDEN
    digest = link_hash(GENESIS, "file", 1, _sample())
    assert digest == hashlib.sha256(GENESIS.encode() + GOLDEN).hexdigest()
    assert digest == "7723514aee5864afa8ad44fd5411f859bc56f3591c79a153938cfbb232be46f5"


def test_non_ascii_and_quotes_are_escaped() -> None:
    entry = dataclasses.replace(_sample(), event_id='订单"\\n\t')
    raw = canonical_entry_bytes("c", 1, entry)
    assert raw.isascii() and b'"event_id":"\\u8ba2\\u5355\\"\\\\n\\t"' in raw


@given(entry=entries, chain=text, chain_seq=st.integers(1, 2**40), prev=hexes)
def test_deterministic(entry: JournalEntry, chain: str, chain_seq: int, prev: str) -> None:
    copy = dataclasses.replace(
        entry, postings=tuple(Posting(*dataclasses.astuple(p)) for p in entry.postings)
    )
    assert canonical_entry_bytes(chain, chain_seq, entry) == canonical_entry_bytes(
        chain, chain_seq, copy
    )
    digest = link_hash(prev, chain, chain_seq, entry)
    assert digest == link_hash(prev, chain, chain_seq, copy)
    assert len(digest) == 64 and int(digest, 16) >= 0


def _mutations(entry: JournalEntry) -> st.SearchStrategy:
    """A strategy of (description, changed entry) differing from ``entry`` in one field."""
    options = []
    for name in ("event_id", "kind", "rule"):
        options.append(
            text.filter(lambda v, n=name: v != getattr(entry, n)).map(
                lambda v, n=name: dataclasses.replace(entry, **{n: v})
            )
        )
    for name in ("plan_id", "order_id", "payout_id"):
        options.append(
            (st.none() | text)
            .filter(lambda v, n=name: v != getattr(entry, n))
            .map(lambda v, n=name: dataclasses.replace(entry, **{n: v}))
        )
    for name in ("ordinal", "occurred_at"):
        options.append(
            ints.filter(lambda v, n=name: v != getattr(entry, n)).map(
                lambda v, n=name: dataclasses.replace(entry, **{n: v})
            )
        )
    options.append(
        postings.map(tuple)
        .filter(lambda v: v != entry.postings)
        .map(lambda v: dataclasses.replace(entry, postings=v))
    )
    return st.one_of(options)


@given(data=st.data(), entry=entries, chain=text, chain_seq=st.integers(1, 2**40), prev=hexes)
def test_any_field_change_changes_the_hash(
    data: st.DataObject, entry: JournalEntry, chain: str, chain_seq: int, prev: str
) -> None:
    original = link_hash(prev, chain, chain_seq, entry)
    changed = data.draw(_mutations(entry))
    assert link_hash(prev, chain, chain_seq, changed) != original
    other_chain = data.draw(text.filter(lambda c: c != chain))
    assert link_hash(prev, other_chain, chain_seq, entry) != original
    assert link_hash(prev, chain, chain_seq + 1, entry) != original
    other_prev = data.draw(hexes.filter(lambda p: p != prev))
    assert link_hash(other_prev, chain, chain_seq, entry) != original


@given(entry=entries)
def test_posting_order_matters(entry: JournalEntry) -> None:
    if len(set(entry.postings)) < 2:
        return
    reordered = dataclasses.replace(entry, postings=tuple(reversed(entry.postings)))
    if reordered.postings != entry.postings:
        assert link_hash(GENESIS, "c", 1, reordered) != link_hash(GENESIS, "c", 1, entry)


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_at": 1.0},
        {"ordinal": True},
        {"kind": 3},
        {"order_id": 7},
        {"postings": (Posting("a", "CNY", 1.5), Posting("b", "CNY", -1.5))},
        {"postings": (Posting("a", "CNY", True), Posting("b", "CNY", -1))},
    ],
)
def test_mistyped_fields_are_refused(change: dict) -> None:
    with pytest.raises(TypeError):
        canonical_entry_bytes("c", 1, dataclasses.replace(_sample(), **change))


def test_ledger_head() -> None:
    empty = hashlib.sha256(GENESIS.encode() + b"[]").hexdigest()
    assert ledger_head({}) == empty
    heads = {"b": (2, "f" * 64), "a": (5, "e" * 64)}
    assert ledger_head(heads) == ledger_head(dict(reversed(list(heads.items()))))
    assert ledger_head(heads) != ledger_head({**heads, "a": (5, "d" * 64)})
    assert ledger_head(heads) != ledger_head({**heads, "a": (6, "e" * 64)})
    assert ledger_head(heads) != ledger_head({"b": (2, "f" * 64)})
    assert ledger_head(heads) != empty


# --- ChainChecker on in-memory rows ------------------------------------------------------


def _chain_rows(chain: str, seqs: list[int]) -> list[EntryRow]:
    rows, prev = [], GENESIS
    for number, seq in enumerate(seqs, 1):
        entry = dataclasses.replace(_sample(), event_id=f"{chain}-{number}")
        digest = link_hash(prev, chain, number, entry)
        rows.append(EntryRow(seq, chain, number, prev, digest, entry, (entry.occurred_at,) * 5))
        prev = digest
    return rows


def _check(rows: list[EntryRow], heads: dict | None = None):
    if heads is None:
        heads = {}
        for row in rows:
            heads[row.chain] = (row.chain_seq, row.hash)
    checker = ChainChecker(stored_heads=heads)
    for row in sorted(rows, key=lambda r: (r.chain, r.chain_seq, r.seq)):
        checker.feed(row)
    return checker.report()


def test_checker_accepts_good_chains_and_reports_heads() -> None:
    rows = _chain_rows("a", [1, 3, 4]) + _chain_rows("b", [2, 5])
    report = _check(rows)
    assert report.ok and report.entries_checked == 5 and report.problem is None
    assert report.chains == {"a": (3, rows[2].hash), "b": (2, rows[4].hash)}
    assert report.head == ledger_head(report.chains)


def test_checker_reports_the_lowest_bad_seq_over_all_chains() -> None:
    a = _chain_rows("a", [1, 3, 4])
    b = _chain_rows("b", [2, 5])
    a[2] = dataclasses.replace(a[2], entry=dataclasses.replace(a[2].entry, kind="reversal"))
    b[1] = dataclasses.replace(b[1], entry=dataclasses.replace(b[1].entry, rule="x"))
    report = _check(a + b)
    assert not report.ok and report.first_bad_seq == 4 and report.chain_of_bad == "a"
    assert "hash mismatch at seq 4" in report.problem and report.problems_found == 2


def test_checker_gap_and_reorder_and_head_disagreement() -> None:
    a = _chain_rows("a", [1, 2, 3, 4])
    gap = _check([a[0], a[2], a[3]], heads={"a": (4, a[3].hash)})
    assert gap.first_bad_seq == 3 and "gap in chain a after #1" in gap.problem

    swapped = [a[0], dataclasses.replace(a[1], seq=3), dataclasses.replace(a[2], seq=2), a[3]]
    reorder = _check(swapped)
    assert reorder.first_bad_seq == 2 and "reordered" in reorder.problem

    short = _check(a[:3], heads={"a": (4, a[3].hash)})
    assert short.first_bad_seq is None and short.chain_of_bad == "a"
    assert "chain head table says a #4" in short.problem and "ends at #3" in short.problem

    report = _check(a, heads={"a": (4, a[3].hash)})
    assert report.ok
    checker = ChainChecker(stored_heads={"a": (4, a[3].hash)})
    for row in a:
        checker.feed(row)
    expected = checker.report(expect_head="0" * 64)
    assert not expected.ok and "differs from the expected" in expected.problem
