"""The order's story in a real headless Chromium: the figures the page shows equal the
ledger's (the read side's story, the journal's postings), an unknown order is a clear
"not found", and the balances page's download links hand the browser a file. Screenshots
go to ``<repo>/.cache/screenshots/`` (docs/screenshots/ keeps a copy for docs/views.md)."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from ledger.read.money import format_money
from ledger.read.order_story import order_story
from ledger.store import tables as t
from ledger.store.opening import open_store
from tests.integration.test_dashboard_browser import SHOTS, chromium  # noqa: F401
from tests.support.api import TOKENS, serving, small_ledger


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A simulated platform, and the order whose story has the most to tell: paid
    levels, a refund, a settlement."""
    path = tmp_path_factory.mktemp("story-browser") / "ledger.sqlite"
    small_ledger(path, orders=150).dispose()
    store = open_store(f"sqlite:///{path}")
    with store.read() as conn:
        stories = [
            order_story(conn, order_id)
            for order_id in conn.execute(select(t.orders.c.order_id)).scalars()
        ]
    store.dispose()

    def richness(story) -> tuple[int, ...]:
        paid = any(s.state == "paid" for s in story.shares)
        covered = any(s.paid_by for s in story.shares)
        refunded = any(r.event_id for r in story.refunds)
        return (paid, refunded, covered, story.settlement is not None, len(story.shares))

    best = max((s for s in stories if s is not None), key=richness)
    assert best.shares and best.settlement is not None
    with serving(path, timeout=120) as base:  # a shared machine can be slow to start it
        yield base, best


def test_the_order_page_shows_the_ledgers_numbers(chromium, ledger) -> None:  # noqa: F811
    site, story = ledger
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.goto(f"{site}/dashboard/login")
        page.fill("#token", TOKENS["finance"])
        page.click("#sign-in")
        page.wait_for_selector("#balances")

        page.fill("header input[name=q]", story.order_id)  # the search box finds the order
        page.press("header input[name=q]", "Enter")
        page.wait_for_selector("#money")
        assert page.inner_text("h1") == f"Order {story.order_id}"

        shown = {
            cell.get_attribute("data-field"): cell.get_attribute("data-minor")
            for cell in page.locator("#money td[data-field]").all()
        }
        skip = ("currency", "currency_exponent")
        assert shown == {k: str(v) for k, v in story.money.as_dict().items() if k not in skip}
        assert page.inner_text("#money td[data-field=merchant_charge]").replace(
            "\u00a0", " "
        ) == format_money(story.money.merchant_charge, story.currency)
        rows = page.locator("#levels tr[data-level]").all()
        assert [
            (
                r.get_attribute("data-level"),
                r.locator("td[data-field=amount]").get_attribute("data-minor"),
            )
            for r in rows
        ] == [(str(s.level), str(s.amount)) for s in story.shares]
        for share, row in zip(story.shares, rows, strict=True):
            assert row.locator(".state").inner_text() == share.state
            for payout in share.paid_by:
                covered_text = format_money(payout.covered, story.currency)
                assert f"{payout.payout_id}: {covered_text}" in row.inner_text().replace(
                    "\u00a0", " "
                )
            if share.paid_by:
                covered = sum(p.covered for p in share.paid_by)
                of = format_money(share.settled, story.currency)
                paid = f"{format_money(covered, story.currency)} of {of} settled paid"
                assert paid in row.inner_text().replace("\u00a0", " ")
        entries = page.locator("#entries > tbody > tr").all()[1:]
        assert len(entries) == len(story.entries)
        for entry, row in zip(story.entries, entries, strict=True):
            amounts = [
                int(c.get_attribute("data-minor") or "")
                for c in row.locator("td[data-field=posting]").all()
            ]
            assert amounts == [p.amount for p in entry.postings] and sum(amounts) == 0
            assert row.locator("code").get_attribute("title") == entry.hash
        assert story.settlement.run_id in page.inner_text("#settlement")
        page.screenshot(path=str(SHOTS / "09-order-story.png"), full_page=True)

        page.goto(f"{site}/dashboard/orders/no-such-order")
        assert page.inner_text("h1") == "Not found"
        assert "No order 'no-such-order'" in page.inner_text("main")

        page.goto(f"{site}/dashboard/")
        with page.expect_download() as download:
            page.click("#downloads a[href$='balances.csv']")
        data = download.value.path().read_text(encoding="utf-8-sig")
        header, *lines = list(csv.reader(io.StringIO(data, newline="")))
        assert header[:2] == ["sharer_id", "currency"] and len(lines) > 10
        browser.close()
