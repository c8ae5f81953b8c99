"""The pages of money as people read it, in a real headless Chromium: balances in English
and Chinese, a sharer (paged orders, earnings per month, team per level), fees and charges
per day and month, and "not found". On each page the numbers shown are checked against the
ledger read through ledger/read, and a screenshot is saved to docs/screenshots/ (the
pictures of docs/views.md)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, sync_playwright

from ledger.read import balances, money, orders, sharers, totals
from ledger.store.opening import open_store
from ledger.web.charts import periods_between
from tests.support.api import TOKENS, serving, small_ledger
from tests.support.browser import REPO, chromium_path

SHOTS = REPO / "docs" / "screenshots"
PAGE = 50  # ledger/web/pages.py's page size (a served process: not patched here)


@pytest.fixture(scope="module")
def ledger_db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("money-browser") / "ledger.sqlite"
    small_ledger(path, orders=600, days=100).dispose()  # several months, refund days
    return f"sqlite:///{path}"


def _shown(page: Page, table: str) -> list[tuple[int, str]]:
    """(minor units, text shown) of every amount cell of ``table``."""
    cells = page.locator(f"{table} td[data-minor]")
    return [(int(c.get_attribute("data-minor") or ""), c.inner_text().strip()) for c in cells.all()]


def _money(minor: int, currency: str, locale: str) -> str:
    return money.format_money(minor, currency, locale).replace("\u00a0", " ")


def _norm(cells: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return [(m, t.replace("\u00a0", " ")) for m, t in cells]


def test_money_pages_in_chromium(ledger_db) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    store = open_store(ledger_db)
    with store.read() as conn:
        first_balances = balances.balances(conn, limit=PAGE).items
        every = balances.balances(conn, limit=100_000).items
        counted = {
            b.sharer_id: len(orders.sharer_orders(conn, b.sharer_id, limit=100_000).items)
            for b in every
        }
        sharer_id = max(counted, key=lambda s: (counted[s], s))
        sharer_orders = orders.sharer_orders(conn, sharer_id, limit=100_000).items
        by_month = sharers.earnings_by_month(conn, sharer_id)
        team = sharers.team(conn, sharer_id)
        days = totals.totals(conn, period="day")
        months = totals.totals(conn, period="month")
        order = orders.order_payouts(conn, sharer_orders[0].order_id)
    store.dispose()
    assert len(sharer_orders) > PAGE  # the sharer page has a second page
    assert order is not None

    with serving(ledger_db) as site, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")

        def shot(name: str, full_page: bool = True) -> None:
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)
            assert (SHOTS / f"{name}.png").stat().st_size > 5_000

        page.goto(f"{site}/dashboard/login")
        page.fill("#token", TOKENS["finance"])
        page.click("#sign-in")
        page.wait_for_selector("#balances")
        expected = [
            (getattr(b, f), _money(getattr(b, f), b.currency, "en"))
            for b in first_balances
            for f in ("pending", "available", "inflight", "paid", "earned", "reversed")
        ]
        assert _norm(_shown(page, "#balances")) == expected
        shot("money-01-balances-en")

        page.click("header a.lang-zh_CN")
        page.wait_for_selector("html[lang=zh-CN]")
        expected_zh = [
            (getattr(b, f), _money(getattr(b, f), b.currency, "zh_CN"))
            for b in first_balances
            for f in ("pending", "available", "inflight", "paid", "earned", "reversed")
        ]
        assert _norm(_shown(page, "#balances")) == expected_zh
        assert any("¥" in text for _, text in expected_zh)
        shot("money-02-balances-zh")
        page.click("header a.lang-en")
        page.wait_for_selector("html[lang=en]")

        page.goto(f"{site}/dashboard/lookup?q={sharer_id}")
        page.wait_for_selector("#team")
        assert page.inner_text("h1") == f"Sharer {sharer_id}"
        assert page.locator("#orders tr").count() == PAGE + 1  # a page, not every order
        assert _norm(_shown(page, "#orders")) == [
            (o.amount, _money(o.amount, o.currency, "en")) for o in sharer_orders[:PAGE]
        ]
        assert _norm(_shown(page, "#by-month")) == [
            (m.amount, _money(m.amount, m.currency, "en")) for m in by_month
        ]
        sizes = page.locator("#team tr td.num").all_inner_texts()
        assert [int(s) for s in sizes] == [lv.size for lv in team.levels]
        for currency in {m.currency for m in by_month}:
            chart = page.locator(f"#earnings-chart-{currency}")
            assert chart.locator("rect").count() == len(
                [m for m in by_month if m.currency == currency]
            )
        shot("money-03-sharer", full_page=False)  # balances, months, team; orders below
        page.click("#next")
        page.wait_for_selector("#orders")
        assert _norm(_shown(page, "#orders")) == [
            (o.amount, _money(o.amount, o.currency, "en")) for o in sharer_orders[PAGE : 2 * PAGE]
        ]
        shot("money-04-sharer-next-page")

        page.goto(f"{site}/dashboard/totals")
        page.wait_for_selector("svg rect")
        assert _norm(_shown(page, "#totals")) == [
            (x, _money(x, r.currency, "en")) for r in days for x in (r.fees, r.merchant_charges)
        ]
        for currency in sorted({r.currency for r in days}):
            mine = [r for r in days if r.currency == currency]
            ticks = page.locator(f"#chart-{currency} line.tick")
            assert ticks.count() == len(periods_between(mine[0].period, mine[-1].period, "day"))
            below = page.locator(f"#chart-{currency} rect.below")
            assert below.count() == sum((r.fees < 0) + (r.merchant_charges < 0) for r in mine)
        shot("money-05-totals-day", full_page=False)  # the charts; the table runs on
        page.goto(f"{site}/dashboard/totals?period=month")
        page.wait_for_selector("svg rect")
        assert _norm(_shown(page, "#totals")) == [
            (x, _money(x, r.currency, "en")) for r in months for x in (r.fees, r.merchant_charges)
        ]
        shot("money-06-totals-month")

        page.goto(f"{site}/dashboard/orders/{order.order_id}")
        page.wait_for_selector("#levels")
        shown = page.locator(
            "#levels td[data-field=accrued], #levels td[data-field=reversed], "
            "#levels td[data-field=amount]"
        ).all_inner_texts()
        assert [t.replace("\u00a0", " ") for t in shown] == [
            _money(x, order.currency, "en")
            for lv in order.levels
            for x in (lv.accrued, lv.reversed, lv.amount)
        ]

        for path in ("sharers/nobody-at-all", "orders/no-such-order"):
            answer = page.goto(f"{site}/dashboard/{path}")
            assert answer is not None and answer.status == 404
            assert page.inner_text("h1") == "Not found"
        shot("money-07-sharer-not-found")
        browser.close()
