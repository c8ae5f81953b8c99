"""Load on the HTTP API as finance, auditors and publishers put it (issue 25 §3).

Two commands, both bounded in time and requests, on 127.0.0.1 only:

``sweep``: finance readers only (balances, a sharer, an order's payouts, dead letters; one
token; keep-alive), N at once for ``--seconds`` each, for N in ``--clients``: throughput,
p50/p99/max latency and the statuses per step. A 503 is honoured (the reader waits its
Retry-After). This is the run that collapsed at 64 clients before admission.

``mixed``: finance and auditor readers (closed loop) and publishers submitting events at a
fixed total rate (each waits for its answer; a 503 is retried with the same event after
Retry-After, as a client should) for ``--seconds``; with ``--kafka`` the server publishes to
Kafka and ``--consumers`` `ledger consume` processes apply the events meanwhile, else the
server applies them itself (the demo's embedded mode). Then it waits for the consumers
to apply everything and checks that every accepted (200/202) event is in the ledger's
event log exactly once, and that ``verify`` passes. Per endpoint: requests/s, p50/p99.

    .venv/bin/python -m bench.http_load sweep --clients 1,16,64,128,256 [--pg]
    .venv/bin/python -m bench.http_load mixed --seconds 180 --pg --kafka
    .venv/bin/python -m bench.http_load mixed --seconds 180 --pg --kafka --before /tmp/main

``--pg``: a fresh scratch database on the deploy cluster (LEDGER_BENCH_PG_URL), else a
SQLite file in a temporary folder. Both start from the demo's ledger (seed 7, 300 orders).
Results: bench/results/http-<command>-<stamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.ceiling import recreate_topics
from bench.http_client import Connection
from bench.support import (
    DEFAULT_KAFKA,
    LEDGER_BIN,
    REPO,
    RESULTS,
    ClickRecorded,
    ConsumerProcess,
    Event,
    LedgerService,
    OrderPlaced,
    Received,
    cpu_seconds,
    default_pg_url,
    end_offsets,
    fresh_database,
    generate,
    hash_token,
    open_store,
    runner,
    scratch_topics,
    tables,
    unique,
    verify,
    wait_until_applied,
)
from ledger.domain.permissions import may_submit
from ledger.jsonform import event_to_json

ROLES = ("finance", "auditor", "publisher")
FINANCE_READS = [
    "/api/v1/balances?limit=50",
    "/api/v1/sharers/u00001",
    "/api/v1/orders/ord-000001/payouts",
    "/api/v1/dead-letters?limit=50",
]
AUDITOR_READS = [
    "/api/v1/audit/entries?order_id=ord-000002",
    "/api/v1/totals",
    "/api/v1/sharers/u00002",
]
PARTITIONS = 4


# --- the ledger and the server -------------------------------------------------------------


@contextmanager
def demo_ledger(pg: bool) -> Iterator[str]:
    """A ledger holding the demo's events (seed 7, 300 orders), views caught up: its URL."""
    with ExitStack() as stack:
        if pg:
            url = stack.enter_context(fresh_database(default_pg_url(), "bench_http_", ledger=True))
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-"))
            url = f"sqlite:///{folder}/ledger.sqlite"
        store = open_store(url)
        try:
            events = generate(7, orders=300).all()
            LedgerService(store).ingest(
                [Received(e, f"demo:{n}", "demo") for n, e in enumerate(events, 1)]
            )
            runner.catch_up(store)
        finally:
            store.dispose()
        yield url


@dataclasses.dataclass
class Server:
    port: int
    tokens: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@contextmanager
def serving(
    url: str,
    port: int,
    *,
    queue: int | None = None,
    kafka: dict[str, str] | None = None,
    source: Path | None = None,
) -> Iterator[Server]:
    """``ledger serve`` over ``url`` on ``port`` with a fresh token per role; with
    ``kafka`` (LEDGER_* settings) it publishes there (``--kafka``). ``source``: run the
    server of another checkout (e.g. ``git archive`` of an older commit) for a before/after
    comparison on the same ledger and machine."""
    with socket.socket() as probe:  # another server left on the port would answer for it
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken: stop what listens there, or pass --port")
    tokens = {role: secrets.token_urlsafe(18) for role in ROLES}
    env = {
        **os.environ,
        **(kafka or {}),
        "LEDGER_API_TOKENS": ",".join(f"{r}:{hash_token(t)}" for r, t in tokens.items()),
        "LEDGER_LOG_FORMAT": "json",
        "LEDGER_LOG_LEVEL": "warning",
    }
    command = [str(LEDGER_BIN)]
    if source is not None:
        env["PYTHONPATH"] = str(source)
        command = [sys.executable, "-c", "from ledger.cli import main; main()"]
    args = [*command, "serve", "--db", url, "--port", str(port)]
    if queue is not None:
        args += ["--queue", str(queue)]
    if kafka is not None:
        args.append("--kafka")
    log = Path(tempfile.mkdtemp(prefix="bench-http-")) / "serve.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(  # cwd: the checkout's own packages come first
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=source or REPO
        )
    server = Server(port, tokens, log, process)
    try:
        asyncio.run(_until_up(server))
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


async def _until_up(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = await Connection(server.port, timeout=2).request("GET", "/openapi.json", {})
            if answer.status == 200 and server.process.poll() is None:
                return
        except (TimeoutError, OSError):
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"ledger serve did not start: {server.log.read_text()[-2000:]}")
        await asyncio.sleep(0.1)


# --- what the clients record ---------------------------------------------------------------


@dataclasses.dataclass
class Record:
    latencies: dict[str, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = dataclasses.field(
        default_factory=lambda: defaultdict(Counter)
    )
    problems: Counter[str] = dataclasses.field(default_factory=Counter)
    accepted: list[str] = dataclasses.field(default_factory=list)  # event ids
    by_status: dict[int, list[float]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    retry_after: Counter[int] = dataclasses.field(default_factory=Counter)  # of the 503s

    def note(self, endpoint: str, status: int, seconds: float, headers: dict[str, str]) -> None:
        self.latencies[endpoint].append(seconds)
        self.statuses[endpoint][status] += 1
        self.by_status[status].append(seconds)
        if status == 503 and "retry-after" not in headers:
            self.problems["503 without Retry-After"] += 1
        elif status == 503:
            self.retry_after[int(headers["retry-after"])] += 1
        elif status not in (200, 202, 503):
            self.problems[f"{endpoint}: {status}"] += 1


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 1)}


def endpoint_of(path: str) -> str:
    """``/api/v1/sharers/u00001`` -> ``GET /sharers/{id}``: one row per route."""
    parts = path.split("?")[0].removeprefix("/api/v1").split("/")
    named = {"sharers": "{id}", "orders": "{id}"}
    out = [
        p if n == 0 or parts[n - 1] not in named else named[parts[n - 1]]
        for n, p in enumerate(parts)
    ]
    return "/".join(out)


def table(record: Record, seconds: float) -> dict[str, Any]:
    rows = {}
    for endpoint in sorted(record.latencies):
        statuses = record.statuses[endpoint]
        rows[endpoint] = {
            "requests": len(record.latencies[endpoint]),
            "ok_per_s": round((statuses[200] + statuses[202]) / seconds, 1),
            "statuses": dict(sorted(record.statuses[endpoint].items())),
            **percentiles(record.latencies[endpoint]),
        }
    return rows


# --- sweep ---------------------------------------------------------------------------------


async def reader(
    server: Server, role: str, paths: list[str], deadline: float, record: Record
) -> None:
    conn = Connection(server.port)
    n = 0
    try:
        while time.monotonic() < deadline:
            path = paths[n % len(paths)]
            n += 1
            endpoint = f"GET {endpoint_of(path)}"
            try:
                answer = await conn.request("GET", path, server.headers(role))
            except (TimeoutError, OSError, ConnectionError) as exc:
                record.problems[f"{endpoint}: {type(exc).__name__}"] += 1
                continue
            record.note(endpoint, answer.status, answer.seconds, answer.headers)
            if answer.status == 503:  # back off as asked, but not past the step's end
                retry = float(answer.headers.get("retry-after", "1"))
                await asyncio.sleep(min(retry, max(0.0, deadline - time.monotonic())))
    finally:
        await conn.close()


async def sweep_step(server: Server, clients: int, seconds: float) -> dict[str, Any]:
    record = Record()
    server_cpu, client_cpu = cpu_seconds(server.process.pid), time.process_time()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(reader(server, "finance", FINANCE_READS, deadline, record) for _ in range(clients))
    )
    took = time.monotonic() - started
    every = [s for values in record.latencies.values() for s in values]
    statuses: Counter[int] = sum(record.statuses.values(), Counter())
    return {
        "clients": clients,
        "seconds": round(took, 1),
        "ok_per_s": round(statuses[200] / took, 1),
        "statuses": dict(sorted(statuses.items())),
        "all": percentiles(every),
        "by_status": {str(k): percentiles(v) for k, v in sorted(record.by_status.items())},
        "problems": dict(record.problems),
        "requests": len(every),
        "retry_after_s": dict(sorted(record.retry_after.items())),
        # the server's CPU (of 2 cores here) and this client's, both busy on one machine
        "server_cpu_s": round(cpu_seconds(server.process.pid) - server_cpu, 1),
        "client_cpu_s": round(time.process_time() - client_cpu, 1),
    }


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Each step on this checkout's server; with ``--server-source`` also on that one
    (\"before\"), the two steps back to back so that both see the same machine load."""
    sources: dict[str, Path | None] = {"after": None}
    if args.server_source is not None:
        sources = {"before": args.server_source, "after": None}
    steps: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    with ExitStack() as stack:
        url = stack.enter_context(demo_ledger(args.pg))
        servers = {
            name: stack.enter_context(serving(url, args.port + n, queue=args.queue, source=source))
            for n, (name, source) in enumerate(sources.items())
        }
        for number, clients in enumerate(args.clients):
            order = list(servers.items())
            for name, server in order if number % 2 == 0 else order[::-1]:  # no order bias
                step = asyncio.run(sweep_step(server, clients, args.seconds))
                steps[name].append(step)
                a = step["all"]
                busy = step["by_status"].get("503")
                print(
                    f"{name:>6} {clients:5d} clients: {step['ok_per_s']:7.1f} ok/s  "
                    f"p50 {a['p50_ms']} ms  p99 {a['p99_ms']} ms  max {a['max_ms']} ms  "
                    f"{step['statuses']} cpu {step['server_cpu_s']}+{step['client_cpu_s']} s"
                    + (f"  503s: p50 {busy['p50_ms']} p99 {busy['p99_ms']} ms" if busy else ""),
                    flush=True,
                )
        logs = {name: server.log.read_text(errors="replace") for name, server in servers.items()}
    return {
        "command": "sweep",
        "backend": "postgresql" if args.pg else "sqlite",
        "servers": {name: str(source or "this checkout") for name, source in sources.items()},
        "queue": args.queue,
        "seconds_per_step": args.seconds,
        "steps": steps,
        "pool_timeouts_in_log": {
            name: log.count("database unavailable") for name, log in logs.items()
        },
    }


# --- mixed ---------------------------------------------------------------------------------


def publisher_streams(publishers: int, seed: int) -> list[list[Event]]:
    """Per publisher, a platform of its own (its own sharers, buyers, orders: ids tagged
    ``p<n>-``): its enrollments, then in time order each order preceded by the click it
    names, and the completions and refunds (the other clicks left out, so that a few
    minutes hold many orders); no plans, the demo's are in force."""
    streams = []
    for n in range(publishers):
        work = generate(seed + n, orders=400, tag=f"p{n}-")
        clicks = {e.click_id: e for e in work.activity if isinstance(e, ClickRecorded)}
        stream: list[Event] = [e for e in work.setup if may_submit("publisher", e.TYPE)]
        for event in sorted(work.activity, key=lambda e: e.occurred_at):
            if isinstance(event, ClickRecorded):
                continue
            if isinstance(event, OrderPlaced) and event.click_id in clicks:
                stream.append(clicks.pop(event.click_id))
            stream.append(event)
        streams.append(stream)
    return streams


async def publisher(
    server: Server, events: list[Event], rate: float, deadline: float, record: Record
) -> int:
    """Submit ``events`` in order at ``rate`` a second until ``deadline``; a 503 is
    retried with the same event (the same id: idempotent) after its Retry-After."""
    conn = Connection(server.port)
    headers = {**server.headers("publisher"), "Content-Type": "application/json"}
    started = time.monotonic()
    sent = 0
    try:
        for event in events:
            due = started + sent / rate
            if due >= deadline or time.monotonic() >= deadline:
                break  # behind schedule at the end: the shortfall shows in the rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            body = json.dumps(event_to_json(event)).encode()
            while True:
                try:
                    answer = await conn.request("POST", "/api/v1/events", headers, body)
                except (TimeoutError, OSError, ConnectionError) as exc:
                    record.problems[f"POST /events: {type(exc).__name__}"] += 1
                    break
                record.note("POST /events", answer.status, answer.seconds, answer.headers)
                if answer.status in (200, 202):
                    record.accepted.append(event.event_id)
                if answer.status != 503 or time.monotonic() > deadline + 30:
                    break
                await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
            sent += 1
    finally:
        await conn.close()
    return sent


async def mixed_load(
    server: Server, args: argparse.Namespace, streams: list[list[Event]]
) -> tuple[Record, float]:
    record = Record()
    started = time.monotonic()
    deadline = started + args.seconds
    each = args.rate / max(1, args.publishers)
    tasks = [
        reader(server, "finance", FINANCE_READS, deadline, record) for _ in range(args.finance)
    ]
    tasks += [
        reader(server, "auditor", AUDITOR_READS, deadline, record) for _ in range(args.auditors)
    ]
    tasks += [publisher(server, stream, each, deadline, record) for stream in streams]
    await asyncio.gather(*tasks)
    return record, time.monotonic() - started


def exactly_once(url: str, accepted: list[str]) -> dict[str, Any]:
    """Every accepted event id in the event log exactly once, and the ledger verifies."""
    store = open_store(url, migrate=False)
    e = tables.events
    try:
        counts: Counter[str] = Counter()
        with store.read() as conn:
            for start in range(0, len(accepted), 500):
                chunk = accepted[start : start + 500]
                rows = conn.execute(
                    select(e.c.event_id, func.count())
                    .where(e.c.event_id.in_(chunk))
                    .group_by(e.c.event_id)
                ).all()
                counts.update({str(event_id): int(n) for event_id, n in rows})
        checked = verify(store)
    finally:
        store.dispose()
    missing = [i for i in accepted if counts[i] == 0]
    doubled = [i for i, n in counts.items() if n > 1]
    return {
        "accepted": len(accepted),
        "accepted_distinct": len(set(accepted)),
        "in_ledger_once": sum(1 for n in counts.values() if n == 1),
        "missing": missing[:20],
        "missing_count": len(missing),
        "doubled": doubled[:20],
        "verify_ok": checked.ok,
        "entries": checked.entries_checked,
    }


def mixed(args: argparse.Namespace) -> dict[str, Any]:
    """One mixed run on ``--server-source`` (default this checkout); with ``--before``, a
    run on that checkout first, then one on this one, back to back on the same machine,
    and the ratios after/before of the publishers' rate and the reads'."""
    if args.before is None:
        return mixed_once(args, args.server_source)
    runs = {"before": mixed_once(args, args.before), "after": mixed_once(args, None)}
    runs["before"]["server"] = str(args.before)

    def reads_per_s(run: dict[str, Any]) -> float:
        return sum(r["ok_per_s"] for e, r in run["endpoints"].items() if e.startswith("GET"))

    ratios = {
        "published_per_s": _ratio(
            runs["after"]["published_per_s"], runs["before"]["published_per_s"]
        ),
        "reads_per_s": _ratio(reads_per_s(runs["after"]), reads_per_s(runs["before"])),
    }
    print(f"after/before: {ratios}")
    return {"command": "mixed", "compare": True, "runs": runs, "after_over_before": ratios}


def _ratio(after: float, before: float) -> float | None:
    return round(after / before, 2) if before else None


def mixed_once(args: argparse.Namespace, source: Path | None) -> dict[str, Any]:
    streams = publisher_streams(args.publishers, args.seed)
    with ExitStack() as stack:
        url = stack.enter_context(demo_ledger(args.pg))
        kafka = None
        consumers: list[ConsumerProcess] = []
        if args.kafka:
            topics = scratch_topics(unique("bench-http"))
            recreate_topics(args.bootstrap, topics, PARTITIONS)
            kafka = {
                "LEDGER_KAFKA_BOOTSTRAP": args.bootstrap,
                "LEDGER_TOPIC_ORDERS": topics.orders,
                "LEDGER_TOPIC_ACCOUNTS": topics.accounts,
                "LEDGER_TOPIC_DEAD_LETTERS": topics.dead_letters,
            }
            group = unique("bench-http")
            folder = Path(tempfile.mkdtemp(prefix="bench-http-"))
            for n in range(args.consumers):
                consumer = ConsumerProcess(
                    url, args.bootstrap, group, topics, folder / f"consumer-{n}.log"
                )
                consumers.append(consumer)
                stack.callback(consumer.terminate)
        server = stack.enter_context(
            serving(url, args.port, queue=args.queue, kafka=kafka, source=source)
        )
        record, took = asyncio.run(mixed_load(server, args, streams))
        drained = None
        if args.kafka:
            started = time.monotonic()
            ends = end_offsets(args.bootstrap, [topics.orders, topics.accounts])
            store = open_store(url, migrate=False)
            try:
                wait_until_applied(store, group, ends, 300, lambda: [c.alive() for c in consumers])
            finally:
                store.dispose()
            drained = round(time.monotonic() - started, 1)
        log = server.log.read_text(errors="replace")
        check = exactly_once(url, record.accepted)
    out = {
        "command": "mixed",
        "backend": "postgresql" if args.pg else "sqlite",
        "server": str(source or "this checkout"),
        "path": f"kafka, {args.consumers} consumers" if args.kafka else "embedded",
        "clients": {
            "finance": args.finance,
            "auditor": args.auditors,
            "publisher": args.publishers,
        },
        "publish_rate": args.rate,
        "published_per_s": round(len(record.accepted) / args.seconds, 1),
        "queue": args.queue,
        "seconds": round(took, 1),
        "endpoints": table(record, took),
        "problems": dict(record.problems),
        "drained_after_s": drained,
        "pool_timeouts_in_log": log.count("database unavailable"),
        "exactly_once": check,
    }
    for endpoint, row in out["endpoints"].items():
        print(
            f"{endpoint:<32} {row['ok_per_s']:7.1f}/s  p50 {row['p50_ms']} ms  "
            f"p99 {row['p99_ms']} ms  max {row['max_ms']} ms  {row['statuses']}"
        )
    print(f"problems: {out['problems'] or 'none'}; exactly once: {check}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sweep", "mixed"):
        p = sub.add_parser(name)
        p.add_argument("--pg", action="store_true", help="PostgreSQL (else SQLite)")
        p.add_argument("--port", type=int, default=18600)
        p.add_argument("--queue", type=int, help="ledger serve --queue (default: its own)")
        p.add_argument(
            "--server-source",
            type=Path,
            help="serve from this checkout instead (PYTHONPATH), for a before/after run",
        )
        p.add_argument("--tag", default="", help="a suffix for the result file's name")
    s = sub.choices["sweep"]
    s.add_argument(
        "--clients", type=lambda v: [int(x) for x in v.split(",")], default=[1, 16, 64, 128, 256]
    )
    s.add_argument("--seconds", type=float, default=15.0, help="per step")
    m = sub.choices["mixed"]
    m.add_argument("--seconds", type=float, default=180.0)
    m.add_argument("--finance", type=int, default=48)
    m.add_argument("--auditors", type=int, default=16)
    m.add_argument("--publishers", type=int, default=16)
    m.add_argument("--rate", type=float, default=40.0, help="events/s, all publishers")
    m.add_argument("--seed", type=int, default=2500)
    m.add_argument("--kafka", action="store_true", help="serve --kafka with consumers")
    m.add_argument("--consumers", type=int, default=2)
    m.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    m.add_argument(
        "--before",
        type=Path,
        help="also run on this checkout first (e.g. `git archive` of main), back to back",
    )
    args = parser.parse_args()
    result = sweep(args) if args.command == "sweep" else mixed(args)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.tag}" if args.tag else ""
    path = RESULTS / f"http-{args.command}-{stamp}{suffix}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
