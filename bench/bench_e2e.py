"""End-to-end ingestion benchmark: Kafka topic → ConsumerLoop → PostgreSQL ledger.

    .venv/bin/python bench/bench_e2e.py [--orders 50000] [--partitions 4] [--profile]

Loads a large fixture once: the activity phase of ``simulate.generate`` (clicks, orders,
completions, refunds: ~6 events per order) into a topic named after its parameters, and
reuses that topic on later runs when it holds exactly the expected number of records.
Then, in the same run, it measures:

(a) ``raw``: kafka-python consume + Avro decode of the whole topic, consumer tuned as
    ``CONSUMER_DEFAULTS`` (the ceiling: no database at all);
(b) ``e2e``: the same topic through ``ConsumerLoop`` into a fresh PostgreSQL database
    (setup events, plans and enrollments, applied first through the service), from the
    loop's start until the offsets stored in the database reach the end offsets.

Prints a table, writes ``bench/results/e2e-<time>.json``, and reports e2e/raw (target
≥ 50%). ``--profile`` runs the loop under pyinstrument and writes the text and HTML
profiles next to the JSON. Env: LEDGER_BENCH_KAFKA (127.0.0.1:19092), LEDGER_BENCH_PG_URL
(the deploy/postgres cluster's ledger database; a scratch database is created beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from consumers.loop import CONSUMER_DEFAULTS, ConsumerConfig, ConsumerLoop
from consumers.metrics import ConsumerMetrics
from ledger.logs import configure_logging
from ledger.service import LedgerService, Received
from ledger.simulate import generate
from ledger.store.base import open_store
from ledger.topics import record_key
from schemas.codec import DecodeError, default_codec
from tests.kafka_helpers import (
    ConsumerProcess,
    end_offsets,
    fresh_database,
    unique,
    wait_for_partitions,
    wait_until_applied,
)

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_PG = "postgresql+psycopg2://ledger:ledger@127.0.0.1:55432/ledger"


def workload(args: argparse.Namespace) -> Any:
    return generate(seed=args.seed, sharers=args.sharers, buyers=args.buyers, orders=args.orders)


def ensure_fixture(bootstrap: str, topic: str, partitions: int, events: list) -> dict:
    """Create and fill ``topic`` unless it already holds exactly ``len(events)`` records."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if topic in admin.list_topics():
            ends = end_offsets(bootstrap, [topic])
            if sum(ends.values()) == len(events) and len(ends) == partitions:
                return {"reused": True, "load_seconds": 0.0}
            print(f"topic {topic} holds {sum(ends.values())} records, want {len(events)}: "
                  "recreating", flush=True)
            admin.delete_topics([topic])
            deadline = time.monotonic() + 60
            while topic in admin.list_topics():
                if time.monotonic() > deadline:
                    raise SystemExit(f"topic {topic} was not deleted within 60 s")
                time.sleep(0.2)
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    wait_for_partitions(bootstrap, {topic: partitions})
    codec = default_codec()
    started = time.perf_counter()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024,
                             acks="all", enable_idempotence=True)
    try:
        for event in events:
            producer.send(topic, key=record_key(event), value=codec.encode(event))
        producer.flush()
    finally:
        producer.close()
    loaded = sum(end_offsets(bootstrap, [topic]).values())
    if loaded != len(events):
        raise SystemExit(f"loaded {loaded} records into {topic}, expected {len(events)}")
    return {"reused": False, "load_seconds": round(time.perf_counter() - started, 2)}


def raw_consume(bootstrap: str, topic: str, count: int) -> dict:
    """(a) kafka-python consume + decode, tuned like the ledger consumer, no database."""
    options = {k: v for k, v in CONSUMER_DEFAULTS.items()
               if k not in ("session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms")}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **options)
    codec = default_codec()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen = bad = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while seen < count:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    try:
                        codec.decode(record.value)
                    except DecodeError:
                        bad += 1
                seen += len(records)
            if time.monotonic() > deadline:
                raise SystemExit(f"raw consume stuck at {seen}/{count}")
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return {"records": seen, "undecodable": bad, "seconds": round(seconds, 3),
            "records_per_s": round(seen / seconds)}


def e2e_consume(bootstrap: str, topic: str, pg_url: str, setup: list, count: int,
                profile_to: Path | None) -> dict:
    """(b) the topic through ConsumerLoop into a fresh PostgreSQL ledger."""
    with fresh_database(pg_url, prefix="bench_e2e_") as url:
        store = open_store(url)
        service = LedgerService(store)
        service.ingest([Received(e, f"setup:{i}", "bench/setup") for i, e in enumerate(setup)])
        group = unique("bench-e2e")
        metrics = ConsumerMetrics()
        loop = ConsumerLoop(ConsumerConfig(bootstrap, group, (topic,)), service, metrics)
        ends = end_offsets(bootstrap, [topic])
        timing: dict[str, float] = {}

        def watch() -> None:
            """Stop the loop once the database holds the end offsets of every partition."""
            while not loop.stopping:
                stored = service.stored_offsets(group)
                if all(stored.get(k, 0) >= v for k, v in ends.items()):
                    timing["caught_up"] = time.perf_counter()
                    loop.stop()
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        profiler = None
        if profile_to is not None:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001)
            profiler.start()
        timing["start"] = time.perf_counter()
        watcher.start()
        loop.run()  # in this thread, so the profiler sees it
        if profiler is not None:
            profiler.stop()
            profile_to.with_suffix(".txt").write_text(
                profiler.output_text(unicode=True, color=False, show_all=False))
            profile_to.with_suffix(".html").write_text(profiler.output_html())
        watcher.join(5)
        seconds = timing["caught_up"] - timing["start"]
        batch = metrics.batch_seconds.collect()[0]
        in_batches = next(s.value for s in batch.samples if s.name.endswith("_sum"))
        store.dispose()
    return {"records": count, "batches": loop.batches, "seconds": round(seconds, 3),
            "seconds_in_batches": round(in_batches, 3), "events_per_s": round(count / seconds)}


def e2e_processes(bootstrap: str, topic: str, pg_url: str, setup: list, count: int,
                  consumers: int, log_dir: Path) -> dict:
    """(c) optional: ``consumers`` ``ledger consume`` processes of one group (scale-out)."""
    with fresh_database(pg_url, prefix="bench_e2e_") as url:
        store = open_store(url)
        service = LedgerService(store)
        service.ingest([Received(e, f"setup:{i}", "bench/setup") for i, e in enumerate(setup)])
        group = unique("bench-e2e-n")
        ends = end_offsets(bootstrap, [topic])
        started = time.perf_counter()
        procs = [ConsumerProcess(url, bootstrap, group, [topic], log_dir / f"consumer-{n}.log",
                                 env={"LEDGER_LOG_LEVEL": "warning"}).start()
                 for n in range(consumers)]
        try:
            wait_until_applied(store, group, ends, 1800,
                               alive=lambda: [p.alive() for p in procs] and None)
            seconds = time.perf_counter() - started
        finally:
            for proc in procs:
                proc.terminate()
        store.dispose()
    return {"consumers": consumers, "records": count, "seconds": round(seconds, 3),
            "events_per_s": round(count / seconds)}


def table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGER_BENCH_KAFKA", DEFAULT_KAFKA))
    parser.add_argument("--pg-url", default=os.environ.get("LEDGER_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--buyers", type=int, default=20_000)
    parser.add_argument("--sharers", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="profile (b) with pyinstrument")
    parser.add_argument("--processes", type=int, default=0,
                        help="also run this many `ledger consume` processes of one group")
    args = parser.parse_args()
    configure_logging("console", "warning")

    work = workload(args)
    topic = f"bench-e2e-s{args.seed}-o{args.orders}-b{args.buyers}-p{args.partitions}"
    count = len(work.activity)
    print(f"fixture: {count} activity events in {topic}", flush=True)
    fixture = ensure_fixture(args.bootstrap, topic, args.partitions, work.activity)
    raw = raw_consume(args.bootstrap, topic, count)
    print(f"raw consume+decode: {raw['records_per_s']} records/s", flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    profile_to = RESULTS / f"e2e-{stamp}-profile" if args.profile else None
    e2e = e2e_consume(args.bootstrap, topic, args.pg_url, work.setup, count, profile_to)
    ratio = e2e["events_per_s"] / raw["records_per_s"]
    scaled = None
    if args.processes:
        scaled = e2e_processes(args.bootstrap, topic, args.pg_url, work.setup, count,
                               args.processes, Path(tempfile.mkdtemp(prefix="bench-e2e-")))
    result = {
        "benchmark": "bench_e2e", "time": stamp, "machine": platform.node(),
        "cpus": os.cpu_count(), "topic": topic, "partitions": args.partitions,
        "events": count, "fixture": fixture, "raw": raw, "e2e": e2e,
        "ratio": round(ratio, 4), "target_ratio": 0.5, "profiled": args.profile,
        "processes": scaled,
        "consumer_defaults": {k: v for k, v in CONSUMER_DEFAULTS.items()},
    }
    out = RESULTS / f"e2e-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table([
        ("measure", "events", "seconds", "events/s"),
        ("raw consume+decode", str(raw["records"]), str(raw["seconds"]),
         str(raw["records_per_s"])),
        ("e2e ConsumerLoop→PG", str(count), str(e2e["seconds"]), str(e2e["events_per_s"])),
        ("ratio e2e/raw", "", "", f"{ratio:.1%} (target ≥ 50%)"),
        *([(f"e2e {scaled['consumers']} processes", str(count), str(scaled["seconds"]),
            f"{scaled['events_per_s']} ({scaled['events_per_s'] / raw['records_per_s']:.1%})")]
          if scaled else []),
    ]))
    print(f"results: {out}" + (f"; profile: {profile_to}.txt/.html" if profile_to else ""))


if __name__ == "__main__":
    main()
