"""The JSON form of events: round trips, canonical text, validation reasons, JSON lines."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.events import EVENT_TYPES, InvalidEvent
from ledger.jsonform import (
    canonical_json,
    event_from_json,
    event_to_json,
    iso_to_ms,
    iter_jsonl,
    ms_to_iso,
    parse_line,
    read_jsonl,
)
from schemas.codec import MAX_TIME_MS, MIN_TIME_MS, decode, encode
from schemas.examples import EXAMPLES
from tests.support.strategies import EVENT_STRATEGIES, events

ORDER = next(e for e in EXAMPLES if e.TYPE == "order_placed")
PLAN = next(e for e in EXAMPLES if e.TYPE == "plan_published")


def reason(obj) -> str:
    with pytest.raises(InvalidEvent) as info:
        event_from_json(obj)
    return info.value.reason


@pytest.mark.parametrize("event_type", sorted(EVENT_STRATEGIES))
def test_round_trip_every_type(event_type):
    @settings(max_examples=60, deadline=None)
    @given(EVENT_STRATEGIES[event_type]())
    def check(event):
        obj = event_to_json(event)
        assert obj["type"] == event_type and obj["schema_version"] == 1
        assert event_from_json(obj) == event
        # Through text, too, and the JSON form agrees with the Avro form.
        again = event_from_json(json.loads(json.dumps(obj)))
        assert event_to_json(again) == obj
        assert decode(encode(again)) == event

    check()


@settings(max_examples=200, deadline=None)
@given(events())
def test_canonical_json_is_sorted_compact_and_parses_back(event):
    text = canonical_json(event)
    assert text == json.dumps(
        json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert parse_line(text) == event
    assert canonical_json(parse_line(text)) == text


def test_json_form_field_names_are_the_dataclass_names():
    for event in EXAMPLES:
        obj = event_to_json(event)
        names = {f.name for f in fields(EVENT_TYPES[event.TYPE])}
        assert set(obj) == names | {"type", "schema_version"}


def test_times_are_iso_with_milliseconds():
    obj = event_to_json(ORDER)
    assert obj["occurred_at"] == "2026-03-01T08:00:00.000Z"
    assert event_to_json(PLAN)["effective_from"] == "2026-03-01T07:00:00.000Z"
    assert ms_to_iso(1) == "1970-01-01T00:00:00.001Z"
    assert ms_to_iso(-1) == "1969-12-31T23:59:59.999Z"


@settings(max_examples=300)
@given(st.integers(MIN_TIME_MS, MAX_TIME_MS))
def test_iso_times_round_trip_exactly(ms):
    assert iso_to_ms(ms_to_iso(ms)) == ms


def test_input_accepts_integer_ms_offsets_and_omitted_optionals():
    obj = event_to_json(ORDER)
    assert event_from_json({**obj, "occurred_at": ORDER.occurred_at}) == ORDER
    assert event_from_json({**obj, "occurred_at": "2026-03-01T16:00:00.000+08:00"}) == ORDER
    assert event_from_json({**obj, "occurred_at": "2026-03-01T08:00:00Z"}) == ORDER
    no_version = {k: v for k, v in obj.items() if k != "schema_version"}
    assert event_from_json(no_version) == ORDER
    line = {k: v for k, v in obj["lines"][1].items() if k != "merchant_rate_bps"}
    assert event_from_json({**obj, "lines": [obj["lines"][0], line]}) == ORDER


def _order(**changes):
    return {**event_to_json(ORDER), **changes}


def _line(**changes):
    obj = event_to_json(ORDER)
    return {**obj, "lines": [{**obj["lines"][0], **changes}, obj["lines"][1]]}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([1, 2], "malformed_json"),
        ("order_placed", "malformed_json"),
        ({"event_id": "x"}, "invalid_field"),  # no type
        (_order(type="order_shipped"), "unknown_event_type"),
        (_order(type=7), "unknown_event_type"),
        (_order(extra="x"), "invalid_field"),
        ({k: v for k, v in _order().items() if k != "buyer_id"}, "invalid_field"),
        (_order(buyer_id=None), "invalid_field"),
        (_order(buyer_id=42), "invalid_field"),
        (_order(occurred_at=1.7e12), "invalid_field"),
        (_order(occurred_at=True), "invalid_field"),
        (_order(occurred_at="yesterday"), "invalid_value"),
        (_order(occurred_at="2026-03-01T08:00:00"), "invalid_value"),  # no offset
        (_order(occurred_at="2026-03-01T08:00:00.0005Z"), "invalid_value"),
        (_order(occurred_at=MAX_TIME_MS + 1), "invalid_value"),
        (_order(lines="l-1"), "invalid_field"),
        (_order(lines=[["l-1"]]), "invalid_field"),
        (_line(amount=8800.0), "invalid_field"),  # floats never carry money
        (_line(amount="8800"), "invalid_field"),
        (_line(amount=True), "invalid_field"),
        (_line(amount=2**63), "invalid_value"),
        (_line(quantity=2**31), "invalid_value"),
        (_line(merchant_rate_bps=25.0), "invalid_field"),
        (_line(colour="red"), "invalid_field"),
        (_order(schema_version=2), "invalid_value"),
        (_order(schema_version="1"), "invalid_field"),
        (_order(producer="\ud800"), "invalid_value"),
        ({**event_to_json(PLAN), "self_purchase_allowed": 0}, "invalid_field"),
        ({**event_to_json(PLAN), "level_shares_bps": [5000, 3000.5, 2000]}, "invalid_field"),
    ],
)
def test_validation_reasons(obj, expected):
    assert reason(obj) == expected


def test_read_jsonl_reports_bad_lines_with_numbers_and_keeps_going(tmp_path):
    good = [canonical_json(e) for e in EXAMPLES[:3]]
    lines = [
        "\ufeff" + good[0],
        "{not json",
        "",
        good[1],
        '{"type": "order_placed", "type": "x"}',
        json.dumps({**event_to_json(ORDER), "occurred_at": 1.5}),
        "   ",
        "NaN",
        good[2],
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + b"\xff\xfe\n")
    results = list(read_jsonl(path))
    assert [n for n, _ in results] == [1, 2, 4, 5, 6, 8, 9, 10]
    assert [r for _, r in results if not isinstance(r, InvalidEvent)] == list(EXAMPLES[:3])
    reasons = {n: r.reason for n, r in results if isinstance(r, InvalidEvent)}
    assert reasons == {
        2: "malformed_json",
        5: "malformed_json",
        6: "invalid_field",
        8: "malformed_json",
        10: "malformed_json",
    }


def test_iter_jsonl_never_raises_on_garbage():
    garbage = [b"\x00\x01", b"[" * 100_000, b"{}", b'{"type": null}', b"123", "\udcff"]
    results = list(iter_jsonl(garbage))
    assert len(results) == len(garbage)
    assert all(isinstance(r, InvalidEvent) for _, r in results)
