"""The dead-letter rows the store builds from DeadLetter values (ledger/store/dead_letters.py)."""

from __future__ import annotations

import dataclasses

from ledger.dead_letters import DeadLetter
from ledger.store import tables
from ledger.store.dead_letters import MAX_MESSAGE, dead_letter_key, dead_letter_row


def _dead(**fields: object) -> DeadLetter:
    base = DeadLetter(
        source="in.jsonl:3", reason="malformed_json", message="not JSON", payload="{", recorded_at=7
    )
    return dataclasses.replace(base, **fields)


def test_a_row_has_every_column_of_the_table() -> None:
    row = dead_letter_row(_dead(event_id="E1", event_type="OrderPlaced"), 42)
    assert list(row) == [c.name for c in tables.dead_letters.columns]
    assert (row["id"], row["event_id"], row["event_type"], row["recorded_at"]) == (
        42,
        "E1",
        "OrderPlaced",
        7,
    )


def test_raw_text_of_an_undecodable_record_is_made_storable() -> None:
    row = dead_letter_row(_dead(message="a\x00b", payload="x\ud800y", undecodable=True), 1)
    assert row["message"] == "a\\x00b"
    assert row["payload"] == "x\\ud800y"
    assert row["dedup_key"] == dead_letter_key("in.jsonl:3", "x\\ud800y")


def test_a_rejection_keeps_its_text_as_the_rules_wrote_it() -> None:
    row = dead_letter_row(_dead(message="a\x00b", payload="x\ud800y"), 1)
    assert (row["message"], row["payload"]) == ("a\x00b", "x\ud800y")


def test_an_unusable_event_id_is_left_out_and_a_long_message_cut() -> None:
    row = dead_letter_row(_dead(event_id="bad\nid", message="m" * (MAX_MESSAGE + 5)), 1)
    assert row["event_id"] is None
    assert len(row["message"]) == MAX_MESSAGE and row["message"].endswith("…")


def test_the_same_record_has_the_same_key_and_another_source_another() -> None:
    one = dead_letter_row(_dead(), 1)["dedup_key"]
    assert dead_letter_row(_dead(message="other words"), 2)["dedup_key"] == one
    assert dead_letter_row(_dead(source="in.jsonl:4"), 3)["dedup_key"] != one
