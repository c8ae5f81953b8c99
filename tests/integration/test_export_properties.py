"""Property tests over mutated export bytes: whatever the file holds,
``ledger replay`` either gives one ``Error:`` line (or DIFFERS lines) with exit 1 and
leaves no database behind, or exits 0 with a ledger equal to the source's: never a
traceback, never a partial ledger.

Three depths of mutation: raw bytes of the file (mostly stopped by the framing and the
inflater), bytes of the inflated records re-deflated with correct framing (stopped by the
decoder and the seal), and record fields changed then resealed as a forger would (only
the replay's comparison can stop those)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.cli import main
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store.opening import open_store
from ledger.store.verify import verify
from tests.support.exports import forge
from tests.support.exports_raw import put_together, take_apart

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A small export (about 60 records, one block) and the source's verify report."""
    root = tmp_path_factory.mktemp("props")
    store = open_store(f"sqlite:///{root / 'source.sqlite'}")
    events = generate(11, orders=4, sharers=4, buyers=6).all()
    LedgerService(store).ingest([Received(e, f"f:{n}", f"c{n % 2}") for n, e in enumerate(events)])
    report = verify(store)
    store.dispose()
    out = root / "export.avro"
    assert (
        CliRunner().invoke(
            main, ["export", "--db", f"sqlite:///{root / 'source.sqlite'}", str(out)]
        )
    ).exit_code == 0
    return out, report


def _outcome(data: bytes, expected: Any) -> None:
    with tempfile.TemporaryDirectory() as work:
        path, target = Path(work) / "x.avro", Path(work) / "t.sqlite"
        path.write_bytes(data)
        result = CliRunner().invoke(main, ["replay", str(path), "--db", f"sqlite:///{target}"])
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        assert "Traceback" not in result.output and "Aborted" not in result.output
        if result.exit_code == 0:
            store = open_store(f"sqlite:///{target}")
            got = verify(store)
            store.dispose()
            assert got.ok and got.head == expected.head
            assert got.event_chains == expected.event_chains
            return
        assert result.exit_code == 1, result.output
        assert not target.exists(), result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        differs = [line for line in result.stderr.splitlines() if line.startswith("DIFFERS: ")]
        assert len(errors) == 1 or differs, result.output


mutation = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
    st.floats(0, 1, exclude_max=True),
    st.integers(0, 255),
)


def _mutate(data: bytes, mutations: list[tuple[str, float, int]]) -> bytes:
    out = bytearray(data)
    for op, where, value in mutations:
        if not out:
            break
        i = int(where * len(out))
        if op == "flip":
            out[i] ^= 1 << (value % 8)
        elif op == "set":
            out[i] = value
        elif op == "insert":
            out[i:i] = bytes([value])
        elif op == "delete":
            del out[i]
        else:
            del out[i:]
    return bytes(out)


@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_file_bytes(source: tuple[Path, Any], mutations: list) -> None:  # type: ignore[type-arg]
    path, expected = source
    _outcome(_mutate(path.read_bytes(), mutations), expected)


@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_record_bytes(source: tuple[Path, Any], mutations: list) -> None:  # type: ignore[type-arg]
    path, expected = source
    raw = take_apart(path)
    n = len(raw.blocks) - 1
    count, data = raw.blocks[n]
    raw.blocks[n] = (count, _mutate(data, mutations))
    _outcome(put_together(raw), expected)


values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=30),
    st.sampled_from(["", "{}", "applied", "rejected", "dead_letter", "event", "c0", "c1"]),
)
FIELDS = [
    "arrival",
    "event_id",
    "event_type",
    "occurred_at",
    "recorded_at",
    "source",
    "outcome",
    "chain",
    "chain_seq",
    "hash",
    "reason",
    "message",
    "payload",
]


@FUZZ
@given(
    index=st.floats(0, 1, exclude_max=True),
    field=st.sampled_from(FIELDS),
    value=values,
    drop=st.booleans(),
)
def test_resealed_record_edits(
    source: tuple[Path, Any], index: float, field: str, value: object, drop: bool
) -> None:
    """A forger's edit, the seal recomputed: refused by the replay's comparison, or (when
    the edit changes nothing the ledger holds, e.g. ``arrival``) a ledger equal to the
    source's."""
    path, expected = source
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "f.avro"

        def edit(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            n = int(index * len(records))
            if drop:
                return records[:n] + records[n + 1 :]
            return [*records[:n], {**records[n], field: value}, *records[n + 1 :]]

        try:
            forge(path, out, edit)
        except (TypeError, ValueError, OverflowError):
            return  # the value does not fit the record schema: no such file can exist
        _outcome(out.read_bytes(), expected)


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    index=st.floats(0, 1, exclude_max=True),
    field=st.sampled_from(FIELDS),
    value=values,
)
def test_resealed_edits_never_leave_a_partial_postgresql_ledger(
    source: tuple[Path, Any], fresh_pg_url: str, index: float, field: str, value: object
) -> None:
    """The same on PostgreSQL, batch by batch (--batch-size 3): a refused replay leaves no
    row in any table of the target, which therefore takes the next attempt."""
    from sqlalchemy import delete, func, select

    from ledger.store import tables as t
    from tests.support.tamper import triggers_lifted

    path, _ = source
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "f.avro"

        def edit(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            n = int(index * len(records))
            return [*records[:n], {**records[n], field: value}, *records[n + 1 :]]

        try:
            forge(path, out, edit)
        except (TypeError, ValueError, OverflowError):
            return
        result = CliRunner().invoke(
            main, ["replay", str(out), "--db", fresh_pg_url, "--batch-size", "3"]
        )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    store = open_store(fresh_pg_url)
    try:
        with store.read() as conn:
            rows = sum(
                conn.execute(select(func.count()).select_from(table)).scalar() or 0
                for table in t.metadata.sorted_tables
            )
        if result.exit_code == 0:  # an edit of a field the ledger does not hold
            assert verify(store).ok
            with triggers_lifted(store) as conn:  # empty again for the next example
                for table in reversed(t.metadata.sorted_tables):
                    conn.execute(delete(table))
            return
        assert rows == 0, result.output
    finally:
        store.dispose()
