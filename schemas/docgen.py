"""Golden test vectors and docs/events.md, generated from the schemas and the examples.

    python -m schemas.docgen vectors   # write missing schemas/vectors/<type>.v<n>.{json,hex}
    python -m schemas.docgen docs      # rewrite docs/events.md from schemas + vectors

Vectors are written once and then frozen: the test suite checks that the codec still
reproduces them byte for byte, so they must never be regenerated to make a test pass
(``--force`` exists for a deliberate, reviewed change). docs/events.md is fully generated;
a test checks it is up to date, so its examples cannot drift from the vectors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ledger.domain.events import (
    ClickRecorded,
    Event,
    MinPayout,
    OrderCompleted,
    OrderLine,
    OrderPlaced,
    PayoutFailed,
    PayoutRequested,
    PayoutSettled,
    PlanPublished,
    RefundIssued,
    RefundLine,
    SettlementRun,
    SharerEnrolled,
)
from schemas.registry import Registry, SchemaInfo

VECTORS_DIR = Path(__file__).parent / "vectors"
DOCS_PATH = Path(__file__).parent.parent / "docs" / "events.md"
T0 = 1_772_352_000_000  # 2026-03-01T08:00:00.000Z
HOUR = 3_600_000
DAY = 86_400_000

# One example per event type: the public worked example of SPEC §3 where it applies.
EXAMPLES: list[Event] = [
    PlanPublished(
        event_id="ev-plan-2026-03",
        occurred_at=T0 - DAY,
        producer="finance",
        plan_id="plan-2026-03",
        effective_from=T0 - HOUR,
        default_rate_bps=1000,
        platform_fee_bps=800,
        level_shares_bps=(5000, 3000, 2000),
        frozen_days=7,
        attribution_window_days=15,
        self_purchase_allowed=False,
        min_payouts=(MinPayout("CNY", 1000), MinPayout("USD", 500)),
    ),
    SharerEnrolled(
        event_id="ev-enroll-alice",
        occurred_at=T0 - 2 * DAY,
        producer="user-service",
        sharer_id="u-alice",
        upline_id="u-bob",
    ),
    ClickRecorded(
        event_id="ev-click-1",
        occurred_at=T0 - 30 * 60_000,
        producer="click-tracker",
        click_id="c-1",
        sharer_id="u-alice",
        buyer_id="u-carol",
        product_id="p-tea",
    ),
    OrderPlaced(
        event_id="ev-order-1",
        occurred_at=T0,
        producer="shop",
        order_id="o-1",
        buyer_id="u-carol",
        merchant_id="m-teahouse",
        currency="CNY",
        lines=(
            OrderLine("l-1", "p-tea", 2, 8800, 2500),
            OrderLine("l-2", "p-cup", 1, 1200, None),
        ),
        click_id="c-1",
    ),
    OrderCompleted(
        event_id="ev-complete-1",
        occurred_at=T0 + 3 * DAY,
        producer="shop",
        order_id="o-1",
        buyer_id="u-carol",
    ),
    RefundIssued(
        event_id="ev-refund-1",
        occurred_at=T0 + 4 * DAY,
        producer="refund-service",
        refund_id="r-1",
        order_id="o-1",
        buyer_id="u-carol",
        lines=(RefundLine("l-1", 4400),),
    ),
    SettlementRun(
        event_id="ev-settle-2026-03-15",
        occurred_at=T0 + 14 * DAY + HOUR,
        producer="finance",
        run_id="run-2026-03-15",
        as_of=T0 + 14 * DAY,
    ),
    PayoutRequested(
        event_id="ev-payout-1-req",
        occurred_at=T0 + 15 * DAY,
        producer="finance",
        payout_id="po-1",
        sharer_id="u-alice",
        amount=1000,
        currency="CNY",
    ),
    PayoutSettled(
        event_id="ev-payout-1-ok",
        occurred_at=T0 + 16 * DAY,
        producer="finance",
        payout_id="po-1",
        sharer_id="u-alice",
        amount=1000,
        currency="CNY",
    ),
    PayoutFailed(
        event_id="ev-payout-2-failed",
        occurred_at=T0 + 16 * DAY + HOUR,
        producer="finance",
        payout_id="po-2",
        sharer_id="u-bob",
        amount=None,
        currency=None,
        reason="收款账户已冻结 (account frozen)",
    ),
]


def vector_paths(event_type: str, version: int) -> tuple[Path, Path]:
    stem = f"{event_type}.v{version}"
    return VECTORS_DIR / f"{stem}.json", VECTORS_DIR / f"{stem}.hex"


def json_text(obj: dict[str, Any]) -> str:
    """The vector/docs rendering of a JSON form: 2-space indent, schema field order."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def write_vectors(force: bool = False) -> list[Path]:
    from ledger.jsonform import event_to_json
    from schemas.codec import encode

    written = []
    registry = Registry.default()
    for event in EXAMPLES:
        info = registry.reader(event.TYPE)
        assert info is not None
        json_path, hex_path = vector_paths(event.TYPE, info.version)
        if json_path.exists() and not force:
            continue
        json_path.write_text(json_text(event_to_json(event)), encoding="utf-8")
        hex_path.write_text(encode(event).hex() + "\n", encoding="ascii")
        written += [json_path, hex_path]
    return written


def _type_text(t: Any) -> str:
    if isinstance(t, list):
        return " or ".join(_type_text(b) for b in t)
    if isinstance(t, dict):
        if t.get("logicalType") == "timestamp-millis":
            return "time (timestamp-millis)"
        if t["type"] == "array":
            return f"array of {_type_text(t['items'])}"
        if t["type"] == "record":
            return str(t["name"])
        return _type_text(t["type"])
    return str(t)


def _fields_table(schema: dict[str, Any]) -> list[str]:
    rows = ["| field | type | required | meaning |", "|---|---|---|---|"]
    nested = []
    for f in schema["fields"]:
        t = f["type"]
        optional = isinstance(t, list) and "null" in t
        rows.append(
            f"| `{f['name']}` | {_type_text(t)} | {'no (null)' if optional else 'yes'} "
            f"| {f.get('doc', '')} |"
        )
        items = t.get("items") if isinstance(t, dict) else None
        if isinstance(items, dict) and items.get("type") == "record":
            nested.append(items)
    for record in nested:
        rows += ["", f"`{record['name']}`: {record.get('doc', '')}", ""]
        rows += _fields_table(record)
    return rows


def _section(info: SchemaInfo) -> list[str]:
    json_path, hex_path = vector_paths(info.event_type, info.version)
    example = json_path.read_text(encoding="utf-8")
    hex_text = hex_path.read_text(encoding="ascii").strip()
    return [
        f"## `{info.event_type}` — {info.schema['name']} v{info.version}",
        "",
        info.schema.get("doc", ""),
        "",
        (
            f"Schema file `schemas/{info.event_type}.v{info.version}.avsc`; fingerprint "
            f"(CRC-64-AVRO, as an unsigned 64-bit integer) `{info.fingerprint:#018x}`."
        ),
        "",
        *_fields_table(info.schema),
        "",
        f"Example (golden vector `schemas/vectors/{json_path.name}`):",
        "",
        "```json",
        example.rstrip("\n"),
        "```",
        "",
        f"Its single-object encoding (`schemas/vectors/{hex_path.name}`):",
        "",
        "```",
        hex_text,
        "```",
        "",
    ]


_INTRO = """\
# Events

<!-- Generated by `python -m schemas.docgen docs` from schemas/*.avsc and schemas/vectors/.
     Do not edit by hand: tests/unit/test_codec_vectors.py checks this file is current. -->

Every input of the ledger is an immutable event. The field names below are the contract
shared by the Avro schemas (`schemas/*.avsc`), the JSON form and the engine
(`ledger/domain/events.py`).

## Common rules

- Every event has `event_id` (globally unique; the idempotency key: the same id delivered
  twice has effect once, whatever its content), `occurred_at` (event time) and `producer`
  (the publishing service's name).
- **Ids and text**: every id, the `producer` and a payout failure's `reason` are 1 to 200
  characters without control characters (no NUL, no newline, no lone surrogate); anything
  else is dead-lettered `invalid_value`.
- **Times** are milliseconds since the Unix epoch, UTC (Avro `long` with logical type
  `timestamp-millis`). A day is always 86,400,000 ms. Supported range: years 0001..9999,
  the same in the JSON form, the codec and the rules: times before 1970 (negative
  milliseconds) are valid.
- **Money** is an integer number of minor units (fen, cents) plus an ISO 4217 currency code.
  Floats never carry money, rates or counts: the schemas have no float types and the JSON
  form rejects any float where an integer is required.
- **Bounds** (SPEC §3): a line amount, an order's total, a refund's total and a payout
  amount are at most 10^15 minor units, and an order or a refund has at most 10,000 lines
  (`invalid_value`); an event that would take any account's balance beyond ±2^62 is
  rejected (`balance_out_of_range`). Every stored figure so fits a signed 64-bit integer.
- **Rates and shares** are integer basis points (1 bps = 0.01 %).
- A field typed "X or null" is optional: it may be null or (in JSON) absent; its Avro
  type is the union `["null", X]` with default null. Every other field is required.

## Wire format: Avro single-object encoding

A Kafka record value is the Avro [single-object encoding] of one event: the two bytes
`C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing
Canonical Form, then the Avro binary encoding of the record. The fingerprint tells the
consumer which schema (event type and version) wrote the record. Each schema file is
self-contained (nested records such as `OrderLine` are defined inline), so every Avro
implementation computes the same canonical form. The codec is `schemas/codec.py`:
`encode(event) -> bytes`, `decode(data) -> Event`. `decode` raises
`DecodeError(reason, message)` and nothing else, with `reason` one of:

| reason | meaning |
|---|---|
| `bad_marker` | the bytes do not start with `C3 01` |
| `truncated` | the header or the payload ends early |
| `unknown_fingerprint` | no known schema has the fingerprint in the header |
| `malformed_payload` | the payload is not a valid record of the writer schema (bad varint, bad UTF-8, bad union index, trailing bytes) |
| `invalid_value` | a well-formed record that is not a valid event (a time outside years 0001..9999) |

The record key is the event's ordering key (UTF-8); see docs/topics.md.

[single-object encoding]: https://avro.apache.org/docs/1.12.0/specification/#single-object-encoding

Known leniency: fastavro 1.13 reads a *negative* union index (an invalid varint value) as
counting from the end of the union, so such corrupted bytes decode as null or the value
branch instead of failing; every other corruption is reported.

## Golden vectors

`schemas/vectors/<type>.v<n>.json` is an example of each event in the JSON form and
`<type>.v<n>.hex` its exact single-object encoding. They are frozen: the test suite checks
that the codec reproduces every one byte for byte and decodes it back, and
`schemas/vectors/java_check.py` (also run by the suite) checks that Apache Avro for Java
1.12.2 computes the same fingerprints, decodes the bytes with `BinaryMessageDecoder` and
a `SchemaStore.Cache` to the same records, and re-encodes them to the same bytes. A
publisher written in another language proves compatibility by producing the same bytes
from the same JSON example. The examples below are those vectors.

## Schema evolution

A new version of an event type is a new file `<type>.v<n+1>.avsc`. Consumers read every
event with the newest schema of its type they know (the reader schema) and resolve the
writer schema to it by Avro's rules, so a new version may add fields **with defaults**
(`["null", T]` with default null), and may drop optional fields; it may not add a required
field, change a field's type (beyond Avro's promotions) or rename a record. The registry
(`schemas/registry.py`) refuses, when it is built, any writer schema its type's reader
cannot resolve. The golden vectors of a published version never change.

## JSON form

Every event also has a JSON form (`ledger/jsonform.py`), used by `ledger produce FILE.jsonl`
(one event per line) and in the API: an object with the same field names plus
`"type"` (the event type, e.g. `"order_placed"`) and `"schema_version"` (optional on input;
the latest known version when absent). Times are ISO-8601 UTC strings with milliseconds,
`"2026-03-01T08:00:00.000Z"`; on input any ISO-8601 time with an explicit offset
(`+08:00`) or integer milliseconds are accepted, but not times without an offset, more
precise than a millisecond, or holding anything but printable ASCII (a NUL, as in
`"…Z\\u0000junk"`). Optional fields may be omitted or null. Unknown fields, duplicate
keys and NaN/Infinity are refused. JSON text is UTF-8: bytes that are not UTF-8 are
refused, never guessed to be UTF-16 or UTF-32 (`ledger ingest` refuses a file that starts
with a UTF-16 or UTF-32 byte-order mark before reading any event; a UTF-8 byte-order mark
on the first line is allowed, and a line longer than 4 MiB is dead-lettered
`line_too_long`). `canonical_json(event)` is the deterministic
text (sorted keys, no whitespace, UTF-8 not escaped).

Invalid input raises `InvalidEvent(reason, message)`:

| reason | meaning |
|---|---|
| `malformed_json` | not UTF-8, not JSON, not an object, a duplicate key, NaN or Infinity |
| `unknown_event_type` | `type` is not a known event type (or not a string) |
| `invalid_field` | a required field is missing, a field is unknown, or a value has the wrong JSON type (a float or boolean where an integer is required, a string amount, an object where a list is required) |
| `invalid_value` | the right JSON type but not a usable value: an integer out of range of its Avro type (int: 32 bits, long: 64 bits), an unparseable time, a time without offset or finer than 1 ms or outside years 0001..9999 or with characters other than printable ASCII, a string that is not valid Unicode (a lone surrogate), an unknown `schema_version` |

The JSON form and the codec validate with the same checker (`schemas/validate.py`,
compiled from the Avro schema), so an event accepted as JSON can always be encoded, and
`EncodeError` carries the same messages. Value rules of the business (amounts > 0,
shares summing to ≤ 10000, known references) are the engine's: a well-formed event that
breaks them is dead-lettered with a reason.

"""


def render_docs(registry: Registry | None = None) -> str:
    """The full text of docs/events.md."""
    registry = registry if registry is not None else Registry.default()
    lines = [_INTRO.rstrip("\n"), ""]
    order = [e.TYPE for e in EXAMPLES]
    for event_type in order:
        info = registry.reader(event_type)
        assert info is not None
        lines += _section(info)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["vectors"]:
        for path in write_vectors(force="--force" in argv):
            print(f"wrote {path}")
        return 0
    if argv[:1] == ["docs"]:
        DOCS_PATH.write_text(render_docs(), encoding="utf-8")
        print(f"wrote {DOCS_PATH}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
