"""The schemas and the Avro single-object codec: round trips, fingerprints, registry."""

from __future__ import annotations

import io
import json
from dataclasses import fields

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import load_schema, to_parsing_canonical_form
from hypothesis import given, settings

from ledger.domain.events import EVENT_TYPES, OrderPlaced, event_from_record
from schemas.codec import Codec, EncodeError, decode, encode, event_type_of
from schemas.fingerprint import crc64_avro, fingerprint, parsing_canonical_form
from schemas.records import compile_converter
from schemas.registry import NAMESPACE, Registry, production_schema_files, record_name
from tests.support.strategies import EVENT_STRATEGIES, events, order_placed

REGISTRY = Registry.default()


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_has_a_v1_schema_with_the_dataclass_fields(event_type):
    info = REGISTRY.get(event_type, 1)
    assert info is not None
    schema = info.schema
    assert schema["namespace"] == NAMESPACE
    assert schema["name"] == record_name(event_type)
    assert schema["doc"]
    cls = EVENT_TYPES[event_type]
    assert [f["name"] for f in schema["fields"]] == [f.name for f in fields(cls)]
    for f, dc_field in zip(schema["fields"], fields(cls), strict=True):
        assert f["doc"], f"{event_type}.{f['name']} has no doc"
        nullable = isinstance(f["type"], list)
        assert nullable == (dc_field.default is None), f["name"]
        if nullable:
            assert f["type"][0] == "null" and f["default"] is None
    assert info.timestamp_fields == {"occurred_at", "effective_from", "as_of"} & {
        f.name for f in fields(cls)
    }


def _all_types(schema):
    if isinstance(schema, str):
        yield schema
    elif isinstance(schema, list):
        for branch in schema:
            yield from _all_types(branch)
    elif isinstance(schema, dict):
        if isinstance(schema.get("type"), str):
            yield schema["type"]
        else:
            yield from _all_types(schema["type"])
        for f in schema.get("fields", ()):
            yield from _all_types(f["type"])
        if "items" in schema:
            yield from _all_types(schema["items"])


@pytest.mark.parametrize("info", list(REGISTRY), ids=lambda i: i.event_type)
def test_schemas_never_use_floats_and_are_self_contained(info):
    kinds = set(_all_types(info.schema))
    assert not kinds & {"float", "double"}
    defined = {"record", "array"}
    assert kinds <= {"null", "boolean", "int", "long", "string"} | defined, kinds


def test_timestamps_are_timestamp_millis_longs():
    for info in REGISTRY:
        for f in info.schema["fields"]:
            if f["name"] in ("occurred_at", "effective_from", "as_of"):
                assert f["type"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_crc64_avro_matches_the_reference_algorithm_on_known_input():
    assert crc64_avro(b"") == 0xC15D213AA4D7A795

    # Independent bitwise implementation of the spec's definition.
    def slow(data: bytes) -> int:
        fp = 0xC15D213AA4D7A795
        for byte in data:
            fp ^= byte
            for _ in range(8):
                fp = (fp >> 1) ^ (0xC15D213AA4D7A795 if fp & 1 else 0)
        return fp

    for data in (b"a", b'"int"', b"hello world" * 7, bytes(range(256))):
        assert crc64_avro(data) == slow(data)


@pytest.mark.parametrize("path", production_schema_files(), ids=lambda p: p.name)
def test_canonical_form_and_fingerprint_agree_with_fastavro(path):
    schema = json.loads(path.read_text())
    ours = parsing_canonical_form(schema)
    assert ours == to_parsing_canonical_form(schema)
    assert ours == to_parsing_canonical_form(load_schema(str(path)))
    fp = fingerprint(schema)
    assert fastavro_fingerprint(ours, "CRC-64-AVRO") == fp.to_bytes(8, "little").hex()
    assert '"doc"' not in ours and "logicalType" not in ours
    info = REGISTRY.by_fingerprint(fp)
    assert info is not None and info.header == b"\xc3\x01" + fp.to_bytes(8, "little")


def test_canonical_form_expands_names_once_and_qualifies_them():
    schema = {
        "type": "record",
        "name": "A",
        "namespace": "x.y",
        "doc": "d",
        "fields": [
            {"name": "b", "type": {"type": "record", "name": "B", "fields": []}},
            {"name": "c", "type": "B", "default": {}},
            {"name": "d", "type": {"type": "array", "items": {"type": "int"}}},
        ],
    }
    assert parsing_canonical_form(schema) == (
        '{"name":"x.y.A","type":"record","fields":[{"name":"b","type":{"name":"x.y.B",'
        '"type":"record","fields":[]}},{"name":"c","type":"x.y.B"},'
        '{"name":"d","type":{"type":"array","items":"int"}}]}'
    )
    assert parsing_canonical_form(schema) == to_parsing_canonical_form(schema)


@pytest.mark.parametrize("event_type", sorted(EVENT_STRATEGIES))
def test_round_trip_every_type(event_type):
    @settings(max_examples=60, deadline=None)
    @given(EVENT_STRATEGIES[event_type]())
    def check(event):
        data = encode(event)
        assert data[:2] == b"\xc3\x01"
        assert data[:10] == REGISTRY.reader(event_type).header
        assert event_type_of(data) == event_type
        back = decode(data)
        assert back == event
        assert type(back) is type(event)

    check()


@settings(max_examples=200, deadline=None)
@given(events())
def test_fast_converter_equals_event_from_record(event):
    codec = Codec(REGISTRY)
    _, reader, record = codec.decode_record(codec.encode(event))
    convert = compile_converter(event.TYPE, reader.schema)
    assert convert(record) == event_from_record(event.TYPE, record) == event


@settings(max_examples=50, deadline=None)
@given(order_placed())
def test_payload_is_plain_avro_binary_readable_by_fastavro(event):
    data = encode(event)
    info = REGISTRY.reader("order_placed")
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), fastavro.parse_schema(info.schema))
    # fastavro's own reader, with logical types, sees the same instant as a datetime.
    assert int(record["occurred_at"].timestamp() * 1000) == event.occurred_at
    assert record["order_id"] == event.order_id


def test_millisecond_precision_round_trips_exactly():
    from ledger.domain.events import SettlementRun

    for ms in (0, 1, -1, 999, 1_772_352_000_001, 253_402_300_799_999, -62_135_596_800_000):
        event = SettlementRun(event_id="e", occurred_at=ms, producer="p", run_id="r", as_of=ms)
        assert decode(encode(event)) == event


@pytest.mark.parametrize(
    "change",
    [
        {"currency": 840},
        {"lines": ({"line_id": "l", "product_id": "p", "quantity": 1, "amount": 1.5},)},
        {"order_id": None},
        {"occurred_at": 10**20},
        {"occurred_at": True},
        {"occurred_at": 253_402_300_800_000},
        {"lines": "not a list"},
        {"producer": "\ud800"},
    ],
    ids=str,
)
def test_encode_refuses_events_that_do_not_fit_the_schema(change):
    base = OrderPlaced(
        event_id="ev-1",
        occurred_at=1,
        producer="shop",
        order_id="o",
        buyer_id="b",
        merchant_id="m",
        currency="CNY",
        lines=(),
    )
    bad = OrderPlaced(**{**{f.name: getattr(base, f.name) for f in fields(base)}, **change})
    with pytest.raises(EncodeError) as info:
        encode(bad)
    assert info.value.event_id == "ev-1"


def test_encode_refuses_a_non_event():
    with pytest.raises(EncodeError):
        Codec(REGISTRY).encode(object())  # type: ignore[arg-type]


def test_converter_falls_back_to_event_from_record_when_the_reader_lacks_a_field():
    from ledger.domain.events import InvalidEvent

    schema = dict(REGISTRY.reader("order_completed").schema)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "buyer_id"]
    convert = compile_converter("order_completed", schema)
    record = {"event_id": "e", "occurred_at": 0, "producer": "p", "order_id": "o"}
    with pytest.raises(InvalidEvent, match="buyer_id"):
        convert(record)
    assert convert({**record, "buyer_id": "b"}).buyer_id == "b"
