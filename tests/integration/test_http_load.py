"""The HTTP edge against real servers: a 150 MB body or an endless chunked one is refused
with 413 and the server's memory stays put; 64 concurrent keep-alive readers get no 500
(the connection pool deadlocked before: see ledger/api/deps.py), on SQLite and
PostgreSQL; a server out of database capacity answers 503 with Retry-After at once and
serves again as soon as the load is gone."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from ledger.api import edge
from ledger.api.app import create_app
from ledger.api.deps import Conn
from ledger.store.opening import open_store
from ledger.web.pages import mount
from tests.support.api import TOKENS, auth, server_process, small_ledger, token_book
from tests.support.http import post_raw, rss_kb, uvicorn_thread

MB = 1024 * 1024


def _megabytes(n: int) -> list[bytes]:
    block = b"token=" + b"x" * (MB - 6)
    return [block] * n


def test_huge_and_endless_bodies_get_413_and_memory_stays_bounded(tmp_path) -> None:
    small_ledger(tmp_path / "ledger.sqlite", orders=40).dispose()
    with server_process(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as (base, process):
        for _ in range(3):  # warm up: imports, first pages, the pool
            httpx.get(f"{base}/api/v1/balances", headers=auth("finance")).raise_for_status()
        before = rss_kb(process.pid)
        started = time.monotonic()
        declared = post_raw(
            base,
            "/dashboard/login",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": str(150 * MB),
            },
            chunks=_megabytes(150),
        )
        assert declared == 413
        assert time.monotonic() - started < 10  # refused from the header, not after reading
        for path, headers in [
            ("/dashboard/login", {"Content-Type": "application/x-www-form-urlencoded"}),
            ("/api/v1/payouts", {**auth("finance"), "Content-Type": "application/json"}),
        ]:
            endless = post_raw(base, path, headers=headers, chunks=_megabytes(150), chunked=True)
            assert endless == 413, path
        grown_mb = (rss_kb(process.pid) - before) / 1024
        assert grown_mb < 40, f"the server grew by {grown_mb:.0f} MB"  # was +440 for one
        events = {
            **auth("publisher"),
            "Content-Type": "application/json",
            "Content-Length": str(edge.MAX_EVENT_BODY + 1),
        }
        assert post_raw(base, "/api/v1/events", headers=events, chunks=_megabytes(60)) == 413
        answer = httpx.get(f"{base}/api/v1/balances", headers=auth("finance"))
        assert answer.status_code == 200


READS = [
    "/api/v1/balances?limit=50",
    "/api/v1/sharers/u00001",
    "/api/v1/orders/ord-000001/payouts",
    "/api/v1/dead-letters?limit=50",
]


def _reader(base: str, rounds: int, statuses: Counter[int], problems: list[str]) -> None:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)  # keep-alive
    try:
        for n in range(rounds):
            path = READS[n % len(READS)]
            conn.request("GET", path, headers={"Authorization": f"Bearer {TOKENS['finance']}"})
            response = conn.getresponse()
            body = response.read()
            statuses[response.status] += 1
            if response.status == 503 and response.getheader("Retry-After") is None:
                problems.append("503 without Retry-After")
            elif response.status not in (200, 503):
                problems.append(f"{path}: {response.status} {body[:200]!r}")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    except Exception as exc:  # noqa: BLE001 - reported as a failure below
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _load(base: str, clients: int = 64, rounds: int = 6) -> tuple[Counter[int], list[str]]:
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    threads = [
        threading.Thread(target=_reader, args=(base, rounds, statuses, problems))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "readers still waiting after 300 s"
    return statuses, problems


def test_64_concurrent_readers_get_no_500(db_url) -> None:
    small_ledger(db_url, seed=7, orders=300).dispose()  # the demo's workload (ledger demo)
    with server_process(db_url) as (base, _process):
        started = time.monotonic()
        statuses, problems = _load(base)
        took = time.monotonic() - started
        assert not problems, problems[:5]
        assert sum(statuses.values()) == 64 * 6 and statuses[500] == 0, statuses
        assert statuses[200] >= 0.9 * 64 * 6, statuses  # the rest waited, then 503
        after = time.monotonic()
        answer = httpx.get(f"{base}/api/v1/balances", headers=auth("finance"), timeout=30)
        assert answer.status_code == 200
        assert time.monotonic() - after < 3, "the server did not recover at once"
        assert took < 120, f"the load took {took:.0f} s"


def test_out_of_capacity_answers_503_at_once_and_recovers(tmp_path) -> None:
    small_ledger(tmp_path / "ledger.sqlite", orders=20).dispose()
    app = mount(create_app(open_store(f"sqlite:///{tmp_path / 'ledger.sqlite'}"), token_book()))
    app.db_capacity, app.db_wait = 1, 0.5
    entered, release = threading.Event(), threading.Event()
    _hold_route(app, entered, release)
    with uvicorn_thread(app) as base:
        held: list[int] = []
        holder = threading.Thread(
            target=lambda: held.append(
                httpx.get(
                    f"{base}/api/v1/test-hold", headers=auth("finance"), timeout=60
                ).status_code
            )
        )
        holder.start()
        try:
            assert entered.wait(30), "the holding request never started"
            for path in ("/api/v1/balances", "/dashboard/"):
                started = time.monotonic()
                busy = httpx.get(f"{base}{path}", headers=auth("finance"), timeout=30)
                assert busy.status_code == 503, busy.text
                assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["detail"]
                assert time.monotonic() - started < 5
                assert busy.headers["x-frame-options"] == "DENY"
            login = httpx.get(f"{base}/dashboard/login", timeout=30)  # needs no database
            assert login.status_code == 200
        finally:
            release.set()
            holder.join(timeout=30)
        assert held == [200]
        started = time.monotonic()
        assert httpx.get(f"{base}/api/v1/balances", headers=auth("finance")).status_code == 200
        assert time.monotonic() - started < 3


def _hold_route(app: FastAPI, entered: threading.Event, release: threading.Event) -> None:
    """A test-only endpoint that holds its admission (a read snapshot) until released."""

    def hold(conn: Conn) -> dict[str, bool]:
        entered.set()
        return {"released": release.wait(30)}

    app.add_api_route("/api/v1/test-hold", hold, methods=["GET"])
