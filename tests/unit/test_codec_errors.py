"""Decoding bad bytes: always one typed DecodeError with the right reason, never a crash."""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.domain.events import Event
from schemas.codec import DECODE_REASONS, Codec, DecodeError, decode, encode
from schemas.registry import Registry
from tests.support.strategies import events

REGISTRY = Registry.default()
CODEC = Codec(REGISTRY)


def reason_of(data: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data)
    assert info.value.reason in DECODE_REASONS
    return info.value.reason


def raw_encode(event_type: str, record: dict) -> bytes:
    """Bypass the codec's validation, to build well-formed but invalid records."""
    info = REGISTRY.reader(event_type)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, info.parsed, record)
    return info.header + out.getvalue()


def test_bad_marker():
    good = encode_example()
    assert reason_of(b"\xc3\x02" + good[2:]) == "bad_marker"
    assert reason_of(b"\x00" + good[1:]) == "bad_marker"
    assert reason_of(b"{}") == "bad_marker"
    assert reason_of(b"\x01") == "bad_marker"


def test_short_header_is_truncated():
    good = encode_example()
    for n in range(10):
        assert reason_of(good[:n]) == "truncated", n


def test_unknown_fingerprint():
    good = encode_example()
    fp = bytearray(good[2:10])
    fp[0] ^= 0xFF
    assert reason_of(good[:2] + bytes(fp) + good[10:]) == "unknown_fingerprint"


@settings(max_examples=100, deadline=None)
@given(events(), st.data())
def test_every_truncation_of_a_valid_record_is_truncated(event, data):
    good = encode(event)
    cut = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
    assert reason_of(good[:cut]) == "truncated"


@settings(max_examples=100, deadline=None)
@given(events(), st.binary(min_size=1, max_size=8))
def test_trailing_garbage_is_malformed(event, tail):
    assert reason_of(encode(event) + tail) == "malformed_payload"


def test_invalid_utf8_and_bad_union_index_are_malformed():
    from ledger.domain.events import SharerEnrolled

    good = encode(SharerEnrolled(event_id="e", occurred_at=0, producer="p", sharer_id="s"))
    # payload: event_id "e" (02 65), occurred_at 0 (00), producer "p" (02 70),
    # sharer_id "s" (02 73), upline_id union index 0 (00)
    assert good[10:] == bytes.fromhex("026500027002730" + "0")
    assert reason_of(good[:11] + b"\xff" + good[12:]) == "malformed_payload"  # bad UTF-8
    assert reason_of(good[:-1] + b"\x04") == "malformed_payload"  # union index 2


def test_times_outside_years_1_to_9999_are_invalid_values():
    record = {
        "event_id": "e",
        "occurred_at": 253_402_300_800_000,
        "producer": "p",
        "run_id": "r",
        "as_of": 0,
    }
    assert reason_of(raw_encode("settlement_run", record)) == "invalid_value"
    record.update(occurred_at=0, as_of=-(2**63))
    assert reason_of(raw_encode("settlement_run", record)) == "invalid_value"


def test_decode_accepts_bytearray_and_memoryview_and_refuses_other_types():
    good = encode_example()
    assert CODEC.decode(bytearray(good)) == CODEC.decode(memoryview(good)) == decode(good)
    for value in (None, good.hex(), 12):
        with pytest.raises(DecodeError) as info:
            CODEC.decode(value)  # type: ignore[arg-type]
        assert info.value.reason == "malformed_payload"


def _only_event_or_decode_error(data: bytes) -> None:
    try:
        result = CODEC.decode(data)
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS
    else:
        assert isinstance(result, Event)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    _only_event_or_decode_error(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([info.header for info in REGISTRY]), st.binary(max_size=200))
def test_fuzz_random_payload_behind_a_valid_header(header, payload):
    _only_event_or_decode_error(header + payload)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.data())
def test_fuzz_mutated_valid_encodings(event, data):
    buf = bytearray(encode(event))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(buf) - 1)) if buf else 0
        if op == "flip" and buf:
            buf[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif buf:
            del buf[pos]
    _only_event_or_decode_error(bytes(buf))


def encode_example() -> bytes:
    from schemas.examples import EXAMPLES

    return encode(EXAMPLES[3])
