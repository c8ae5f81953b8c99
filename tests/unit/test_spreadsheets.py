"""CSV and XLSX writers (ledger/spreadsheets.py): no text ever becomes a formula, the CSV
reads back to exactly what was written, the XLSX holds typed cells (text as text, exact
integers), and neither holds more than a row or two at once, however many are written."""

from __future__ import annotations

import csv
import io
import weakref

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.spreadsheets import (
    EXACT_INT,
    FORMULA_STARTS,
    XLSX_MAX_TEXT,
    csv_text,
    from_csv_text,
    write_csv,
    write_xlsx,
    xlsx_text,
)

HOSTILE = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+2",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1",
    "\r=1",
    "'=already quoted",
    "=cmd|' /C calc'!A0",
    "normal-id",
    "订单-001",
]


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


@given(st.text())
def test_csv_text_never_starts_a_formula_and_reads_back(value: str) -> None:
    cell = csv_text(value)
    assert not cell.startswith(FORMULA_STARTS)
    assert from_csv_text(cell) == value


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.text(), st.integers(-(2**63), 2**63 - 1), st.none() | st.text()),
        max_size=30,
    )
)
def test_the_csv_parses_back_to_the_rows(rows) -> None:
    data = b"".join(write_csv(("id", "amount", "reason"), rows))
    assert data.startswith("\ufeff".encode())  # Excel reads UTF-8 by its mark
    header, *back = _csv_rows(data)
    assert header == ["id", "amount", "reason"]
    assert len(back) == len(rows)
    for (text, amount, reason), (got_text, got_amount, got_reason) in zip(rows, back, strict=True):
        assert from_csv_text(got_text) == text
        assert int(got_amount) == amount
        assert from_csv_text(got_reason) == (reason or "")  # None: an empty cell
        for cell in (got_text, got_reason):
            assert not cell.startswith(FORMULA_STARTS)


def test_hostile_text_in_the_csv_is_quoted() -> None:
    data = b"".join(write_csv(("text",), [(h,) for h in HOSTILE]))
    back = [row[0] for row in _csv_rows(data)[1:]]
    assert back == [csv_text(h) for h in HOSTILE]
    assert [from_csv_text(b) for b in back] == HOSTILE
    assert all(b.startswith("'") for b, h in zip(back, HOSTILE, strict=True) if h[0] in "=+-@\t\r'")


def _xlsx(rows, columns=("id", "amount")) -> openpyxl.Workbook:
    data = b"".join(write_xlsx("sheet", columns, rows))
    return openpyxl.load_workbook(io.BytesIO(data))


def test_xlsx_text_is_text_never_a_formula() -> None:
    book = _xlsx([(h, -5) for h in HOSTILE])
    sheet = book.active
    cells = list(sheet.iter_rows(min_row=2))
    assert len(cells) == len(HOSTILE)
    for (text, amount), hostile in zip(cells, HOSTILE, strict=True):
        # XML reads a carriage return as a line feed (end-of-line normalisation)
        assert text.data_type == "s" and text.value == hostile.replace("\r", "\n")
        assert amount.data_type == "n" and amount.value == -5
    assert not [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]


def test_xlsx_keeps_big_integers_exact_and_cuts_text_to_a_cell() -> None:
    big = 2**62 - 1
    book = _xlsx([("a", big), ("b", EXACT_INT - 1), ("\x01x", None), ("y" * 40_000, 1)])
    rows = list(book.active.iter_rows(min_row=2, values_only=True))
    assert rows[0] == ("a", str(big))  # beyond a double: written as text, exactly
    assert rows[1] == ("b", EXACT_INT - 1)
    assert rows[2] == ("\\x01x", None)  # what XML cannot carry, spelled out
    assert len(rows[3][0]) == XLSX_MAX_TEXT and "the CSV download has them all" in rows[3][0]
    assert xlsx_text("plain") == "plain"


class _Row(list):
    """A row that can be counted while alive (a list subclass takes weak references)."""

    __hash__ = object.__hash__  # by identity, for the WeakSet


def _rows(n: int, alive: weakref.WeakSet, peak: list[int]):
    for i in range(n):
        row = _Row((f"id-{i}", i))
        alive.add(row)
        peak[0] = max(peak[0], len(alive))
        yield row
        del row


@pytest.mark.parametrize("writer", ["csv", "xlsx"])
@pytest.mark.parametrize("n", [50, 5_000])
def test_a_writer_holds_one_row_at_a_time_whatever_the_count(writer, n) -> None:
    """The bound that makes a million-row download fit: at most two rows alive at once
    (the one written and the one being made), for 50 rows as for 5,000."""
    alive: weakref.WeakSet = weakref.WeakSet()
    peak = [0]
    rows = _rows(n, alive, peak)
    chunks = write_csv(("id", "n"), rows) if writer == "csv" else write_xlsx("s", ("id", "n"), rows)
    size = sum(len(chunk) for chunk in chunks)
    assert size > n  # it wrote them all
    assert peak[0] <= 2
