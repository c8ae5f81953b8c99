"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright):
sign-in with a finance token, every page loads with its content, and a screenshot of each
page is written to ``<repo>/.cache/screenshots/`` (git ignores .cache; the path is printed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.api import TOKENS, serving, small_ledger

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".cache" / "screenshots"


@pytest.fixture(scope="module")
def chromium() -> str:
    found = subprocess.run(
        ["bash", str(REPO / "deploy" / "chromium.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    return found.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "ledger.sqlite"
    store = small_ledger(path, orders=150)
    store.dispose()
    with serving(path) as base:
        yield base


def test_pages_in_chromium(chromium, site) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        external: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(site) else external.append(r.url))

        def shot(name: str) -> None:
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
            assert (SHOTS / f"{name}.png").stat().st_size > 5_000

        page.goto(f"{site}/dashboard/")  # not signed in: sent to the sign-in page
        assert page.url.endswith("/dashboard/login")
        page.fill("#token", TOKENS["publisher"])
        page.click("#sign-in")
        assert "not a finance" in page.inner_text("#error")
        shot("01-login-refused")

        page.fill("#token", TOKENS["finance"])
        page.click("#sign-in")
        page.wait_for_selector("#balances")
        assert "signed in as finance" in page.inner_text("header")
        assert page.locator("#balances tr").count() > 10
        shot("02-balances")

        sharer = page.locator("#balances tr:nth-child(2) td a").first
        sharer_id = sharer.inner_text()
        sharer.click()
        page.wait_for_selector("#team")
        assert page.inner_text("h1") == f"Sharer {sharer_id}"
        assert page.locator("#team tr").count() == 4  # header + levels 1..3
        shot("03-sharer")

        page.locator("#orders td a").first.click()
        page.wait_for_selector("#levels")
        assert page.locator("#levels .state").count() >= 1
        shot("04-order")

        page.click("text=Fees & charges")
        page.wait_for_selector("svg rect")
        assert page.locator("#totals tr").count() > 2
        shot("05-totals-day")
        page.goto(f"{site}/dashboard/totals?period=month")
        page.wait_for_selector("svg rect")
        shot("06-totals-month")

        page.click("text=Dead letters")
        page.wait_for_selector("#dead-letters")
        shot("07-dead-letters")

        page.click("text=log out")
        assert page.url.endswith("/dashboard/login")
        page.goto(f"{site}/dashboard/totals")
        assert page.url.endswith("/dashboard/login")
        browser.close()
    assert external == []  # nothing loads from outside
    print(f"screenshots in {SHOTS}")


def test_docs_render_with_the_network_cut_off(chromium, site) -> None:
    """/docs in Chromium with every request to another host aborted: Swagger UI renders
    the operations from local assets, and the page's CSP blocks nothing it needs."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        external: list[str] = []
        console: list[str] = []

        def only_this_site(route) -> None:
            if route.request.url.startswith(site):
                route.continue_()
            else:
                external.append(route.request.url)
                route.abort()

        page.route("**/*", only_this_site)
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        page.goto(f"{site}/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        assert page.locator(".opblock").count() >= 14  # every operation of the API
        assert "Commission ledger" in page.inner_text(".info")
        page.screenshot(path=str(SHOTS / "08-docs-offline.png"), full_page=False)
        browser.close()
    assert external == []
    assert not [m for m in console if "Content Security Policy" in m], console
