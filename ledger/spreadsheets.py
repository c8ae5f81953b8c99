"""CSV and XLSX of a table that finance reads, written as its rows come.

Rows arrive from an iterator (the read side's keyset pages, ledger/read/downloads.py) and
leave as soon as they are written: CSV in chunks of bytes, XLSX through openpyxl's
write-only workbook (each row goes to a temporary file on disk, zipped at the end). So a
million rows never sit in memory.

Spreadsheet formulas (CSV injection, OWASP): a cell whose text starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return would be a formula to Excel or LibreOffice when it
comes from an id or a reason someone chose. In the CSV such text is prefixed with a single
quote (OWASP's advice), and so is text that already starts with one, so the prefix is
always removed exactly once (``csv_text``/``from_csv_text``). In the XLSX every text is a
string cell, never a formula; integers beyond what a spreadsheet's float holds exactly
(±2⁵³) are written as text too, so no amount is ever rounded.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
CHUNK_ROWS = 500  # CSV rows per chunk of bytes sent
READ_BYTES = 64 * 1024  # XLSX bytes per chunk sent
XLSX_MAX_TEXT = 32_767  # the most characters a spreadsheet cell holds
EXACT_INT = 2**53  # a spreadsheet number is a double: exact below this

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_text(value: str) -> str:
    """``value`` as a CSV cell that no spreadsheet reads as a formula."""
    return QUOTE + value if value.startswith((*FORMULA_STARTS, QUOTE)) else value


def from_csv_text(cell: str) -> str:
    """The text that ``csv_text`` made ``cell`` from."""
    return cell[1:] if cell.startswith(QUOTE) else cell


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return int(value)
    return csv_text(str(value))


def write_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """UTF-8 CSV (with a byte-order mark, so Excel reads Chinese ids right), a header row,
    then the rows, yielded ``CHUNK_ROWS`` at a time."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    out.writerow([csv_text(c) for c in columns])
    pending, chunk_rows = 0, CHUNK_ROWS  # read here: a test may set it
    for row in rows:
        out.writerow([_csv_cell(v) for v in row])
        pending += 1
        if pending >= chunk_rows:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode("utf-8")


def xlsx_text(value: str) -> str:
    """``value`` as cell text: characters XML cannot carry written as ``\\xNN``, cut to
    what a cell holds (said in the cell: the CSV has it whole)."""
    text: str = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    if len(text) > XLSX_MAX_TEXT:
        note = f"… [cut: {len(text)} characters; the CSV download has them all]"
        text = text[: XLSX_MAX_TEXT - len(note)] + note
    return text


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool | int) and -EXACT_INT < int(value) < EXACT_INT:
        return int(value)
    cell = WriteOnlyCell(sheet, value=None)
    cell.value = xlsx_text(str(value))
    cell.data_type = "s"  # text, whatever it starts with: never a formula
    return cell


def write_xlsx(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Iterator[bytes]:
    """An XLSX workbook of one sheet: the header row, then the rows. Rows are written to
    openpyxl's temporary file as they come; the finished file is sent in chunks and
    deleted."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append([_xlsx_cell(sheet, c) for c in columns])
    for row in rows:
        sheet.append([_xlsx_cell(sheet, v) for v in row])
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        book.save(path)
        with open(path, "rb") as saved:
            while chunk := saved.read(READ_BYTES):
                yield chunk
    finally:
        os.unlink(path)
