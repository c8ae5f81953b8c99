"""The parsing half of hostile input: what the JSON form and the Avro codec hand the
engine, and what validation then refuses. Every refusal is a reason, never a crash."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ledger.domain.events import InvalidEvent, PayoutFailed, SharerEnrolled
from ledger.domain.memory import InMemoryLedger
from ledger.domain.validation import MAX_TEXT, MAX_TIME_MS, MIN_TIME_MS, problem
from ledger.jsonform import event_to_json, parse_json, parse_line
from schemas import times
from schemas.codec import decode, encode
from tests.support.streams import reasons

ENROLL = {
    "type": "sharer_enrolled",
    "event_id": "e1",
    "occurred_at": "2026-03-01T08:00:00.000Z",
    "producer": "user-service",
    "sharer_id": "S1",
    "upline_id": None,
}


def line(**changes: object) -> bytes:
    return json.dumps({**ENROLL, **changes}).encode()


def reason_of(raw: bytes) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_line(raw)
    return info.value.reason


def test_domain_time_bounds_are_the_schemas_bounds() -> None:
    assert (MIN_TIME_MS, MAX_TIME_MS) == (times.MIN_TIME_MS, times.MAX_TIME_MS)


@pytest.mark.parametrize(
    "when", ["1969-12-31T23:59:59.999Z", "0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"]
)
def test_times_before_1970_are_accepted_like_the_docs_say(when: str) -> None:
    event = parse_line(line(occurred_at=when))
    assert problem(event) is None
    ledger = InMemoryLedger()
    ledger.ingest([event])
    assert ledger.rejected == [] and ledger.state.sharer("S1") is not None


def test_a_negative_avro_timestamp_is_a_valid_event() -> None:
    event = SharerEnrolled("e1", -1, "user-service", sharer_id="S1")
    assert decode(encode(event)) == event and problem(event) is None


@pytest.mark.parametrize(
    "when",
    [
        "2026-03-01T08:00:00.000Z\u0000junk",
        "2026-03-01T08:00:00.000Z\u0000",
        "２０２６-03-01T08:00:00.000Z",
    ],
)
def test_a_time_with_a_nul_or_non_ascii_digits_is_refused(when: str) -> None:
    assert reason_of(line(occurred_at=when)) == "invalid_value"


def test_utf16_lines_are_not_guessed() -> None:
    """``json.loads`` on bytes detects UTF-16 and would read these lines."""
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        assert reason_of(json.dumps(ENROLL).encode(encoding)) == "malformed_json"
    with pytest.raises(InvalidEvent, match="not UTF-8"):
        parse_json(b'{"type": "\xff"}')


@pytest.mark.parametrize("name", ["producer", "reason"])
def test_free_text_is_bounded_on_both_sides(name: str) -> None:
    fine = PayoutFailed("e1", 0, "finance", payout_id="P", sharer_id="S", reason="bounced")
    for text, ok in (
        ("x" * MAX_TEXT, True),
        ("x" * (MAX_TEXT + 1), False),
        ("a\nb", False),
        ("", False),
    ):
        event = replace(fine, **{name: text})
        json_side = parse_line(json.dumps(event_to_json(event)).encode())
        avro_side = decode(encode(event))
        for side in (json_side, avro_side):
            bad = problem(side)
            assert (bad is None) == ok, (name, text[:20], bad)
            if bad:
                assert bad[0] == "invalid_value" and name in bad[1]


def test_a_50_mb_producer_is_a_dead_letter_not_a_stored_name() -> None:
    ledger = InMemoryLedger()
    ledger.ingest([SharerEnrolled("e-big", 0, "p" * 50_000_000, sharer_id="S1")])
    assert reasons(ledger) == {"e-big": "invalid_value"}
    assert ledger.state.sharer("S1") is None


def test_a_utc_offset_finer_than_a_millisecond_is_not_floored_silently() -> None:
    assert reason_of(line(occurred_at="2026-03-01T08:00:00.000+05:00:00.000001")) == "invalid_value"
    assert parse_line(line(occurred_at="2026-03-01T08:00:00.000+05:00:01")).occurred_at == (
        parse_line(line(occurred_at="2026-03-01T03:00:00.000Z")).occurred_at - 1000
    )
