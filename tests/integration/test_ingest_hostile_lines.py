"""Random hostile JSON lines never crash `ledger ingest` and never lose a line.

Each example is a stream of lines drawn from: valid events of every type, the same with a
field mutated (huge or negative numbers, floats, booleans, wrong types, NULs, lone
surrogates, long strings, nesting, a field dropped or added), raw bytes that are not
UTF-8, deep nesting, NaN, duplicate keys, truncated JSON, UTF-16, blank lines, and
repeats of earlier lines. It goes through the CLI on stdin (`ledger ingest -`) and must
end with exit 0, or exit 1 with the one-line reason (every line unreadable, or a UTF-16/32
byte-order mark); every non-blank line is accounted for exactly once:

    applied + rejected + duplicates + parked + undecodable − released = lines read

(an event parked and released in the same run is counted when parked and again, as
applied or rejected, when released). ``verify`` passes after every example.
"""

from __future__ import annotations

import codecs
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.cli import main
from ledger.files import binary_kind
from ledger.jsonform import event_to_json
from ledger.store.opening import open_store
from ledger.store.verify import verify
from tests.support.strategies import events

SUMMARY = re.compile(
    r"(\d+) events: (\d+) applied, (\d+) rejected, (\d+) parked, (\d+) released from waiting, "
    r"(\d+) duplicates, (\d+) unreadable lines"
)
FOREIGN_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)

HOSTILE_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, -(2**63) - 1, 10**15 + 1, 10**400, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\ud800",
            "x" * 300,
            "",
            " ",
            "2026-03-01T08:00:00.000Z\x00junk",
            "1969-12-31T23:59:59.999Z",
            "0000-01-01T00:00:00Z",
            "CNY",
            "cny",
        ]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.integers(1, 200).map(lambda depth: json.loads("[" * depth + "]" * depth)),
)

RAW_LINES = st.one_of(
    st.binary(max_size=60),
    st.sampled_from(
        [
            b"[" * 100_000,
            b'{"a": NaN}',
            b'{"type": "order_placed", "type": "click_recorded"}',
            b'{"type": "order_placed"',
            b"\x00" * 8,
            b"null",
            b"[]",
            b'"text"',
            b"1e999999",
            b'{"type": "sharer_enrolled"}',
            b"\xef\xbb\xbf{}",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
        ]
    ),
)


@st.composite
def mutated(draw: Any) -> bytes:
    obj = event_to_json(draw(events()))
    key = draw(st.sampled_from([*obj, "unknown_field", "lines", "occurred_at", "amount"]))
    action = draw(st.sampled_from(["set", "set", "drop", "nest"]))
    if action == "drop":
        obj.pop(key, None)
    elif action == "nest" and isinstance(obj.get("lines"), list) and obj["lines"]:
        line = dict(obj["lines"][0])
        line[draw(st.sampled_from([*line, "extra"]))] = draw(HOSTILE_VALUES)
        obj["lines"] = [line, *obj["lines"][1:]]
    else:
        obj[key] = draw(HOSTILE_VALUES)
    return _dumps(draw, obj)


def _dumps(draw: Any, obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8 bytes


@st.composite
def valid(draw: Any) -> bytes:
    return _dumps(draw, event_to_json(draw(events())))


@st.composite
def streams(draw: Any) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(
            st.sampled_from(
                ["valid", "valid", "mutated", "mutated", "raw", "repeat", "blank", "utf16"]
            )
        )
        if kind == "repeat" and lines:
            lines.append(draw(st.sampled_from(lines)))
        elif kind == "blank":
            lines.append(draw(st.sampled_from([b"", b"  ", b"\r", b"\t"])))
        elif kind == "raw":
            lines.append(draw(RAW_LINES))
        elif kind == "utf16":
            lines.append(json.dumps(event_to_json(draw(events()))).encode("utf-16-le"))
        elif kind == "mutated":
            lines.append(draw(mutated()))
        else:
            lines.append(draw(valid()))
    return b"\n".join(lines) + draw(st.sampled_from([b"\n", b""]))


def non_blank_lines(data: bytes) -> int:
    """Lines as ``readline`` cuts them (at 0A only), the first without a UTF-8 BOM."""
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    if lines:
        lines[0] = lines[0].removeprefix(codecs.BOM_UTF8)
    return sum(1 for line in lines if line.strip())


def check_one_run(db: str, data: bytes, batch_size: int) -> None:
    result = CliRunner().invoke(
        main, ["ingest", "-", "--db", db, "--batch-size", str(batch_size)], input=data
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    assert "Traceback" not in result.output
    if data.startswith(FOREIGN_BOMS):
        assert result.exit_code == 1 and "byte-order mark" in result.stderr, result.output
        return
    if binary_kind(data) is not None:  # e.g. a raw line b"SQLite format 3\x00" first
        assert result.exit_code == 1 and "nothing ingested" in result.stderr, result.output
        return
    lines = non_blank_lines(data)
    found = SUMMARY.search(result.stdout)
    assert found, result.output
    received, applied, rejected, parked, released, duplicates, undecodable = map(
        int, found.groups()
    )
    assert received == lines
    assert applied + rejected + duplicates + parked + undecodable - released == lines
    if result.exit_code:
        assert result.exit_code == 1 and f"none of the {lines} lines" in result.stderr
    store = open_store(db)
    try:
        assert verify(store).ok
    finally:
        store.dispose()


FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@FUZZ
@given(data=streams(), batch_size=st.sampled_from([1, 3, 1000]))
def test_hostile_lines_on_sqlite(data: bytes, batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        check_one_run(f"sqlite:///{Path(folder) / 'l.sqlite'}", data, batch_size)


@settings(FUZZ, max_examples=15)
@given(data=streams(), batch_size=st.sampled_from([1, 1000]))
def test_hostile_lines_on_postgres(fresh_pg_url: str, data: bytes, batch_size: int) -> None:
    """One database for all examples: later ones also meet earlier ones' ids and lines."""
    check_one_run(fresh_pg_url, data, batch_size)


def test_a_line_squatting_a_command_id_is_refused_and_the_command_applies(tmp_path) -> None:
    """As over Kafka (consumers/decode.py): a click under finance's id
    ``payout-requested:po-9`` is a ``reserved_event_id`` dead letter, never logged, so the
    payout po-9 that follows under that id is applied, not taken for a duplicate. The file
    and the Kafka path must agree on this (SPEC §4.5)."""
    from ledger.domain.events import ClickRecorded, PayoutRequested, SharerEnrolled
    from ledger.store import tables as t
    from tests.support import reads as queries
    from tests.support.worked_example import plan

    at = plan().occurred_at + 10
    events = [
        plan(),
        SharerEnrolled("e-s1", plan().occurred_at + 1, "t", sharer_id="S1"),
        ClickRecorded(
            "payout-requested:po-9",
            at,
            "t",
            click_id="k9",
            sharer_id="S1",
            buyer_id="b9",
            product_id="p",
        ),
        PayoutRequested(
            "payout-requested:po-9",
            at + 5,
            "t",
            payout_id="po-9",
            sharer_id="S1",
            amount=100,
            currency="CNY",
        ),
    ]
    lines = "".join(json.dumps(event_to_json(e)) + "\n" for e in events)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    result = CliRunner().invoke(main, ["ingest", "-", "--db", url], input=lines)
    assert result.exit_code == 0, result.output
    store = open_store(url)
    from sqlalchemy import select

    with store.read() as conn:
        logged = {
            row.event_id: row.type
            for row in conn.execute(select(t.events.c.event_id, t.events.c.type))
        }
    dead = sorted(
        (d["event_id"], d["event_type"], d["reason"]) for d in queries.dead_letters(store)
    )
    store.dispose()
    assert logged["payout-requested:po-9"] == "payout_requested"
    assert dead == [
        ("payout-requested:po-9", "click_recorded", "reserved_event_id"),
        ("payout-requested:po-9", "payout_requested", "insufficient_available"),
    ]
