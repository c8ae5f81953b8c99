"""A small ledger behind the API for the API, fuzz and browser tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from ledger.api.app import create_app
from ledger.api.auth import TokenBook, token_item
from ledger.domain.events import (
    ClickRecorded,
    Event,
    OrderCompleted,
    OrderLine,
    OrderPlaced,
    RefundIssued,
    RefundLine,
    SharerEnrolled,
)
from ledger.jsonform import event_to_json
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store.opening import open_store
from ledger.store.store import Store
from projectors import runner

TOKENS = {
    "finance": "finance-token-1",
    "auditor": "auditor-token-1",
    "publisher": "publisher-token-1",
    "sharer": "sharer-token-1",  # bound to SHARER
}
SHARER = "u00001"  # the simulator's second sharer: earns and is paid
TOKEN_CONFIG = ",".join(
    token_item(role, token, SHARER if role == "sharer" else None) for role, token in TOKENS.items()
)


def token_book() -> TokenBook:
    return TokenBook.parse(TOKEN_CONFIG)


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def small_ledger(path: Path | str, *, seed: int = 11, orders: int = 120, **more: Any) -> Store:
    """A ledger of a simulated platform, views caught up: SQLite at ``path``, or at a
    database URL; ``more``: further arguments of ``ledger.simulate.generate`` (days, …)."""
    store = open_store(path if isinstance(path, str) else f"sqlite:///{path}")
    events = generate(seed, orders=orders, **more).all()
    LedgerService(store).ingest([Received(e, f"sim:{n}", "sim") for n, e in enumerate(events)])
    runner.catch_up(store)
    return store


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(db: Path | str, *, timeout: float = 120) -> Iterator[str]:
    """A real ``ledger serve`` process on loopback over ``db`` (a SQLite path or a URL);
    yields its base URL once it answers (polled to a deadline), and stops it afterwards."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    with server_process(url, timeout=timeout) as (base, _process):
        yield base


@contextmanager
def server_process(
    db_url: str, *, timeout: float = 120, options: tuple[str, ...] = ()
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``ledger serve`` over ``db_url`` (and ``options``): yields (base URL, the process)
    once it answers. ``timeout``: its imports alone took 19 s on a machine loaded 5x its
    cores; a start slower than 30 s is not a failure of what the tests check."""
    port = free_port()
    env = {**os.environ, "LEDGER_API_TOKENS": TOKEN_CONFIG, "LEDGER_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ledger"),
            "serve",
            "--db",
            db_url,
            "--port",
            str(port),
            "--interval",
            "0.2",
            *options,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                httpx.get(f"{base}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    out = process.stdout.read() if process.stdout else ""
                    raise AssertionError(f"ledger serve did not start: {out[-3000:]}") from None
                time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


LOGIN_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def dashboard_login(client: httpx.Client, token: str, origin: str | None = None) -> httpx.Response:
    """Sign in as a browser does: load the form (its CSRF token and cookie), post it back
    from the same origin. ``client`` is a TestClient or an httpx.Client with a base_url."""
    form = client.get("/dashboard/login")
    found = LOGIN_CSRF.search(form.text)
    assert found is not None, form.text
    own = (
        origin
        if origin is not None
        else f"{client.base_url.scheme}://{client.base_url.netloc.decode()}"
    )
    return client.post(
        "/dashboard/login",
        data={"token": token, "csrf": found.group(1)},
        headers={"Origin": own},
        follow_redirects=False,
    )


# --- a ledger built through the API itself (the permission, idempotency and id tests) ---

DAY = 86_400_000
PLAN = {
    "plan_id": "plan-1",
    "default_rate_bps": 1000,
    "platform_fee_bps": 800,
    "level_shares_bps": [5000, 3000, 2000],
    "frozen_days": 7,
    "attribution_window_days": 30,
    "self_purchase_allowed": False,
    "min_payouts": [{"currency": "CNY", "amount": 100}],
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def event_json(event: Event) -> dict[str, Any]:
    """An event in its JSON form, as POST /api/v1/events takes it."""
    return event_to_json(event)


def publish(http: Any, event: Event, role: str = "publisher") -> Any:
    return http.post("/api/v1/events", headers=auth(role), json=event_json(event))


def order(order_id: str, at: int, *, sharer_click: str | None, amount: int) -> OrderPlaced:
    return OrderPlaced(
        f"ev-{order_id}",
        at,
        "shop",
        order_id=order_id,
        buyer_id="b1",
        merchant_id="m1",
        currency="CNY",
        lines=(OrderLine("l1", "p1", 1, amount, 2500),),
        click_id=sharer_click,
    )


def build_world(http: Any, now: int) -> None:
    """Through the API: finance publishes a plan; publishers enroll u1 <- u2 and record
    clicks of u2 bought by b1, 45 days ago (c1) and 2 days ago (c2), and three orders:
    o-old (completed 30 days ago, settled by finance's run r-0 so its commission is
    available), o-open (placed, not completed) and o-fresh (completed 30 minutes ago:
    frozen for 7 days). Finance then requests payout po-setup (in flight). Every step
    must be applied."""
    steps = [
        http.post(
            "/api/v1/plans",
            headers=auth("finance"),
            json={**PLAN, "effective_from": now - 60 * DAY},
        ),
        publish(http, SharerEnrolled("ev-u1", now - 50 * DAY, "users", sharer_id="u1")),
        publish(
            http,
            SharerEnrolled("ev-u2", now - 50 * DAY + 1, "users", sharer_id="u2", upline_id="u1"),
        ),
        publish(
            http,
            ClickRecorded(
                "ev-c1",
                now - 45 * DAY,
                "clicks",
                click_id="c1",
                sharer_id="u2",
                buyer_id="b1",
                product_id="p1",
            ),
        ),
        publish(http, order("o-old", now - 40 * DAY, sharer_click="c1", amount=100_000)),
        publish(
            http,
            OrderCompleted(
                "ev-o-old-done", now - 30 * DAY, "shop", order_id="o-old", buyer_id="b1"
            ),
        ),
        publish(
            http,
            ClickRecorded(
                "ev-c2",
                now - 2 * DAY,
                "clicks",
                click_id="c2",
                sharer_id="u2",
                buyer_id="b1",
                product_id="p1",
            ),
        ),
        publish(http, order("o-open", now - 1 * DAY, sharer_click="c2", amount=50_000)),
        publish(http, order("o-fresh", now - 2 * 3_600_000, sharer_click="c2", amount=70_000)),
        publish(
            http,
            OrderCompleted(
                "ev-o-fresh-done", now - 1_800_000, "shop", order_id="o-fresh", buyer_id="b1"
            ),
        ),
        http.post("/api/v1/settlement-runs", headers=auth("finance"), json={"run_id": "r-0"}),
        http.post(
            "/api/v1/payouts",
            headers=auth("finance"),
            json={"payout_id": "po-setup", "sharer_id": "u2", "amount": 1000, "currency": "CNY"},
        ),
    ]
    for response in steps:
        assert response.status_code == 200 and response.json()["outcome"] == "applied", (
            response.request.url,
            response.text,
        )


def ledger_counts(store: Store) -> dict[str, int]:
    """Rows of the journal's tables: what any write would change."""
    from sqlalchemy import func, select

    from ledger.store import tables as t

    with store.read() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (t.events, t.entries, t.dead_letters, t.parked)
        }


def balance(http: Any, sharer_id: str, currency: str = "CNY") -> dict[str, Any]:
    from urllib.parse import quote

    items = http.get(
        f"/api/v1/balances?sharer_id={quote(sharer_id, safe='')}&currency={currency}",
        headers=auth("finance"),
    ).json()["items"]
    return items[0] if items else {}


def typo_refund(now: int) -> RefundIssued:
    """A refund of the world's order o-old, line l1, whose line id was typed ``lI``: the
    ledger rejects it (unknown_line), a dead letter for finance to redrive."""
    return RefundIssued(
        "ev-refund-typo",
        now - DAY,
        "shop",
        refund_id="rf-1",
        order_id="o-old",
        buyer_id="b1",
        lines=(RefundLine("lI", 40_000),),
    )


def reused_order(now: int) -> OrderPlaced:
    """An order the shop sent under o-old's id (duplicate_order_id): really o-late."""
    return OrderPlaced(
        "ev-o-late",
        now - 3_600_000,
        "shop",
        order_id="o-old",
        buyer_id="b1",
        merchant_id="m1",
        currency="CNY",
        lines=(OrderLine("l1", "p1", 1, 60_000, 2500),),
        click_id="c2",
    )


def built_world(directory: Path) -> tuple[Path, int]:
    """A SQLite ledger built through the API (``build_world``) in ``directory``, and the
    'now' it was built at: a module fixture builds it once, each test works on a copy."""
    path = directory / "world.sqlite"
    now = now_ms()
    store = open_store(f"sqlite:///{path}")
    with TestClient(create_app(store, token_book())) as http:
        build_world(http, now)
    store.dispose()
    return path, now


@contextmanager
def client_on_copy(world: Path, directory: Path) -> Iterator[TestClient]:
    """A test client over a copy of the ledger ``world`` (each test changes its own)."""
    copy = directory / "ledger.sqlite"
    copy.write_bytes(world.read_bytes())
    store = open_store(f"sqlite:///{copy}")
    with TestClient(create_app(store, token_book())) as http:
        yield http
    store.dispose()
