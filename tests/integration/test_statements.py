"""Sharers' monthly statements (对账单): the lines sum to the change in balance, bucket by
bucket, for every sharer, currency and month of a simulated platform; the CSV says the
same; the PDF renders to an image and its text reads back the same figures; a sharer
reads their own, finance anyone's, nobody else's."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import pypdfium2 as pdfium
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ledger.api.app import create_app
from ledger.api.auth import TokenBook, token_item
from ledger.domain.entries import SHARER_BUCKETS, split_sharer_account
from ledger.read import statements
from ledger.read.money import format_money
from ledger.store import tables as t
from tests.support.api import TOKEN_CONFIG, auth, small_ledger

ALICE = "u00002"
TOKEN = "alice-statement-token"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    store = small_ledger(tmp_path_factory.mktemp("statements") / "ledger.sqlite", orders=400)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def client(ledger) -> Iterator[TestClient]:
    config = f"{TOKEN_CONFIG},{token_item('sharer', TOKEN, ALICE)}"
    with TestClient(create_app(ledger, TokenBook.parse(config))) as http:
        yield http


def _months(ledger) -> dict[tuple[str, str], set[str]]:
    """(sharer, currency) -> the months with postings to them."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    p = t.postings
    with ledger.read() as conn:
        for account, currency, at in conn.execute(
            select(p.c.account, p.c.currency, p.c.occurred_at)
        ):
            parsed = split_sharer_account(account)
            if parsed:
                month = datetime.fromtimestamp(at / 1000, tz=UTC).strftime("%Y-%m")
                found[(parsed[0], currency)].add(month)
    return found


def test_the_lines_sum_to_the_change_in_balance_everywhere(ledger) -> None:
    months = _months(ledger)
    assert len(months) > 20
    checked = 0
    with ledger.read() as conn:
        for (sharer, currency), active in months.items():
            closing_before = None
            for month in sorted(active):
                start, end = statements.month(month)
                found = statements.statement(conn, sharer, currency, start, end)
                assert found.lines
                for bucket in SHARER_BUCKETS:
                    moved = sum(line.amount for line in found.lines if line.bucket == bucket)
                    assert found.opening[bucket] + moved == found.closing[bucket], (sharer, month)
                if closing_before is not None and month == sorted(active)[0]:
                    assert found.opening == closing_before
                assert all(start <= line.occurred_at < end for line in found.lines)
                assert all(line.order_id or line.payout_id for line in found.lines)
                checked += 1
    assert checked > 40


def test_consecutive_months_chain(ledger) -> None:
    """Each month opens where the one before closed, quiet months included."""
    months = _months(ledger)
    (sharer, currency), active = max(months.items(), key=lambda kv: len(kv[1]))
    first, last = min(active), max(active)
    month, closing = first, None
    with ledger.read() as conn:
        while month <= last:
            start, end = statements.month(month)
            found = statements.statement(conn, sharer, currency, start, end)
            if closing is not None:
                assert found.opening == closing, month
            closing = found.closing
            year, mon = map(int, month.split("-"))
            month = f"{year + mon // 12}-{mon % 12 + 1:02d}"


def _a_month_of(ledger, sharer: str) -> tuple[str, str]:
    (currency, month) = next(
        (c, min(ms)) for (s, c), ms in sorted(_months(ledger).items()) if s == sharer
    )
    return currency, month


def test_the_csv_says_what_the_json_says(client, ledger) -> None:
    currency, month = _a_month_of(ledger, ALICE)
    path = f"/api/v1/sharers/{ALICE}/statements/{month}"
    as_json = client.get(path, params={"currency": currency}, headers=auth("finance"))
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    as_csv = client.get(path + ".csv", params={"currency": currency}, headers=auth("finance"))
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == ["sharer_id", ALICE] and rows[1] == ["currency", currency]
    assert rows[2] == ["currency_exponent", str(body["currency_exponent"])]
    assert [int(x) for x in rows[5][1:]] == [body["opening"][b] for b in SHARER_BUCKETS]
    assert [int(x) for x in rows[6][1:]] == [body["closing"][b] for b in SHARER_BUCKETS]
    lines = rows[8:]
    assert len(lines) == len(body["lines"])
    assert [int(r[2]) for r in lines] == [line["amount"] for line in body["lines"]]
    assert [r[5] for r in lines] == [line["order_id"] or "" for line in body["lines"]]


def test_the_pdf_renders_and_reads_back_the_figures(client, ledger, tmp_path) -> None:
    currency, month = _a_month_of(ledger, ALICE)
    path = f"/api/v1/me/statements/{month}.pdf"
    mine = {"Authorization": f"Bearer {TOKEN}"}
    answer = client.get(path, params={"currency": currency}, headers=mine)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    body = client.get(
        f"/api/v1/me/statements/{month}", params={"currency": currency}, headers=mine
    ).json()
    doc = pdfium.PdfDocument(answer.content)
    try:
        text = "\n".join(doc[n].get_textpage().get_text_range() for n in range(len(doc)))
        image = doc[0].render(scale=1.5).to_pil()
        image.save(tmp_path / "statement.png")
        assert image.size[0] > 1000 and image.getextrema() != ((255, 255), (255, 255), (255, 255))
    finally:
        doc.close()
    assert "Commission statement" in text and ALICE in text and currency in text
    for bucket in SHARER_BUCKETS:
        opening, closing = body["opening"][bucket], body["closing"][bucket]
        shown = [format_money(x, currency) for x in (opening, closing - opening, closing)]
        assert f"{bucket} {' '.join(shown)}" in " ".join(text.split())
    for line in body["lines"]:
        assert format_money(line["amount"], currency) in text
    for line in body["lines"]:
        assert f"{line['chain']}#{line['chain_seq']} {line['hash'][:12]}" in text


def test_a_sharer_reads_only_their_own_statement(client, ledger) -> None:
    currency, month = _a_month_of(ledger, ALICE)
    mine = {"Authorization": f"Bearer {TOKEN}"}
    own = client.get(f"/api/v1/me/statements/{month}", params={"currency": currency}, headers=mine)
    assert own.status_code == 200 and own.json()["sharer_id"] == ALICE
    other = client.get(
        f"/api/v1/sharers/u00001/statements/{month}", params={"currency": currency}, headers=mine
    )
    assert other.status_code == 403
    for bad in ("2026-13", "26-01", "2026-1"):
        refused = client.get(
            f"/api/v1/me/statements/{bad}", params={"currency": currency}, headers=mine
        )
        assert refused.status_code in (400, 422), bad
    assert client.get(f"/api/v1/me/statements/{month}", headers=mine).status_code == 422
