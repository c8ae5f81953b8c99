"""Schema evolution: a v2 writer read by a v1 reader and a v1 writer read by a v2 reader.

The v2 schema (tests/fixtures/schemas/order_placed.v2.avsc) adds an optional ``channel``
to the order and an optional ``sku`` to its lines, both with default null.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from ledger.domain.events import event_to_record
from schemas.codec import Codec, DecodeError
from schemas.compat import check_resolvable
from schemas.registry import Registry, RegistryError, production_schema_files
from tests.support.strategies import order_placed

FIXTURES = Path(__file__).parent.parent / "fixtures" / "schemas"
V2 = FIXTURES / "order_placed.v2.avsc"

V1_ONLY = Codec(Registry.default())
V2_READER = Codec(Registry.default(extra_files=(V2,)))
V1_READER_KNOWING_V2 = Codec(
    Registry.default(extra_files=(V2,), reader_versions={"order_placed": 1})
)


def v2_record(event, channel="app", sku="sku-1"):
    record = event_to_record(event)
    record["channel"] = channel
    record["lines"] = [{**line, "sku": sku} for line in record["lines"]]
    return record


def test_registry_reader_is_the_latest_version_unless_pinned():
    assert V2_READER.registry.reader("order_placed").version == 2
    assert V1_READER_KNOWING_V2.registry.reader("order_placed").version == 1
    assert V1_ONLY.registry.reader("order_placed").version == 1
    v1 = V1_ONLY.registry.reader("order_placed")
    v2 = V2_READER.registry.get("order_placed", 2)
    assert v1.fingerprint != v2.fingerprint


@settings(max_examples=50, deadline=None)
@given(order_placed())
def test_v1_record_read_by_v2_reader_gets_defaults(event):
    data = V1_ONLY.encode(event)
    writer, reader, record = V2_READER.decode_record(data)
    assert (writer.version, reader.version) == (1, 2)
    assert record["channel"] is None
    assert all(line["sku"] is None for line in record["lines"])
    assert V2_READER.decode(data) == event


@settings(max_examples=50, deadline=None)
@given(order_placed())
def test_v2_record_read_by_v1_reader_drops_the_new_fields(event):
    data = V2_READER.encode_record("order_placed", v2_record(event), version=2)
    assert data[:10] == V2_READER.registry.get("order_placed", 2).header
    writer, reader, record = V1_READER_KNOWING_V2.decode_record(data)
    assert (writer.version, reader.version) == (2, 1)
    assert "channel" not in record
    assert all("sku" not in line for line in record["lines"])
    assert V1_READER_KNOWING_V2.decode(data) == event
    # The v2 reader sees the new fields.
    _, _, full = V2_READER.decode_record(data)
    assert full["channel"] == "app" and {line["sku"] for line in full["lines"]} <= {"sku-1"}


def test_a_reader_that_never_saw_v2_reports_unknown_fingerprint():
    from schemas.examples import EXAMPLES

    event = next(e for e in EXAMPLES if e.TYPE == "order_placed")
    data = V2_READER.encode_record("order_placed", v2_record(event), version=2)
    with pytest.raises(DecodeError) as info:
        V1_ONLY.decode(data)
    assert info.value.reason == "unknown_fingerprint"


def test_encoding_with_v2_writes_null_for_new_optional_fields_the_event_lacks():
    from schemas.examples import EXAMPLES

    event = next(e for e in EXAMPLES if e.TYPE == "order_placed")
    data = V2_READER.encode(event)
    assert data[:10] == V2_READER.registry.get("order_placed", 2).header
    _, _, record = V2_READER.decode_record(data)
    assert record["channel"] is None
    assert all(line["sku"] is None for line in record["lines"])
    assert V1_READER_KNOWING_V2.decode(data) == event == V2_READER.decode(data)


def test_encoding_refuses_fields_the_schema_does_not_have():
    from schemas.codec import EncodeError
    from schemas.examples import EXAMPLES

    event = next(e for e in EXAMPLES if e.TYPE == "order_placed")
    with pytest.raises(EncodeError, match="channel"):
        V1_ONLY.encode_record("order_placed", v2_record(event))


def test_incompatible_writer_is_refused_when_the_registry_is_built():
    bad = FIXTURES / "incompatible" / "order_placed.v2.avsc"
    with pytest.raises(RegistryError, match="channel"):
        Registry.from_files([*production_schema_files(), bad])


def test_registry_refuses_misnamed_files_and_duplicate_versions(tmp_path):
    wrong = tmp_path / "order_placed.avsc"
    wrong.write_text(V2.read_text())
    with pytest.raises(RegistryError):
        Registry.from_files([wrong])
    renamed = tmp_path / "order_completed.v2.avsc"
    renamed.write_text(V2.read_text())  # record name OrderPlaced under another type
    with pytest.raises(RegistryError, match="OrderCompleted"):
        Registry.from_files([renamed])
    copy = tmp_path / "order_placed.v3.avsc"
    copy.write_text(V2.read_text())  # same schema, so same fingerprint, as v2
    with pytest.raises(RegistryError, match="fingerprint"):
        Registry.default(extra_files=(V2, copy))


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True),
        ("long", "int", False),
        ("string", ["null", "string"], True),
        (["null", "string"], "string", False),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, True),
        (
            {"type": "record", "name": "R", "fields": []},
            {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]},
            False,
        ),
        (
            {"type": "record", "name": "R", "fields": []},
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": "a", "type": ["null", "int"], "default": None}],
            },
            True,
        ),
        (
            {"type": "record", "name": "R", "fields": []},
            {"type": "record", "name": "S", "fields": []},
            False,
        ),
    ],
    ids=lambda v: json.dumps(v)[:30],
)
def test_check_resolvable(writer, reader, ok):
    assert (check_resolvable(writer, reader) is None) == ok
