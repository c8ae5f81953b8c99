"""Downloads (GET /api/v1/downloads/{table}.csv|.xlsx and the dashboard's links): each
file holds exactly the rows of the matching JSON endpoint, filters included; the payouts
by level carry the same states as ``orders.level_state`` (on random streams, SQLite and
PostgreSQL, pages cut anywhere); ids and reasons that start like a formula stay text;
rows are read a page at a time, never more than a page held, whatever the table's size."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import weakref

import openpyxl
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from ledger.api.app import create_app
from ledger.read import balances as balance_reads
from ledger.read import downloads, orders
from ledger.service import LedgerService, Received
from ledger.spreadsheets import FORMULA_STARTS, from_csv_text
from ledger.store import view_tables as v
from ledger.store.opening import open_store
from ledger.web.pages import mount
from projectors import runner
from projectors.catalog import shown
from tests.support.api import TOKENS, auth, dashboard_login, small_ledger, token_book
from tests.support.streams import DAY, T0, Ev, streams
from tests.support.views import url_factory

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


def read_csv(data: bytes) -> tuple[list[str], list[list[str]]]:
    header, *rows = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    return header, rows


def read_xlsx(data: bytes) -> tuple[list[str], list[list[object]]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    return header, rows  # type: ignore[return-value]


def as_text(rows: list[dict], columns: list[str]) -> list[list[str]]:
    """JSON rows as the CSV spells them (None: an empty cell; a dead letter's redrive as
    "<outcome> <event id>")."""
    return [["" if r[c] is None else _cell(r[c]) for c in columns] for r in rows]


def _cell(value: object) -> str:
    if isinstance(value, dict) and set(value) == {"event_id", "outcome"}:
        return f"{value['outcome']} {value['event_id']}"
    return str(value)


def json_pages(http, path: str, **params) -> list[dict]:
    rows, cursor = [], None
    while True:
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        body = http.get(path, params=query, headers=auth("auditor")).json()
        rows += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = small_ledger(tmp_path_factory.mktemp("downloads") / "l.sqlite", orders=150)
    with TestClient(mount(create_app(store, token_book()))) as http:
        yield http, store
    store.dispose()


@pytest.mark.parametrize(
    ("table", "endpoint", "params"),
    [
        ("balances", "/api/v1/balances", {}),
        ("balances", "/api/v1/balances", {"currency": "USD"}),
        ("balances", "/api/v1/balances", {"as_of": T0 + 10 * DAY}),
        ("dead-letters", "/api/v1/dead-letters", {}),
    ],
)
def test_a_download_holds_the_json_endpoints_rows(client, table, endpoint, params) -> None:
    http, _ = client
    expected = json_pages(http, endpoint, **params)
    assert expected  # the simulated platform has some of each
    got = http.get(f"/api/v1/downloads/{table}.csv", params=params, headers=auth("finance"))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"] == f'attachment; filename="{table}.csv"'
    header, rows = read_csv(got.content)
    assert [[from_csv_text(c) for c in r] for r in rows] == as_text(expected, header)
    got = http.get(f"/api/v1/downloads/{table}.xlsx", params=params, headers=auth("auditor"))
    header_x, rows_x = read_xlsx(got.content)
    assert header_x == header
    assert rows_x == [
        [_cell(r[c]) if isinstance(r[c], dict) else r[c] for c in header] for r in expected
    ]


@pytest.mark.parametrize("params", [{}, {"period": "month", "currency": "CNY"}])
def test_the_totals_download_holds_the_totals(client, params) -> None:
    http, _ = client
    expected = http.get("/api/v1/totals", params=params, headers=auth("finance")).json()
    assert expected
    header, rows = read_csv(
        http.get("/api/v1/downloads/totals.csv", params=params, headers=auth("finance")).content
    )
    assert rows == as_text(expected, header)


def test_payouts_by_level_hold_every_level_with_the_sharer_pages_state(client) -> None:
    http, store = client
    with store.read() as conn:
        sharers = sorted(set(conn.execute(select(v.view_order_levels.c.sharer_id)).scalars().all()))
    expected = []
    for sharer in sharers:
        expected += json_pages(http, f"/api/v1/sharers/{sharer}/orders")
    got = http.get("/api/v1/downloads/payouts-by-level.csv", headers=auth("finance"))
    header, rows = read_csv(got.content)
    key = ["order_id", "level", "sharer_id", "currency", "amount", "settled_at", "state"]
    assert sorted(tuple(r[header.index(k)] for k in key) for r in rows) == sorted(
        tuple("" if e[k] is None else str(e[k]) for k in key) for e in expected
    )
    assert {r[header.index("state")] for r in rows} >= {"paid", "available"}
    one = http.get(
        "/api/v1/downloads/payouts-by-level.xlsx",
        params={"sharer_id": sharers[0]},
        headers=auth("finance"),
    )
    header_x, rows_x = read_xlsx(one.content)
    assert {r[header_x.index("sharer_id")] for r in rows_x} == {sharers[0]}


def test_roles_and_formats(client) -> None:
    http, _ = client
    assert http.get("/api/v1/downloads/balances.csv").status_code == 401
    assert http.get("/api/v1/downloads/balances.csv", headers=auth("publisher")).status_code == 403
    assert http.get("/api/v1/downloads/balances.pdf", headers=auth("finance")).status_code == 422
    assert http.get("/api/v1/downloads/nothing.csv", headers=auth("finance")).status_code == 404


def test_the_dashboard_links_download_for_a_signed_in_session(client) -> None:
    http, _ = client
    http.cookies.clear()
    assert http.get("/dashboard/downloads/balances.csv", follow_redirects=False).status_code == 303
    dashboard_login(http, TOKENS["finance"])
    for page, link in (
        ("/dashboard/", "/dashboard/downloads/balances.xlsx"),
        ("/dashboard/", "/dashboard/downloads/payouts-by-level.csv"),
        ("/dashboard/totals?period=month", "/dashboard/downloads/totals.csv?period=month"),
        ("/dashboard/dead-letters", "/dashboard/downloads/dead-letters.xlsx"),
    ):
        assert f'href="{link}"' in http.get(page).text
        got = http.get(link)
        assert got.status_code == 200
        assert link.endswith("xlsx") or got.content.count(b"\n") >= 3  # header and rows
    api = http.get("/api/v1/downloads/balances.csv", headers=auth("finance")).content
    assert http.get("/dashboard/downloads/balances.csv").content == api


# --- formulas ------------------------------------------------------------------------

HOSTILE_IDS = ['=HYPERLINK("http://x.example")', "+1+1", "-2-2", "@SUM(A1)", "=cmd|'/C calc'!A0"]


def test_ids_and_reasons_that_start_like_formulas_stay_text(tmp_path) -> None:
    """Sharers, orders and dead letters named like formulas: in the CSV each such cell is
    quoted (and reads back to the id); in the XLSX each is a string cell, none a formula."""
    ev = Ev()
    a, b, c, d, e = HOSTILE_IDS
    events = [
        ev.plan(),
        ev.enroll(a),
        ev.enroll(b, a),
        ev.enroll(c, b),
        ev.click("k1", c, "buyer", T0 + 1),
        ev.order(d, "buyer", T0 + 2, merchant=e),
        ev.order(e, "buyer", T0 + 3, lines=(("L1", -5, None),), event_id="=bad order"),
        ev.refund("-r", d, "buyer", (("L9", 1),), T0 + 4, event_id="@refund"),
        ev.enroll(a, event_id="+again"),
    ]
    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}")
    LedgerService(store).ingest([Received(x, f"=src:{n}", "s") for n, x in enumerate(events)])
    runner.catch_up(store)
    with TestClient(create_app(store, token_book())) as http:
        texts: set[str] = set()
        xlsx_texts: set[str] = set()
        for table in ("balances", "payouts-by-level", "dead-letters"):
            csv_data = http.get(f"/api/v1/downloads/{table}.csv", headers=auth("finance"))
            _, rows = read_csv(csv_data.content)
            xlsx_data = http.get(f"/api/v1/downloads/{table}.xlsx", headers=auth("finance"))
            sheet = openpyxl.load_workbook(io.BytesIO(xlsx_data.content)).active
            cells = [cell for row in sheet.iter_rows(min_row=2) for cell in row]
            assert rows and cells
            assert not [cell for cell in cells if cell.data_type == "f"]
            for row in rows:
                for cell in row:
                    assert not cell.startswith(FORMULA_STARTS), (table, cell)
            texts |= {from_csv_text(cell) for row in rows for cell in row}
            xlsx_texts |= {cell.value for cell in cells if cell.data_type == "s"}
    store.dispose()
    for hostile in (a, b, c, d, e, "=bad order", "@refund", "+again", "=src:7"):
        assert hostile in texts and hostile in xlsx_texts, hostile


# --- one page at a time ----------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 20])
def test_rows_are_read_a_page_at_a_time(client, size) -> None:
    """The reader holds at most one page of rows when it asks for the next, and reads
    ⌈n/size⌉ pages (+1 when n is a multiple): memory is the page, not the table."""
    _, store = client
    alive: weakref.WeakSet = weakref.WeakSet()
    held_at_fetch: list[int] = []
    with store.read() as conn:

        def fetch(after, limit):
            held_at_fetch.append(len(alive))
            found = balance_reads.balances(conn, after=after, limit=limit)
            alive.update(found.items)
            return found

        n = sum(1 for _ in downloads.pages(fetch, size))
    assert n > 3 * size
    assert len(held_at_fetch) == n // size + 1 if n % size == 0 else math.ceil(n / size)
    assert max(held_at_fetch) <= size


# --- the payout states of the download are level_state's -------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def make_url(request, tmp_path_factory):
    yield from url_factory(request, tmp_path_factory, prefix="downloads")


@settings(max_examples=20, **SETTINGS)
@given(
    events=streams(max_buyers=3, min_steps=25, max_steps=45),
    size=st.integers(1, 5),
)
def test_download_states_equal_level_state(make_url, events, size) -> None:
    """The download decides paid/available with one walk per sharer (FifoStates); the
    payout view asks level_state per level: on random streams, paged anywhere, the same."""
    store = open_store(make_url())
    LedgerService(store).ingest([Received(x, f"s:{n}", "s") for n, x in enumerate(events)])
    runner.catch_up(store)
    ol = v.view_order_levels
    with store.read() as conn:
        table = downloads.payouts_by_level(conn, size=size)
        got = {(r[0], r[2]): r[-1] for r in table.rows}
        expected = {
            (r.order_id, r.sharer_id): orders.level_state(conn, r)
            for r in conn.execute(select(ol).where(shown(ol)))
        }
    store.dispose()
    assert got == expected


def test_the_response_sends_its_first_bytes_after_one_chunk_of_rows(client, monkeypatch) -> None:
    """End to end (the route's body): the first chunk of the CSV leaves after at most
    ⌈CHUNK_ROWS / size⌉ pages were read, whatever the table holds; the rest follow."""
    from ledger import spreadsheets
    from ledger.api.routes_downloads import stream

    monkeypatch.setattr(spreadsheets, "CHUNK_ROWS", 10)  # several chunks of a small table
    _, store = client
    fetched: list[int] = []
    size = 7

    def table_of(conn):
        table = downloads.balances(conn, size=size)

        def counted():
            for n, row in enumerate(table.rows):
                fetched.append(n)
                yield row

        return downloads.Table(table.title, table.columns, counted())

    response = stream(store, "balances", "csv", table_of)

    async def read() -> tuple[bytes, int, bytes]:
        body = response.body_iterator
        first = await body.__anext__()
        rows_read = len(fetched)
        rest = b"".join([chunk async for chunk in body])  # type: ignore[misc]
        return first, rows_read, rest

    first, rows_read, rest = asyncio.run(read())
    assert first.startswith("\ufeff".encode())
    assert rows_read <= math.ceil((spreadsheets.CHUNK_ROWS + 1) / size) * size
    total = len(fetched)
    assert total > rows_read  # more rows came after the first bytes left
    assert (first + rest).count(b"\r\n") == total + 1  # the header and every row
