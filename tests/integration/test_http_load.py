"""The HTTP edge against real servers: a 150 MB body or an endless chunked one is refused
with 413 and the server's memory stays put; 160 concurrent keep-alive readers and
publishers get 200 or 503, never a 500 nor a pool timeout (the connection pool deadlocked
at 64 before: see ledger/api/deps.py), on SQLite and PostgreSQL; a server out of database
capacity answers 503 with Retry-After (at once when its queue is full, else after its
wait) and serves again as soon as the load is gone."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from ledger.api import edge
from ledger.api.app import create_app
from ledger.api.deps import Conn
from ledger.domain.events import ClickRecorded
from ledger.jsonform import event_to_json
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


READS = {
    "finance": [
        "/api/v1/balances?limit=50",
        "/api/v1/sharers/u00001",
        "/api/v1/orders/ord-000001/payouts",
        "/api/v1/dead-letters?limit=50",
    ],
    "auditor": ["/api/v1/audit/entries?order_id=ord-000002", "/api/v1/orders/ord-000002/payouts"],
}


def _click(n: int, client: int) -> bytes:
    click = ClickRecorded(
        f"load-{client}-{n}",
        1_700_000_000_000 + n,
        "shop",
        click_id=f"load-click-{client}-{n}",
        sharer_id="u00001",
        buyer_id=f"load-buyer-{client}",
        product_id="p1",
    )
    return json.dumps(event_to_json(click)).encode()


def _client(
    base: str, role: str, number: int, rounds: int, statuses: Counter[int], problems: list[str]
) -> None:
    """``rounds`` requests on one keep-alive connection: GETs of ``role``'s pages, or (the
    publisher) click events; each answer must be 200, or 503 with Retry-After, after which
    the request is made again (as a client should) until it is served."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)  # keep-alive
    headers = {"Authorization": f"Bearer {TOKENS[role]}"}
    try:
        for n in range(rounds):
            status = 503
            while status == 503:
                if role == "publisher":
                    path = "/api/v1/events"
                    body = _click(n, number)
                    conn.request(
                        "POST", path, body, {**headers, "Content-Type": "application/json"}
                    )
                else:
                    path = READS[role][n % len(READS[role])]
                    conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                status = response.status
                statuses[status] += 1
                retry = response.getheader("Retry-After")
                if status not in (200, 503) or (status == 503 and retry is None):
                    problems.append(f"{path}: {status} without Retry-After {body[:200]!r}")
                    return
                if status == 503 or response.getheader("Connection", "").lower() == "close":
                    conn.close()  # the server may close an idle connection while we wait
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
                if status == 503:
                    time.sleep(int(retry or 1))  # the client's back-off, as the server asks
    except Exception as exc:  # noqa: BLE001 - reported as a failure below
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _load(base: str, roles: dict[str, int], rounds: int) -> tuple[Counter[int], list[str]]:
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    threads = [
        threading.Thread(target=_client, args=(base, role, n, rounds, statuses, problems))
        for role, count in roles.items()
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "clients still waiting after 300 s"
    return statuses, problems


CLIENTS = {"finance": 112, "auditor": 24, "publisher": 24}  # 160 at once


def test_160_concurrent_clients_get_200_or_a_503_never_a_pool_timeout(db_url) -> None:
    """Finance and auditor readers and publishers, 160 at once against a server whose
    queue holds 32: every answer is 200, or 503 with Retry-After after which the client
    tries again and is served; no 500, and no request ever waited for a pooled connection
    until the pool's timeout (the server logs each such wait as "database unavailable").
    The pool deadlocked at 64 readers before admission."""
    small_ledger(db_url, seed=7, orders=300).dispose()  # the demo's workload (ledger demo)
    rounds = 3
    with server_process(db_url, options=("--queue", "32")) as (base, process):
        statuses, problems = _load(base, CLIENTS, rounds)
        assert not problems, problems[:5]
        assert set(statuses) <= {200, 503}, statuses
        assert statuses[200] == sum(CLIENTS.values()) * rounds, statuses  # all served
        after = time.monotonic()
        answer = httpx.get(f"{base}/api/v1/balances", headers=auth("finance"), timeout=30)
        assert answer.status_code == 200
        assert time.monotonic() - after < 3, "the server did not recover at once"
    log = process.stdout.read() if process.stdout else ""
    assert "database unavailable" not in log and "QueuePool" not in log, log[-2000:]


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


def _click_json(event_id: str) -> dict[str, object]:
    return event_to_json(
        ClickRecorded(
            event_id, 1, "shop", click_id=event_id, sharer_id="s", buyer_id="b", product_id="p"
        )
    )


def test_a_request_finding_the_queue_full_is_answered_503_at_once(tmp_path) -> None:
    """Shedding by queue length: one request holds the only slot, one may wait (for up to
    60 s); of two more readers exactly one is refused at once, with Retry-After, while the
    other still waits and is then served. Writes have their own lane: a POST /events is
    served meanwhile; with the writes' lane full too, a refused POST also closes its
    connection (its body was never read)."""
    small_ledger(tmp_path / "ledger.sqlite", orders=20).dispose()
    app = mount(create_app(open_store(f"sqlite:///{tmp_path / 'ledger.sqlite'}"), token_book()))
    app.db_capacity, app.db_write_capacity, app.db_wait, app.db_queue = 1, 1, 60.0, 1
    app.db_write_queue = 0  # a write finding the writes' one place taken is refused at once
    entered, release = threading.Event(), threading.Event()
    _hold_route(app, entered, release)
    write_entered = threading.Event()
    _hold_route(app, write_entered, release, method="POST")
    with uvicorn_thread(app) as base:
        answers: dict[str, httpx.Response] = {}

        def get(name: str, path: str) -> None:
            answers[name] = httpx.get(f"{base}{path}", headers=auth("finance"), timeout=90)

        def post(name: str, path: str, body: object = None) -> None:
            answers[name] = httpx.post(
                f"{base}{path}", headers=auth("publisher"), json=body, timeout=90
            )

        holder = threading.Thread(target=get, args=("holder", "/api/v1/test-hold"))
        holder.start()
        readers = [threading.Thread(target=get, args=(n, "/api/v1/balances")) for n in "ab"]
        writers: list[threading.Thread] = []
        try:
            assert entered.wait(30), "the holding request never started"
            for reader in readers:
                reader.start()
            deadline = time.monotonic() + 30  # well inside the 60 s a queued one may wait
            while not answers.keys() & {"a", "b"}:
                assert time.monotonic() < deadline, "nobody was refused at once"
                time.sleep(0.02)
            (refused,) = answers.values()
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert "busy" in refused.json()["detail"]
            assert sum(reader.is_alive() for reader in readers) == 1  # the queued one
            # the reads' lane is full: a publisher is not queued behind it
            served = httpx.post(
                f"{base}/api/v1/events",
                headers=auth("publisher"),
                json=_click_json("c-served"),
                timeout=30,
            )
            assert served.status_code == 200, served.text
            # the writes' lane full too (its one place held, no queue): refused at once
            writers = [threading.Thread(target=post, args=("w-holder", "/api/v1/test-hold"))]
            writers[0].start()
            assert write_entered.wait(30), "the holding write never started"
            busy = httpx.post(
                f"{base}/api/v1/events",
                headers=auth("publisher"),
                json=_click_json("c-x"),
                timeout=30,
            )
            assert busy.status_code == 503 and busy.headers["connection"] == "close"
            assert "busy" in busy.json()["detail"]
        finally:
            release.set()
            for thread in [holder, *readers, *writers]:
                thread.join(timeout=30)
        assert answers["holder"].status_code == 200
        assert sorted(answers[n].status_code for n in "ab") == [200, 503]
        assert answers["w-holder"].status_code == 200


def _hold_route(
    app: FastAPI, entered: threading.Event, release: threading.Event, method: str = "GET"
) -> None:
    """A test-only endpoint that holds its admission (a read snapshot) until released;
    ``method`` POST: in the writes' lane."""

    def hold(conn: Conn) -> dict[str, bool]:
        entered.set()
        return {"released": release.wait(30)}

    app.add_api_route("/api/v1/test-hold", hold, methods=[method])
