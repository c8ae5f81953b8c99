"""The hand-written canonical encoders equal their JSON definitions byte for byte, on any
text (quotes, backslashes, control characters, non-ASCII, lone surrogates) and any int."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.chain.eventlog import canonical_event_bytes, canonical_event_bytes_reference
from ledger.chain.journal import canonical_entry_bytes, canonical_entry_bytes_reference
from ledger.domain.entries import JournalEntry, Posting

text = st.text(st.characters(codec=None), max_size=12)  # surrogates included
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
postings = st.lists(st.builds(Posting, text, text, ints), max_size=4).map(tuple)
entries = st.builds(
    JournalEntry,
    event_id=text,
    ordinal=st.integers(0, 10_000),
    kind=text,
    rule=text,
    occurred_at=ints,
    postings=postings,
    plan_id=st.none() | text,
    order_id=st.none() | text,
    payout_id=st.none() | text,
)
rows = st.fixed_dictionaries(
    {
        "event_id": text,
        "type": text,
        "occurred_at": ints,
        "source": text,
        "outcome": text,
        "payload": text,
    }
)


@given(entry=entries, chain=text, chain_seq=st.integers(1, 2**62))
def test_entry_bytes_equal_the_json_definition(
    entry: JournalEntry, chain: str, chain_seq: int
) -> None:
    fast = canonical_entry_bytes(chain, chain_seq, entry)
    assert fast == canonical_entry_bytes_reference(chain, chain_seq, entry)


@given(row=rows, chain=text, chain_seq=st.integers(1, 2**62))
def test_event_bytes_equal_the_json_definition(row: dict, chain: str, chain_seq: int) -> None:
    fast = canonical_event_bytes(chain, chain_seq, row)
    assert fast == canonical_event_bytes_reference(chain, chain_seq, row)
