"""Correct and resubmit a dead letter in a real headless Chromium against ``ledger serve``:
finance opens the typo'd refund from the dead letters list, edits the prefilled JSON,
previews the diff, submits; the page then shows the redrive (by, when, outcome, the diff)
and links to the order, whose refunded figure equals the ledger's. An auditor sees the
redrive read-only. Screenshots: ``<repo>/.cache/screenshots/redrive-*.png`` (copies in
docs/screenshots/ for docs/views.md)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright

from ledger.api.app import create_app
from ledger.read import redrives as reads
from ledger.read.order_story import order_story
from ledger.store.opening import open_store
from tests.integration.test_dashboard_browser import SHOTS, chromium  # noqa: F401
from tests.support.api import TOKENS, auth, built_world, publish, serving, token_book, typo_refund


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A ledger built through the API with one dead letter: a refund of o-old's line l1
    whose line id was typed ``lI`` (unknown_line)."""
    path, now = built_world(tmp_path_factory.mktemp("redrive-browser"))
    store = open_store(f"sqlite:///{path}")
    with TestClient(create_app(store, token_book())) as http:
        assert publish(http, typo_refund(now)).json()["reason"] == "unknown_line"
        [dead] = http.get("/api/v1/dead-letters", headers=auth("finance")).json()["items"]
    store.dispose()
    with serving(path, timeout=120) as base:
        yield base, path, dead


def _sign_in(page, site: str, role: str) -> None:
    page.goto(f"{site}/dashboard/login")
    page.fill("#token", TOKENS[role])
    page.click("#sign-in")
    page.wait_for_selector("#balances")


def test_finance_corrects_and_resubmits_a_dead_letter(chromium, ledger) -> None:  # noqa: F811
    site, path, dead = ledger
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _sign_in(page, site, "finance")
        page.goto(f"{site}/dashboard/dead-letters?redriven=false")
        row = page.locator(f"#dead-letters tr[data-id='{dead['id']}']")
        assert "unknown_line" in row.inner_text()
        page.screenshot(path=str(SHOTS / "redrive-01-list.png"), full_page=True)
        row.locator("td.redriven a").click()
        page.wait_for_selector("#redrive-form")
        assert page.inner_text("#payload") == dead["payload"]  # the original, as kept

        original = json.loads(page.input_value("#event"))
        assert "event_id" not in original and original["lines"][0]["line_id"] == "lI"
        page.fill(
            "#event",
            json.dumps({**original, "lines": [{"line_id": "l1", "amount": 40_000}]}, indent=2),
        )
        page.click("#preview-button")
        page.wait_for_selector("#preview")
        cells = [c.inner_text() for c in page.locator("#preview tr.change-replace td").all()]
        assert cells == ["/lines/0/line_id", '"lI"', '"l1"']
        page.screenshot(path=str(SHOTS / "redrive-02-preview.png"), full_page=True)

        page.click("#submit-button")
        page.wait_for_selector("#redrive")
        assert page.inner_text("#redrive-outcome") == "applied"
        assert page.inner_text("#notice") == "Submitted: applied."
        cells = [
            c.inner_text() for c in page.locator("#redrive-changes tr.change-replace td").all()
        ]
        assert cells == ["/lines/0/line_id", '"lI"', '"l1"']
        page.screenshot(path=str(SHOTS / "redrive-03-done.png"), full_page=True)

        store = open_store(f"sqlite:///{path}")
        with store.read() as conn:
            detail = reads.dead_letter(conn, dead["id"])
            story = order_story(conn, "o-old")
        store.dispose()
        assert detail is not None and detail.redrive is not None
        assert page.inner_text("#redrive-by") == detail.redrive.by
        assert page.inner_text("#redrive-event") == detail.redrive.event_id
        assert detail.payload == dead["payload"]

        page.click("#redrive-order")
        page.wait_for_selector("#money")
        assert story is not None and story.money.refunded_to_merchant > 0
        cell = page.locator("#money td[data-field=refunded_to_merchant]")
        assert cell.get_attribute("data-minor") == str(story.money.refunded_to_merchant)

        auditor = browser.new_page(viewport={"width": 1280, "height": 900})
        _sign_in(auditor, site, "auditor")
        auditor.goto(f"{site}/dashboard/dead-letters/{dead['id']}")
        auditor.wait_for_selector("#redrive")
        assert auditor.locator("#redrive-form").count() == 0
        assert auditor.inner_text("#redrive-outcome") == "applied"
        browser.close()
