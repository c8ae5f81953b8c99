"""The soak (issue 25 §3): steady publishing for a long time, consumers restarted now and
then; memory and lag must stay flat. A documented command, not part of CI.

    .venv/bin/python -m bench.soak --minutes 60            # the hour
    .venv/bin/python -m bench.soak --minutes 5 --restart-every 60   # a short check

Publishes the long run's stream (bench/long_stream.py: realistic periods chained in
time) through ``Publisher`` at ``--rate`` events/s into fresh scratch topics, while
``--consumers`` `ledger consume` processes of one group apply it to a fresh PostgreSQL
database; every ``--restart-every`` seconds one of them (in turn) is stopped with SIGTERM
and started again. Every ``--sample`` seconds: each consumer's RSS and the group's lag
(records published but not yet applied, from the offsets stored in the ledger). At the
end, publishing stops and the consumers must drain the lag; ``verify`` must pass.

"Flat": the median of the last quarter of the samples against the first quarter (RSS of
the largest consumer; lag), and the lag drained at the end. Results:
bench/results/soak-<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.ceiling import recreate_topics
from bench.long_stream import EVENTS_PER_PERIOD, LongStream
from bench.support import (
    DEFAULT_KAFKA,
    RESULTS,
    ConsumerProcess,
    Event,
    LedgerService,
    Publisher,
    applied_offsets,
    default_pg_url,
    end_offsets,
    fresh_database,
    open_store,
    publisher_auth,
    rss_kib,
    scratch_topics,
    unique,
    verify,
    wait_until_applied,
)

PARTITIONS = 4


def lag(bootstrap: str, names: list[str], service: LedgerService, group: str) -> int | None:
    """Records on the topics that the group has not applied (None: database unreachable)."""
    ends = end_offsets(bootstrap, names)
    stored = applied_offsets(service, group)
    if stored is None:
        return None
    return sum(max(0, end - stored.get(tp, 0)) for tp, end in ends.items())


def ahead(events: Iterator[Event], size: int = 50_000) -> Iterator[Event]:
    """``events`` generated on a thread, up to ``size`` ahead of the publisher: opening a
    period (generating all its events) then does not pause the publishing."""
    buffer: queue.Queue[Event | None] = queue.Queue(size)

    def fill() -> None:
        for event in events:
            buffer.put(event)
        buffer.put(None)

    threading.Thread(target=fill, daemon=True, name="soak-stream").start()
    while (event := buffer.get()) is not None:
        yield event


def run(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    # small periods (a sixth of the long run's): opening one generates all its events, a
    # pause in the publishing that must stay short against the sampling
    per_period = EVENTS_PER_PERIOD // 6
    periods = 1 + int(args.rate * seconds * 1.1) // per_period
    stream = ahead(iter(LongStream(args.seed, periods, orders=LongStream.orders // 6)))
    topics = scratch_topics(unique("bench-soak"))
    names = [topics.orders, topics.accounts]
    recreate_topics(args.bootstrap, topics, PARTITIONS)
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    group = unique("bench-soak")
    samples: list[dict[str, Any]] = []
    restarts = 0
    with fresh_database(default_pg_url(), prefix="bench_soak_", ledger=True) as url:
        store = open_store(url, migrate=False)
        service = LedgerService(store)
        consumers = [
            ConsumerProcess(url, args.bootstrap, group, topics, folder / f"consumer-{n}.log")
            for n in range(args.consumers)
        ]
        try:
            with Publisher(args.bootstrap, topics, auth=publisher_auth()) as publisher:
                started = time.monotonic()
                sent = 0
                next_sample, next_restart = 0.0, args.restart_every
                while (now := time.monotonic() - started) < seconds:
                    for _ in range(int(now * args.rate) - sent):
                        publisher.publish(next(stream))
                        sent += 1
                    if now >= next_sample:
                        publisher.flush()
                        for consumer in consumers:
                            consumer.alive()
                        sizes = [rss_kib(c.pid) or 0 for c in consumers]
                        behind = lag(args.bootstrap, names, service, group)
                        samples.append(
                            {"t": round(now, 1), "sent": sent, "lag": behind, "rss_kib": sizes}
                        )
                        print(
                            f"{now:7.0f} s  sent {sent:>9}  lag {behind}  rss {sizes}", flush=True
                        )
                        next_sample = now + args.sample
                    if now >= next_restart:
                        n = restarts % len(consumers)
                        consumers[n].terminate()
                        consumers[n] = ConsumerProcess(
                            url, args.bootstrap, group, topics, folder / f"consumer-{n}.log"
                        )
                        restarts += 1
                        next_restart = now + args.restart_every
                    time.sleep(0.005)
                publisher.flush()
            drain_started = time.monotonic()
            ends = end_offsets(args.bootstrap, names)
            wait_until_applied(
                store, group, ends, args.drain_timeout, lambda: [c.alive() for c in consumers]
            )
            drained_s = round(time.monotonic() - drain_started, 1)
            checked = verify(store)
        finally:
            for consumer in consumers:
                consumer.terminate()
            store.dispose()
    return summary(args, samples, sent, restarts, drained_s, checked.ok, checked.entries_checked)


def summary(
    args: argparse.Namespace,
    samples: list[dict[str, Any]],
    sent: int,
    restarts: int,
    drained_s: float,
    verify_ok: bool,
    entries: int,
) -> dict[str, Any]:
    quarter = max(1, len(samples) // 4)
    first, last = samples[:quarter], samples[-quarter:]

    def median(rows: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return statistics.median(values) if values else None

    for row in samples:
        row["rss_max_kib"] = max(row["rss_kib"] or [0])
    return {
        "command": "soak",
        "minutes": args.minutes,
        "rate": args.rate,
        "published": sent,
        "consumers": args.consumers,
        "restart_every_s": args.restart_every,
        "restarts": restarts,
        "rss_max_kib": {
            "first_quarter": median(first, "rss_max_kib"),
            "last_quarter": median(last, "rss_max_kib"),
        },
        "lag": {
            "first_quarter": median(first, "lag"),
            "last_quarter": median(last, "lag"),
            "max": max((r["lag"] for r in samples if r["lag"] is not None), default=None),
        },
        "drained_after_s": drained_s,
        "verify_ok": verify_ok,
        "entries": entries,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s published")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--restart-every", type=float, default=300.0, help="seconds")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    args = parser.parse_args()
    result = run(args)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    shown = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(shown, indent=2))
    print(f"results: {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
