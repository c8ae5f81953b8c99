"""Freshness (issue 22 §3): the delay from publishing an order to its commission being
visible through ``GET /api/v1/sharers/{id}``, at a steady 50% of the measured maximum rate.

    .venv/bin/python bench/freshness.py [--max-rate R] [--seconds 60] [--interval 1.0]

A publisher sends the realistic stream (bench/long_stream.py) over Kafka at a fixed rate;
one ``ledger consume`` applies it into a fresh PostgreSQL ledger and one ``ledger serve``
answers the API over the same ledger (its thread catches the views up every
``--interval`` seconds, the serve default 1.0). Among the stream's events, ``--probes``
times a second a probe: a click of a sharer enrolled for that probe alone and an order
naming it. A poller (every 25 ms a round: one query, then one request per applied probe,
at most four at once; a 30 s deadline each) stamps when the order's row is in the ledger
(applied: Kafka and the consumer's batch) and when the sharer's balance appears in the API
(visible: the view catch-up and the request). Reports p50/p99 of publish → visible
(target p99 < 1 s) and of its two parts.
Without ``--max-rate`` the maximum is measured first: one consumer through the bench's
realistic mix as a backlog (bench/run.py's "ours e2e, 1 consumer", steady rate).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from bench.ceiling import ensure_fixture, recreate_topics
from bench.long_stream import DAY_MS, LongStream
from bench.support import (
    DEFAULT_KAFKA,
    LEDGER_BIN,
    PRODUCER,
    RESULTS,
    START,
    ClickRecorded,
    ConsumerProcess,
    OrderLine,
    OrderPlaced,
    Publisher,
    SharerEnrolled,
    Topics,
    configure_logging,
    default_pg_url,
    end_offsets,
    fresh_database,
    hash_token,
    open_store,
    publisher_auth,
    scratch_topics,
    tables,
    unique,
    wait_until_applied,
)

PARTITIONS = 4
POLL_S = 0.025
DEADLINE_S = 30.0
API_IN_FLIGHT = 4
TARGET_P99_S = 1.0


@dataclass
class Probe:
    sharer: str
    order_id: str
    published: float  # time.perf_counter() when the order was handed to the producer
    applied: float | None = None  # its row is in the ledger
    visible: float | None = None  # the sharer's balance is in the API's answer


def probe_sharer(n: int) -> str:
    return f"fresh-u{n:05d}"


def enrollments(count: int, at: int) -> list[SharerEnrolled]:
    """One root sharer per probe: no other event ever pays it, so its first balance row
    is that probe's commission."""
    return [
        SharerEnrolled(f"enr-{probe_sharer(n)}", at + n, PRODUCER, sharer_id=probe_sharer(n))
        for n in range(count)
    ]


def probe_events(n: int, at: int) -> tuple[ClickRecorded, OrderPlaced]:
    click = ClickRecorded(
        f"ev-fresh-clk-{n}",
        at - 1000,
        PRODUCER,
        click_id=f"fresh-clk-{n}",
        sharer_id=probe_sharer(n),
        buyer_id=f"fresh-b{n:05d}",
        product_id="sku-1",
    )
    order = OrderPlaced(
        f"ev-fresh-ord-{n}",
        at,
        PRODUCER,
        order_id=f"fresh-ord-{n}",
        buyer_id=f"fresh-b{n:05d}",
        merchant_id="m00",
        currency="CNY",
        lines=(OrderLine("l0", "sku-1", 1, 10_000),),
        click_id=click.click_id,
    )
    return click, order


@contextmanager
def serving(db_url: str, interval: float, timeout: float = 60) -> Iterator[tuple[str, int, str]]:
    """``ledger serve`` over ``db_url`` on a free loopback port, a one-off finance token:
    yields (host, port, token) once it answers."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    token = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "LEDGER_API_TOKENS": f"finance:{hash_token(token)}",
        "LEDGER_LOG_FORMAT": "json",
        "LEDGER_LOG_LEVEL": "warning",
    }
    args = [str(LEDGER_BIN), "serve", "--db", db_url, "--port", str(port)]
    log = Path(tempfile.mkdtemp(prefix="bench-fresh-")) / "serve.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*args, "--interval", str(interval)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/openapi.json")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ledger serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield "127.0.0.1", port, token
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


class Poller(threading.Thread):
    """Stamps each probe's applied and visible moments (polled, each with a deadline)."""

    def __init__(self, store: Any, host: str, port: int, token: str) -> None:
        super().__init__(daemon=True, name="freshness-poller")
        self.store, self.host, self.port = store, host, port
        self.headers = {"Authorization": f"Bearer {token}"}
        self.lock = threading.Lock()
        self.waiting: list[Probe] = []
        self.done: list[Probe] = []
        self.stop = threading.Event()
        self.requests: list[float] = []  # seconds each API request took
        self.ticks: list[float] = []  # seconds each round over the outstanding probes took
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(API_IN_FLIGHT, thread_name_prefix="freshness-api")

    def add(self, probe: Probe) -> None:
        with self.lock:
            self.waiting.append(probe)

    def outstanding(self) -> int:
        with self.lock:
            return len(self.waiting)

    def _in_api(self, sharer: str) -> float | None:
        """When the API answered with the sharer's balance (None: not there yet). Each
        pool thread keeps its own keep-alive connection."""
        for attempt in (1, 2):  # a dropped keep-alive connection is opened again once
            try:
                if getattr(self.local, "http", None) is None:
                    self.local.http = http.client.HTTPConnection(self.host, self.port, timeout=5)
                sent = time.perf_counter()
                self.local.http.request("GET", f"/api/v1/sharers/{sharer}", headers=self.headers)
                response = self.local.http.getresponse()
                body = response.read()
                answered = time.perf_counter()
                self.requests.append(answered - sent)
                if response.status != 200:
                    raise SystemExit(f"GET /api/v1/sharers/{sharer}: {response.status} {body!r}")
                return answered if json.loads(body)["balances"] else None
            except (OSError, http.client.HTTPException):
                self.local.http = None
                if attempt == 2:
                    raise
        return None

    def _applied(self, order_ids: list[str]) -> set[str]:
        o = tables.orders
        with self.store.read() as conn:
            found = conn.execute(select(o.c.order_id).where(o.c.order_id.in_(order_ids)))
            return {row[0] for row in found}

    def tick(self) -> None:
        """One round: one query for the orders not yet applied, then the API for the
        applied ones (at most ``API_IN_FLIGHT`` requests at once). Stamps are taken when
        the answer is in: the delays are upper bounds, by at most one round."""
        with self.lock:
            waiting = list(self.waiting)
        if not waiting:
            return
        started = time.perf_counter()
        unapplied = [p.order_id for p in waiting if p.applied is None]
        fresh = self._applied(unapplied) if unapplied else set()
        queried = time.perf_counter()
        for probe in waiting:
            if probe.applied is None and probe.order_id in fresh:
                probe.applied = queried
        asking = [p for p in waiting if p.applied is not None]
        answers = self.pool.map(self._in_api, [p.sharer for p in asking])
        for probe, seen in zip(asking, answers, strict=True):
            probe.visible = seen
        for probe in waiting:
            if probe.visible is not None or started - probe.published > DEADLINE_S:
                with self.lock:
                    self.waiting.remove(probe)
                    self.done.append(probe)
        self.ticks.append(time.perf_counter() - started)

    def run(self) -> None:
        while not self.stop.wait(POLL_S):
            self.tick()


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 1)}


def measure_max_rate(bootstrap: str, pg_url: str, seed: int) -> float:
    """Ours, one consumer, through the bench's realistic mix as a backlog: steady records/s."""
    from bench import ours
    from bench.workloads import realistic

    topics = scratch_topics(f"bench-run-mix-s{seed}-e178949-p{PARTITIONS}")  # run.py's topics
    ensure_fixture(bootstrap, topics, PARTITIONS, realistic(seed, 30_000))
    run = ours.e2e(bootstrap, topics, pg_url, 1)
    return float(run["steady_records_per_s"] or run["records"] / run["seconds"])


def run(
    bootstrap: str,
    pg_url: str,
    max_rate: float,
    *,
    seconds: float = 60.0,
    probes_per_s: float = 4.0,
    interval: float = 1.0,
    seed: int = 2026,
) -> dict[str, Any]:
    """One freshness run at half of ``max_rate`` records/s for ``seconds``."""
    rate = max_rate / 2
    probes = int(seconds * probes_per_s)
    topics: Topics = scratch_topics(unique("bench-fresh"))
    recreate_topics(bootstrap, topics, PARTITIONS)
    stream = iter(LongStream(seed, 1 + int(rate * seconds * 1.2) // 170_000))
    log = Path(tempfile.mkdtemp(prefix="bench-fresh-")) / "consumer.log"
    with fresh_database(pg_url, prefix="bench_fresh_", ledger=True) as url:
        store = open_store(url)
        group = unique("bench-fresh")
        consumer = ConsumerProcess(url, bootstrap, group, topics, log)
        try:
            with Publisher(bootstrap, topics, auth=publisher_auth()) as publisher:
                # setup at full speed, applied before the clock starts: plans, the first
                # period's sharers, the probes' sharers
                event = next(stream)
                while event.BARRIER:
                    publisher.publish(event)
                    event = next(stream)
                for enrollment in enrollments(probes, START + 5_000):
                    publisher.publish(enrollment)
                publisher.flush()
                stream = itertools.chain([event], stream)
                ends = end_offsets(bootstrap, [topics.orders, topics.accounts])
                wait_until_applied(store, group, ends, 300, consumer.alive)
                with serving(url, interval) as (host, port, token):
                    poller = Poller(store, host, port, token)
                    poller.start()
                    sent = paced(publisher, stream, rate, seconds, probes, poller, consumer)
                    deadline = time.monotonic() + DEADLINE_S + 5
                    while poller.outstanding() and time.monotonic() < deadline:
                        time.sleep(0.1)
                    poller.stop.set()
                    poller.join(10)
                    poller.pool.shutdown()
        finally:
            consumer.terminate()
            store.dispose()
    out = summary(poller.done, probes, rate, max_rate, seconds, interval, sent)
    # the resolution of the stamps: a probe is seen at most one round after it is there
    out["api_request"] = percentiles(poller.requests)
    out["poll_round"] = percentiles(poller.ticks)
    return out


def paced(
    publisher: Publisher,
    stream: Iterator[Any],
    rate: float,
    seconds: float,
    probes: int,
    poller: Poller,
    consumer: ConsumerProcess,
) -> int:
    """Publish ``stream`` at ``rate`` events/s for ``seconds``, a probe every
    ``seconds / probes``; returns the events sent."""
    started = time.perf_counter()
    every = seconds / probes
    sent = probe = 0
    last_at = 0
    while True:
        now = time.perf_counter() - started
        if now >= seconds:
            return sent
        if probe < probes and now >= probe * every:
            click, order = probe_events(probe, max(last_at, START + DAY_MS))
            publisher.publish(click)
            publisher.publish(order)
            poller.add(Probe(probe_sharer(probe), order.order_id, time.perf_counter()))
            probe += 1
            consumer.alive()
        due = int(now * rate) - sent
        for _ in range(max(0, due)):
            event = next(stream)
            last_at = max(last_at, event.occurred_at)
            publisher.publish(event)
            sent += 1
        time.sleep(0.005)


def summary(
    done: list[Probe],
    probes: int,
    rate: float,
    max_rate: float,
    seconds: float,
    interval: float,
    sent: int,
) -> dict[str, Any]:
    seen = [p for p in done if p.visible is not None]
    applied = [p for p in done if p.applied is not None]
    visible = percentiles([p.visible - p.published for p in seen])  # type: ignore[operator]
    p99 = visible["p99_ms"]
    return {
        "max_rate": round(max_rate),
        "rate": round(rate),
        "published_per_s": round(sent / seconds),
        "seconds": seconds,
        "serve_interval_s": interval,
        "probes": probes,
        "visible": len(seen),
        "timed_out": probes - len(seen),
        "publish_to_visible": visible,
        "publish_to_applied": percentiles([p.applied - p.published for p in applied]),  # type: ignore[operator]
        "applied_to_visible": percentiles([p.visible - p.applied for p in seen]),  # type: ignore[operator]
        "target_p99_ms": TARGET_P99_S * 1000,
        "met": len(seen) == probes and p99 is not None and p99 < TARGET_P99_S * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-rate", type=float, help="records/s; default: measured first")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--probes", type=float, default=4.0, help="probes a second")
    parser.add_argument("--interval", type=float, default=1.0, help="ledger serve --interval")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    parser.add_argument("--pg-url", help="default: LEDGER_BENCH_PG_URL, else the deploy cluster's")
    args = parser.parse_args()
    pg_url = args.pg_url or default_pg_url()
    configure_logging("console", "warning")
    max_rate = args.max_rate or measure_max_rate(args.bootstrap, pg_url, args.seed)
    result = run(
        args.bootstrap,
        pg_url,
        max_rate,
        seconds=args.seconds,
        probes_per_s=args.probes,
        interval=args.interval,
        seed=args.seed,
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"freshness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
