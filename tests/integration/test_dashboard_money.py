"""The dashboard as finance reads it: amounts in the reader's locale equal to the ledger's
(read through ledger/read), the sharer page paginated with earnings per month, the totals
chart on a continuous date axis with refund days below zero, and "not found" for unknown
sharers and orders on the page and in the API."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger.api.app import create_app
from ledger.domain.events import RefundIssued, RefundLine
from ledger.read import balances, money, orders, sharers, totals
from ledger.store.opening import open_store
from ledger.web import pages
from ledger.web.charts import periods_between
from tests.support.api import (
    DAY,
    TOKENS,
    auth,
    built_world,
    dashboard_login,
    publish,
    small_ledger,
    token_book,
)

F = auth("finance")
CELL = re.compile(r'<td class="num[^"]*" data-minor="(-?\d+)">([^<]*)</td>')


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("money") / "ledger.sqlite"
    small_ledger(path, orders=150).dispose()
    return path


@pytest.fixture
def client(ledger_path) -> Iterator[TestClient]:
    store = open_store(f"sqlite:///{ledger_path}")
    with TestClient(pages.mount(create_app(store, token_book()))) as http:
        assert dashboard_login(http, TOKENS["finance"]).status_code == 303
        yield http
    store.dispose()


def _cells(page: str) -> list[tuple[int, str]]:
    return [(int(minor), html.unescape(text)) for minor, text in CELL.findall(page)]


@pytest.mark.parametrize(
    ("how", "locale"),
    [
        ({"headers": {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}}, "zh_CN"),
        ({"headers": {"Accept-Language": "en-GB"}}, "en"),
        ({"params": {"lang": "zh-CN"}}, "zh_CN"),
        ({}, "en"),
    ],
)
def test_balances_read_as_money_equal_to_the_ledger(client, how, locale) -> None:
    page = client.get("/dashboard/", **how)
    assert page.status_code == 200
    assert f'<html lang="{locale.replace("_", "-")}">' in page.text
    assert "minor units" not in page.text
    with client.app.state.store.read() as conn:
        rows = balances.balances(conn, limit=pages.PAGE).items
    expected = [
        (getattr(b, f), money.format_money(getattr(b, f), b.currency, locale))
        for b in rows
        for f in pages.FIELDS
    ]
    assert _cells(page.text) == expected
    assert any(minor < 0 for minor, _ in expected) or any(
        minor > 0 for minor, _ in expected
    )  # not all zeros


def test_the_chosen_language_sticks_and_the_server_setting_is_the_default(
    client, ledger_path
) -> None:
    chosen = client.get("/dashboard/", params={"lang": "zh_CN"})
    assert chosen.cookies.get(pages.LOCALE_COOKIE) == "zh_CN"
    again = client.get("/dashboard/", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in again.text  # the reader's choice beats the browser's
    store = open_store(f"sqlite:///{ledger_path}")
    with TestClient(pages.mount(create_app(store, token_book()), locale="zh_CN")) as http:
        dashboard_login(http, TOKENS["finance"])
        assert '<html lang="zh-CN">' in http.get("/dashboard/").text
        assert '<html lang="en">' in http.get("/dashboard/", headers={"Accept-Language": "en"}).text
    store.dispose()


def _busiest_sharer(client) -> str:
    with client.app.state.store.read() as conn:
        every = balances.balances(conn, limit=10_000).items
        counted = {
            b.sharer_id: len(orders.sharer_orders(conn, b.sharer_id, limit=10_000).items)
            for b in every
        }
    return max(counted, key=lambda s: (counted[s], s))


def test_the_sharer_page_is_paginated_and_every_page_equals_the_ledger(client, monkeypatch) -> None:
    monkeypatch.setattr(pages, "PAGE", 7)
    sharer_id = _busiest_sharer(client)
    with client.app.state.store.read() as conn:
        everything = orders.sharer_orders(conn, sharer_id, limit=10_000).items
        by_month = sharers.earnings_by_month(conn, sharer_id)
        team = sharers.team(conn, sharer_id)
    assert len(everything) > 14  # three pages at least
    url, seen, pages_seen = pages.page_of("sharers", sharer_id), [], 0
    while url:
        page = client.get(url)
        assert page.status_code == 200
        pages_seen += 1
        body = page.text.split('<table id="orders">', 1)[1].split("</table>", 1)[0]
        rows = re.findall(r'<a href="[^"]*">([^<]*)</a></td>\s*<td>(\d+)</td>', body)
        assert 0 < len(rows) <= 7 or (pages_seen > 1 and not rows)
        seen += [(html.unescape(o), int(lv)) for o, lv in rows]
        if pages_seen == 1:  # the month table and chart, the team per level
            months = page.text.split('<table id="by-month">', 1)[1].split("</table>", 1)[0]
            assert _cells(months) == [
                (m.amount, money.format_money(m.amount, m.currency, "en")) for m in by_month
            ]
            assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', page.text)[:3]] == [
                lv.size for lv in team.levels
            ]
            for currency in {m.currency for m in by_month}:
                assert f'id="earnings-chart-{currency}"' in page.text
        found = re.search(r'<a id="next" href="([^"]*)"', page.text)
        url = html.unescape(found.group(1)) if found else ""
    assert seen == [(o.order_id, o.level) for o in everything]
    assert pages_seen >= 3


def test_unknown_sharers_and_orders_are_not_found(client) -> None:
    for path in ("/dashboard/sharers/nobody-at-all", "/dashboard/orders/no-such-order"):
        page = client.get(path)
        assert page.status_code == 404 and "Not found" in page.text, path
    assert client.get("/api/v1/sharers/nobody-at-all", headers=F).status_code == 404
    assert client.get("/api/v1/orders/no-such-order/payouts", headers=F).status_code == 404
    known = _busiest_sharer(client)
    body = client.get(f"/api/v1/sharers/{known}", headers=F).json()
    assert body["earnings_by_month"] and all(
        m["currency_exponent"] == money.exponent(m["currency"]) for m in body["earnings_by_month"]
    )


def test_the_api_gives_each_amounts_exponent(client) -> None:
    for path, items in (
        ("/api/v1/balances", lambda b: b["items"]),
        ("/api/v1/totals", lambda b: b),
        (f"/api/v1/sharers/{_busiest_sharer(client)}/orders", lambda b: b["items"]),
    ):
        rows = items(client.get(path, headers=F).json())
        assert rows, path
        assert all(r["currency_exponent"] == money.exponent(r["currency"]) for r in rows), path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, int]:
    return built_world(tmp_path_factory.mktemp("world"))


def test_refund_days_draw_below_zero_on_a_continuous_axis(world, tmp_path) -> None:
    """o-old (placed 40 days ago) is refunded 10 days ago, a day with no other activity:
    that day shows, below zero; the quiet days between are slots without bars."""
    path, now = world
    copy = tmp_path / "ledger.sqlite"
    copy.write_bytes(path.read_bytes())
    store = open_store(f"sqlite:///{copy}")
    with TestClient(pages.mount(create_app(store, token_book()))) as http:
        refund = RefundIssued(
            "ev-refund-old",
            now - 10 * DAY,
            "shop",
            refund_id="rf-old",
            order_id="o-old",
            buyer_id="b1",
            lines=(RefundLine("l1", 60_000),),
        )
        assert publish(http, refund).json()["outcome"] == "applied"
        http.app.state.follower.catch_up_now()
        assert dashboard_login(http, TOKENS["finance"]).status_code == 303
        page = http.get("/dashboard/totals").text
        with http.app.state.store.read() as conn:
            rows = totals.totals(conn, period="day")
    store.dispose()
    refund_day = [r for r in rows if r.fees < 0]
    assert len(refund_day) == 1
    day = refund_day[0].period
    svg = page.split('id="chart-CNY"', 1)[1].split("</svg>", 1)[0]
    ticks = re.findall(r'class="tick" data-period="([^"]+)"', svg)
    assert ticks == periods_between(rows[0].period, rows[-1].period, "day")
    zero = int(re.search(r'class="zero"[^>]* y1="(\d+)"', svg).group(1))
    bars = re.findall(
        r'<rect class="([^"]+)" data-period="([^"]+)" data-value="(-?\d+)" x="\d+" '
        r'y="(\d+)" width="\d+" height="(\d+)">',
        svg,
    )
    assert {p for _, p, _, _, _ in bars} == {r.period for r in rows}  # only active days
    below = [(c, p, int(v), int(y), int(h)) for c, p, v, y, h in bars if int(v) < 0]
    assert below and all(p == day and y == zero and h > 0 for _, p, _, y, h in below)
    above = [(int(v), int(y), int(h)) for _, _, v, y, h in bars if int(v) > 0]
    assert all(y + h == zero for _, y, h in above)
    shown = _cells(page.split('<table id="totals">', 1)[1])
    assert shown == [
        (x, money.format_money(x, r.currency, "en"))
        for r in rows
        for x in (r.fees, r.merchant_charges)
    ]
    assert any(text.startswith("-") for minor, text in shown if minor < 0)


def test_the_language_links_keep_the_page(client) -> None:
    page = client.get("/dashboard/totals", params={"period": "month"}).text
    link = re.search(r'<a href="([^"]*)" class="lang-zh_CN', page)
    assert link is not None
    target = client.get("/dashboard/totals" + html.unescape(link.group(1)))
    assert '<html lang="zh-CN">' in target.text and "Showing per month" in target.text
