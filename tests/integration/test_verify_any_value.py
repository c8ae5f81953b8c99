"""``verify`` is robust to any value of any type in any column: it
reports TAMPERED with the first bad seq, never crashes, and ``--json`` always prints
valid JSON. SQLite with the triggers dropped stores whatever it is given."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ledger.cli import main
from ledger.store import refdata, tables
from ledger.store.opening import open_store
from tests.support.tamper import build_ledger


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    store = open_store(f"sqlite:///{path}")
    build_ledger(store, orders=8)
    store.dispose()
    return path


def _verify_json(path: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, ["verify", "--db", f"sqlite:///{path}", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)  # raises unless valid JSON


def _mutate(path: Path, table: str, column: str, rowid: int, value: object) -> bool:
    """Set one value with every trigger dropped; False when a constraint refuses it."""
    with closing(_connect(path)) as conn, conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f'DROP TRIGGER "{name}"')
        bad_utf8 = isinstance(value, Utf8Junk)
        expression = "CAST(? AS TEXT)" if bad_utf8 else "?"
        try:
            conn.execute(
                f'UPDATE {table} SET "{column}" = {expression} WHERE rowid = ?',
                (value.raw if bad_utf8 else value, rowid),
            )  # type: ignore[union-attr]
        except sqlite3.IntegrityError:
            return False
    return True


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
    return conn


class Utf8Junk:
    """Bytes stored as TEXT that are not UTF-8."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"Utf8Junk({self.raw!r})"


def test_a_non_integer_amount_is_reported_not_a_crash(template: Path, tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    shutil.copy(template, path)
    with closing(_connect(path)) as conn, conn:
        seq = conn.execute("SELECT min(entry_seq) FROM postings WHERE ordinal = 1").fetchone()[0]
    assert _mutate(path, "postings", "amount", _rowid(path, "postings", seq), 1067.5)
    code, report = _verify_json(path)
    assert code == 1 and report["ok"] is False
    assert report["first_bad_seq"] == seq and report["table"] == "entries"
    assert "postings.amount is not an integer: 1067.5" in report["problem"]
    text = CliRunner().invoke(main, ["verify", "--db", f"sqlite:///{path}"])
    assert text.exit_code == 1 and "TAMPERED" in text.output and f"seq: {seq}" in text.output


def test_nulls_in_not_null_columns_are_reported(template: Path, tmp_path: Path) -> None:
    """A NOT NULL constraint can be dropped too (here: the table rebuilt without it)."""
    path = tmp_path / "l.sqlite"
    shutil.copy(template, path)
    with closing(_connect(path)) as conn, conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("CREATE TABLE loose AS SELECT * FROM entries")
        conn.execute("DROP TABLE entries")
        conn.execute("ALTER TABLE loose RENAME TO entries")
        seq = conn.execute("SELECT seq FROM entries ORDER BY seq LIMIT 1 OFFSET 3").fetchone()[0]
        conn.execute("UPDATE entries SET chain_seq = NULL, kind = NULL WHERE seq = ?", (seq,))
    code, report = _verify_json(path)
    assert code == 1 and report["first_bad_seq"] == seq
    assert "is NULL" in report["problem"]


def _rowid(path: Path, table: str, seq: int) -> int:
    column = {"postings": "entry_seq", "entries": "seq", "events": "seq"}[table]
    with closing(_connect(path)) as conn, conn:
        return conn.execute(
            f"SELECT min(rowid) FROM {table} WHERE {column} = ?", (seq,)
        ).fetchone()[0]


VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2**62, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=70),
    st.binary(max_size=10),
    st.builds(Utf8Junk, st.binary(min_size=1, max_size=6).map(lambda b: b"\xff" + b)),
)
# Columns whose changes verify cannot see by design (docs/journal.md): not hashed
# (record times, the arrival number's exact value) or not money (dead-letter and parked
# bookkeeping, consumer offsets). Any value there must still never crash verify.
UNCOVERED = {
    ("entries", "recorded_at"),
    ("events", "recorded_at"),
    ("events", "seq"),
    ("parked", "parked_at"),
}
# the journal, the event log and every kind of reference data but parked events
COVERED_TABLES = (
    "entries",
    "postings",
    "events",
    "chain_heads",
    *(kind.name for kind in refdata.KINDS if kind is not refdata.PARKED),
)
ALL_TABLES = (*COVERED_TABLES, "dead_letters", "parked", "consumer_offsets")


@st.composite
def mutations(draw):  # type: ignore[no-untyped-def]
    table = draw(st.sampled_from(ALL_TABLES))
    column = draw(st.sampled_from([c.name for c in tables.metadata.tables[table].columns]))
    return table, column, draw(st.integers(min_value=0, max_value=50)), draw(VALUES)


def _same(old: object, new: object) -> bool:
    if isinstance(new, Utf8Junk) or type(old) is not type(new):
        return False
    if isinstance(new, float) and math.isnan(new):
        return False
    return old == new


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutation=mutations())
def test_any_value_anywhere_is_reported_never_a_crash(
    template: Path, tmp_path: Path, mutation
) -> None:  # type: ignore[no-untyped-def]
    table, column, pick, value = mutation
    path = tmp_path / "mutated.sqlite"
    for suffix in ("-wal", "-shm"):  # tmp_path is shared by the examples
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copy(template, path)
    with closing(_connect(path)) as conn, conn:
        rowids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table} ORDER BY rowid")]
        assume(rowids)
        rowid = rowids[pick % len(rowids)]
        old = conn.execute(f'SELECT "{column}" FROM {table} WHERE rowid = ?', (rowid,)).fetchone()[
            0
        ]
    assume(_mutate(path, table, column, rowid, value))
    code, report = _verify_json(path)
    assert code == (0 if report["ok"] else 1)
    if table in COVERED_TABLES and (table, column) not in UNCOVERED and not _same(old, value):
        with closing(_connect(path)) as conn, conn:
            stored = conn.execute(
                f'SELECT "{column}" FROM {table} WHERE rowid = ?', (rowid,)
            ).fetchone()[0]
        if stored != old or type(stored) is not type(old):  # SQLite may coerce it back
            assert report["ok"] is False, (table, column, old, value)
