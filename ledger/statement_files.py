"""A sharer's statement as files a finance team sends: CSV (one row per line, the opening
and closing balances first; amounts in integer minor units with the currency's exponent,
for machines) and PDF (a summary per bucket, then the lines; amounts as people read them,
ledger/read/money.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

from ledger.domain.entries import SHARER_BUCKETS
from ledger.read.models import Statement
from ledger.read.money import format_money

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet would evaluate
FONTS = Path("/usr/share/fonts/truetype/dejavu")  # Unicode text when present (Debian)
LINE_FIELDS = (
    "date",
    "bucket",
    "amount",
    "kind",
    "rule",
    "order_id",
    "level",
    "plan_id",
    "payout_id",
    "event_id",
    "chain",
    "chain_seq",
    "hash",
)


def day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def cell(value: object) -> str:
    """A CSV cell no spreadsheet turns into a formula (text starting with = + - @ is
    quoted with a leading apostrophe; numbers stay numbers)."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(statement: Statement) -> Iterator[str]:
    """The statement as CSV text, a row at a time."""
    out = io.StringIO()
    writer = csv.writer(out)

    def row(*values: object) -> str:
        out.seek(0)
        out.truncate()
        writer.writerow([cell(v) for v in values])
        return out.getvalue()

    yield row("sharer_id", statement.sharer_id)
    yield row("currency", statement.currency)
    yield row("currency_exponent", statement.currency_exponent)
    yield row("period", day(statement.start), day(statement.end))
    yield row("", *SHARER_BUCKETS)
    yield row("opening", *(statement.opening[b] for b in SHARER_BUCKETS))
    yield row("closing", *(statement.closing[b] for b in SHARER_BUCKETS))
    yield row(*LINE_FIELDS)
    for line in statement.lines:
        yield row(
            day(line.occurred_at),
            line.bucket,
            line.amount,
            line.kind,
            line.rule,
            line.order_id,
            line.level,
            line.plan_id,
            line.payout_id,
            line.event_id,
            line.chain,
            line.chain_seq,
            line.hash,
        )


def to_pdf(statement: Statement, *, ledger_head: str | None = None, locale: str = "en") -> bytes:
    """The statement as a PDF: title, period, a table of opening, movement and closing per
    bucket, then every line (date, what, order and level, bucket, amount, entry)."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    family = _font(pdf)
    pdf.add_page()
    pdf.set_font(family, "B", 16)
    pdf.cell(
        0,
        10,
        "Commission statement",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font(family, "", 10)
    for label, value in (
        ("Sharer", statement.sharer_id),
        ("Currency", statement.currency),
        ("Period", f"{day(statement.start)} to {day(statement.end)} UTC (end excluded)"),
        ("Ledger head", ledger_head or "-"),
    ):
        pdf.cell(0, 6, _text(family, f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    moved = {b: statement.closing[b] - statement.opening[b] for b in SHARER_BUCKETS}

    def money(minor: int) -> str:
        return _text(family, format_money(minor, statement.currency, locale))

    with pdf.table(
        col_widths=(40, 40, 40, 40), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT")
    ) as table:
        table.row(("bucket", "opening", "movement", "closing"))
        for bucket in SHARER_BUCKETS:
            table.row(
                (
                    bucket,
                    money(statement.opening[bucket]),
                    money(moved[bucket]),
                    money(statement.closing[bucket]),
                )
            )
    pdf.ln(4)
    pdf.set_font(family, "", 8)
    align = ("LEFT", "LEFT", "LEFT", "LEFT", "RIGHT", "LEFT", "RIGHT", "LEFT")
    with pdf.table(col_widths=(30, 22, 22, 40, 10, 20, 22, 60), text_align=align) as table:
        table.row(("date (UTC)", "kind", "rule", "order", "level", "bucket", "amount", "entry"))
        for line in statement.lines:
            table.row(
                (
                    day(line.occurred_at),
                    line.kind,
                    line.rule,
                    _text(family, line.order_id or line.payout_id or "-"),
                    str(line.level or ""),
                    line.bucket,
                    money(line.amount),
                    f"{_text(family, line.chain)}#{line.chain_seq} {line.hash[:12]}",
                )
            )
    return bytes(pdf.output())


def _font(pdf: FPDF) -> str:
    """DejaVu Sans (Unicode) when the system has it, else the PDF core font."""
    regular, bold = FONTS / "DejaVuSans.ttf", FONTS / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu"
    return "Helvetica"


def _text(family: str, text: str) -> str:
    """``text`` as the font can draw it: the core font has Latin-1 only."""
    if family != "Helvetica":
        return text
    return text.encode("latin-1", "replace").decode("latin-1")
