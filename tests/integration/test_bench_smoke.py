"""bench/run.py's pieces still fit together (a few seconds; the benchmark itself is not run):
its helpers work against the real PostgreSQL, and its report renders every section."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench import heavy_buyers, pg_cost, probe, report, workloads
from bench.support import (
    REPO,
    _ours,
    cpu_seconds,
    fresh_database,
    rss_kib,
    server_cpu,
    summarize_rss,
)


def test_scratch_database_is_created_and_dropped(pg_url: str) -> None:
    with fresh_database(pg_url, prefix="bench_smoke_") as url:
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        engine.dispose()
        name = url.rsplit("/", 1)[1]
    admin = create_engine(pg_url)
    with admin.connect() as conn:
        left = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        assert left.first() is None
    admin.dispose()
    assert probe.commits_per_second(pg_url, commits=20)["commits"] == 20


def test_orders_only_stream_is_setup_then_click_and_order() -> None:
    events = workloads.orders_only(1, 10, sharers=20)
    assert len(events) == 2 + 20 + 2 * 10
    assert workloads.count_orders(events) == 10
    assert events[-1].click_id == events[-2].click_id  # type: ignore[attr-defined]


def test_heavy_buyers_row_measures_both_ledgers_and_renders(pg_url: str) -> None:
    figures = heavy_buyers.run(pg_url, 30, heavy_clicks=100, batch=10, total_clicks=1_000)
    assert figures["shapes"] == {
        "light": {"buyers": 100, "clicks_per_buyer": 10},
        "heavy": {"buyers": 10, "clicks_per_buyer": 100},
    }
    assert set(figures["orders_per_s"]) == {"light", "heavy"}
    assert all(rate > 0 for rate in figures["orders_per_s"].values())
    rendered = report.markdown(
        {"time": "t", "machine": "m", "cpus": 2, "note": "n", "sizes": {}, "heavy_buyers": figures}
    )
    assert "buyers with 100 clicks each" in rendered and "<= 1.2x" in rendered


def _run(records: int, seconds: float) -> dict:
    samples = [(t * 0.5, int(records * t / 10), 100_000 + t) for t in range(11)]
    return {
        "records": records,
        "accounts_records": 22,
        "seconds": seconds,
        "steady_records_per_s": records / seconds,
        "rss": summarize_rss(samples, records),
        "cpu": {
            "consumers_us_per_record": 70.0,
            "postgres_us_per_record": 27.0,
            "kafka_us_per_record": 2.0,
            "cores_busy": 1.0,
        },
    }


def test_report_renders_every_section(tmp_path: Path) -> None:
    raw = {"records": 1000, "seconds": 0.1}
    stream = {"raw_consume": raw, "raw_decode": raw, "e2e_1": _run(1000, 2.0)}
    stream["e2e_2"] = _run(1000, 1.2)
    baseline = {"orders": 10, "orders_seconds": 1.0}
    result = {
        "time": "t",
        "machine": "m",
        "cpus": 2,
        "note": "n",
        "sizes": {},
        "mix": {**stream, "events": 1000, "orders": 100},
        "orders": {
            **stream,
            "events": 1020,
            "orders": 499,
            "naive": baseline,
            "es_default": baseline,
            "es_cache": baseline,
            "copy": baseline,
            "commit_probe": {"commits_per_s": 900, "p50_ms": 1.0, "p99_ms": 3.0},
        },
        "large": {
            "events": 100,
            "ingest_seconds": 1.0,
            "postings": 1000,
            "rebuild_seconds": 0.5,
            "entries": 200,
            "verify_seconds": 0.1,
            "verify_ok": True,
            "daily_events": 10,
            "daily_entries": 4,
            "daily_seconds": 0.01,
            "daily_ok": True,
            "balance_p50_ms": 1.0,
            "balance_p99_ms": 2.0,
        },
        "settlement": {
            "settled": 1000,
            "target_mib": 500,
            "after": {"peak_rss_mib": 120.0, "seconds": 2.0},
        },
        "freshness": {
            "rate": 4000,
            "max_rate": 8000,
            "probes": 240,
            "visible": 240,
            "serve_interval_s": 1.0,
            "publish_to_visible": {"p50_ms": 700.0, "p99_ms": 1400.0},
            "publish_to_applied": {"p50_ms": 300.0, "p99_ms": 600.0},
            "applied_to_visible": {"p50_ms": 400.0, "p99_ms": 900.0},
            "met": False,
        },
    }
    table = report.markdown(result)
    assert "ours e2e, 2 consumers" in table and "balance query p99" in table
    assert "verify, daily: 10 new events from the checkpoint (ok=True)" in table
    assert "settlement run (1,000 due orders)" in table and "< 500 MiB: met" in table
    assert "| publish -> visible, p99 | 1,400 | ms |" in table and "< 1 s: **not met**" in table
    assert "| mix e2e_1 | 70.0 | 27.0 | 2.0 | 99.0 | 1.0 |" in table  # CPU per record
    report.chart(result, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 1000
    assert (rss_kib(os.getpid()) or 0) > 0


def test_cpu_of_the_servers_and_of_this_process_is_read() -> None:
    busy = time.process_time() + 0.05
    while time.process_time() < busy:  # burn a little CPU to see it counted
        pass
    assert cpu_seconds(os.getpid()) > 0
    cpu = server_cpu()  # the suite's Kafka and PostgreSQL run on this machine
    assert cpu["kafka_s"] > 0 and cpu["postgres_s"] > 0


def test_pg_cost_measures_both_sizes_and_schemas_and_renders(pg_url: str) -> None:
    """bench/pg_cost.py end to end at a toy size: a ledger built at the revision before
    0007, copied at two sizes, each copy measured as it is and upgraded; its rows render."""
    result = pg_cost.run(
        pg_url,
        small=400,
        big=800,
        step=200,
        warm=20,
        streams=["orders"],
        schemas=["before", "after"],
        seed=3,
        keep=False,
    )
    orders = result["orders"]
    for key in ("400_before", "400_after", "800_before", "800_after"):
        assert orders[key]["records"] == 200
        assert orders[key]["pg_cpu_us_per_record"] > 0
        assert any(s["query"].startswith("COPY") for s in orders[key]["statements"])
        assert "ix_postings_account" in orders[key]["relations"]
    assert result["revisions"]["before"] != result["revisions"]["after"]
    assert set(pg_cost.growths(result)) == {"orders before", "orders after"}
    table = report.markdown(
        {"time": "t", "machine": "m", "cpus": 2, "note": "", "sizes": {}, "pg_cost": result}
    )
    assert "PostgreSQL per record, orders only" in table and "flat (<= 1.2x)" in table
    admin = create_engine(pg_url)
    with admin.connect() as conn:
        left = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'pgcost%s3%'"))
        assert left.all() == []  # the built ledgers are dropped without --keep
    admin.dispose()


def test_only_this_checkouts_servers_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_CACHE_DIR", raising=False)
    ours = [f"-D{REPO.resolve()}/.cache/postgres/data"]
    theirs = ["-D/elsewhere/.cache/postgres/data"]
    assert _ours([(1, theirs), (2, ours)]) == [2]
    assert _ours([(1, theirs), (3, theirs)]) == [1, 3]  # none ours: servers started elsewhere
