"""Turns one bench/run.py result into rows with ratios and targets, a Markdown table and
a PNG chart (matplotlib, headless)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    section: str
    name: str
    rate: float
    unit: str
    ratios: str
    target: str  # "" when the row has no target


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _x(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def rows(result: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    mix, orders, large = result.get("mix"), result.get("orders"), result.get("large")
    if mix:
        out += _stream_rows("realistic mix", mix)
    if orders:
        out += _stream_rows("orders only", orders)
        out += _orders_rows(orders)
    if large and "error" not in large:
        out += _large_rows(large)
    if "heavy_buyers" in result:
        out += _heavy_rows(result["heavy_buyers"])
    pg_cost = result.get("pg_cost")
    if pg_cost and "error" not in pg_cost:
        out += pg_cost_rows(pg_cost)
    settlement = result.get("settlement")
    if settlement and "error" not in settlement:
        out += _settlement_rows(settlement)
    if result.get("freshness"):
        out += freshness_rows(result["freshness"])
    return out


def _heavy_rows(h: dict[str, Any]) -> list[Row]:
    """bench/heavy_buyers.py: the same orders, buyers with 10 vs N clicks in the window."""
    section = f"attribution vs history ({h['orders']:,} orders)"
    out = [
        Row(
            section,
            f"orders, buyers with {shape['clicks_per_buyer']:,} clicks each",
            h["orders_per_s"][name],
            "orders/s",
            "",
            "",
        )
        for name, shape in h["shapes"].items()
    ]
    ratio = h["cost_ratio"]
    out[-1] = Row(
        out[-1].section,
        out[-1].name,
        out[-1].rate,
        "orders/s",
        f"cost {ratio:.2f}x the light buyers'",
        f"<= 1.2x: {_met(ratio <= 1.2)}",
    )
    return out


def pg_cost_rows(g: dict[str, Any]) -> list[Row]:
    """bench/pg_cost.py: PostgreSQL's CPU per record on top of a small and a big ledger,
    per stream and schema (before / after revision 0007)."""
    small, big, step = g["sizes"]["small"], g["sizes"]["big"], g["sizes"]["step"]
    out: list[Row] = []
    for stream, label in (("orders", "orders only"), ("mix", "realistic mix")):
        s = g.get(stream)
        if not s:
            continue
        section = f"PostgreSQL per record, {label}"
        for schema, revision in g["revisions"].items():
            if f"growth_{schema}" not in s:
                continue
            first, last = s[f"{small}_{schema}"], s[f"{big}_{schema}"]
            growth = s[f"growth_{schema}"]
            out.append(
                Row(
                    section,
                    f"CPU per record, next {step:,} on {big:,} ({schema}: revision {revision})",
                    last["pg_cpu_us_per_record"],
                    "µs",
                    f"{growth:.2f}x the {first['pg_cpu_us_per_record']} µs on {small:,}",
                    f"flat (<= 1.2x): {_met(growth <= 1.2)}",
                )
            )
        if "growth_before" in s and "growth_after" in s:
            before, after = s[f"{big}_before"], s[f"{big}_after"]
            out.append(
                Row(
                    section,
                    f"after / before on {big:,} (same run)",
                    after["pg_cpu_us_per_record"],
                    "µs",
                    f"{_x(after['pg_cpu_us_per_record'], before['pg_cpu_us_per_record'])}; "
                    f"database {after['database_mib']:,} MiB vs {before['database_mib']:,}",
                    "",
                )
            )
    return out


def _settlement_rows(s: dict[str, Any]) -> list[Row]:
    """bench/bench_settlement.py: one run over every due order, by `ledger ingest`."""
    section = f"settlement run ({s['settled']:,} due orders)"
    after = s["after"]
    return [
        Row(
            section,
            "peak RSS of the `ledger ingest` process applying the run",
            after["peak_rss_mib"],
            "MiB",
            f"{after['peak_rss_mib'] / s['target_mib']:.2f}x the bound",
            f"< {s['target_mib']} MiB: {_met(after['peak_rss_mib'] < s['target_mib'])}",
        ),
        Row(section, "run, wall time", _rate(s["settled"], after["seconds"]), "orders/s", "", ""),
    ]


def freshness_rows(f: dict[str, Any]) -> list[Row]:
    """bench/freshness.py: publish -> commission visible in GET /api/v1/sharers/{id}."""
    section = f"freshness at {f['rate']:,} records/s (50% of {f['max_rate']:,})"

    def parts(key: str) -> str:
        return f"p50 {f[key]['p50_ms']} / p99 {f[key]['p99_ms']} ms"

    seen = f"{f['visible']}/{f['probes']} probes seen"
    detail = (
        f"{seen}; applied (Kafka + consumer batch) {parts('publish_to_applied')}; "
        f"view catch-up (ledger serve --interval {f['serve_interval_s']}) "
        f"{parts('applied_to_visible')}"
    )
    p99 = f["publish_to_visible"]["p99_ms"]
    return [
        Row(
            section, "publish -> visible, p50", f["publish_to_visible"]["p50_ms"] or 0, "ms", "", ""
        ),
        Row(
            section,
            "publish -> visible, p99",
            p99 or 0,
            "ms",
            detail,
            f"< 1 s: {_met(bool(f['met']))}",
        ),
    ]


def _stream_rows(section: str, s: dict[str, Any]) -> list[Row]:
    """Ceiling and ours on one stream, in records/s (events + barrier markers)."""
    consume = _rate(s["raw_consume"]["records"], s["raw_consume"]["seconds"])
    decode = _rate(s["raw_decode"]["records"], s["raw_decode"]["seconds"])
    one = _rate(s["e2e_1"]["records"], s["e2e_1"]["seconds"])
    steady = s["e2e_1"]["steady_records_per_s"]
    out = [
        Row(section, "ceiling: kafka-python consume", consume, "records/s", "1.00x consume", ""),
        Row(
            section,
            "ceiling: consume + Avro decode",
            decode,
            "records/s",
            f"{decode / consume:.1%} of consume",
            "",
        ),
        Row(
            section,
            "ours e2e, 1 consumer",
            one,
            "records/s",
            f"{one / decode:.1%} of consume+decode; steady (start-up excluded) "
            + (f"{steady:,.0f} = {steady / decode:.1%}" if steady else "n/a (run too short)"),
            f">= 25% of consume+decode (issue 22): {_met(one >= 0.25 * decode)}"
            if section == "realistic mix"
            else "",
        ),
    ]
    if s.get("e2e_2"):
        two = _rate(s["e2e_2"]["records"], s["e2e_2"]["seconds"])
        out.append(
            Row(
                section,
                "ours e2e, 2 consumers (one group)",
                two,
                "records/s",
                f"{_x(two, one)} one consumer; {two / decode:.1%} of consume+decode; steady "
                + _steady_ratio(s["e2e_2"]["steady_records_per_s"], steady),
                f">= 1.6x one: {_met(two >= 1.6 * one)}",
            )
        )
    for n in sorted(int(key[4:]) for key in s if key.startswith("e2e_") and key != "e2e_1"):
        if n == 2:
            continue
        run = s[f"e2e_{n}"]
        rate = _rate(run["records"], run["seconds"])
        out.append(
            Row(
                section,
                f"ours e2e, {n} consumers (one group)",
                rate,
                "records/s",
                f"{_x(rate, one)} one consumer; {rate / decode:.1%} of consume+decode",
                "",
            )
        )
    return out


def _steady_ratio(two: float | None, one: float | None) -> str:
    if not two or not one:
        return "n/a (run too short)"
    return f"{two:,.0f} = {two / one:.2f}x one's steady"


def _baseline_rate(b: dict[str, Any]) -> float:
    """Orders/s of a baseline over its orders phase (the enrollments before are not timed)."""
    return _rate(b["orders"], b["orders_seconds"])


def orders_phase_rate(run: dict[str, Any], orders: int, setup_records: int) -> float | None:
    """Ours in orders/s over the orders phase only, as the baselines are timed: from the
    first RSS/progress sample at which the setup records (the accounts topic) are applied
    to the end. None when no sample fell inside the orders phase."""
    samples = run["rss"].get("samples") or []
    at = next((x for x in samples if x[1] >= setup_records), None)
    if at is None or at[0] >= run["seconds"] or at[1] >= run["records"]:
        return None
    records_per_s = (run["records"] - at[1]) / (run["seconds"] - at[0])
    return orders * records_per_s / (run["records"] - setup_records)


def _orders_rows(s: dict[str, Any]) -> list[Row]:
    """Orders/s on the orders-only stream: ours against the baselines, both over the orders
    phase (ours whole, setup and start-up included, beside it)."""
    setup = s["e2e_1"].get("accounts_records", s["events"] - 2 * s["orders"])
    whole = _rate(s["orders"], s["e2e_1"]["seconds"])
    ours = orders_phase_rate(s["e2e_1"], s["orders"], setup) or whole
    naive = _baseline_rate(s["naive"]) if s.get("naive") else 0.0
    es = max((_baseline_rate(s[k]) for k in ("es_default", "es_cache") if s.get(k)), default=0.0)
    copy = _baseline_rate(s["copy"]) if s.get("copy") else 0.0
    out = [
        Row(
            "orders only",
            "ours e2e, 1 consumer, orders phase (like the baselines)",
            ours,
            "orders/s",
            f"{_x(ours, naive)} naive; {_x(ours, es)} eventsourcing (best); {_x(ours, copy)} COPY",
            f">= 30x naive: {_met(ours >= 30 * naive)}; >= 100x eventsourcing: "
            f"{_met(ours >= 100 * es)}; >= 0.3x COPY: {_met(ours >= 0.3 * copy)}",
        ),
        Row(
            "orders only",
            "ours e2e, 1 consumer, whole run (setup + start-up timed too)",
            whole,
            "orders/s",
            f"{_x(whole, naive)} naive; {_x(whole, es)} eventsourcing; {_x(whole, copy)} COPY",
            "",
        ),
    ]
    if s.get("e2e_2"):
        two = orders_phase_rate(s["e2e_2"], s["orders"], setup) or 0.0
        out.append(
            Row(
                "orders only",
                "ours e2e, 2 consumers, orders phase",
                two,
                "orders/s",
                f"{_x(two, ours)} one consumer's orders phase",
                "",
            )
        )
    names = {
        "naive": "naive: ORM, commit per event",
        "es_default": "peer: eventsourcing (defaults)",
        "es_cache": "peer: eventsourcing (aggregate cache)",
        "copy": "bare batched COPY (no rules/hash/log)",
    }
    if s.get("commit_probe"):
        c = s["commit_probe"]
        out.append(
            Row(
                "orders only",
                "context: PostgreSQL one-row commits (what bounds a commit per event)",
                c["commits_per_s"],
                "commits/s",
                f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms",
                "",
            )
        )
    for key, name in names.items():
        if s.get(key):
            rate = _baseline_rate(s[key])
            out.append(
                Row(
                    "orders only",
                    f"{name}, {s[key]['orders']:,} orders",
                    rate,
                    "orders/s",
                    f"ours is {_x(ours, rate)}",
                    "",
                )
            )
    return out


def _large_rows(g: dict[str, Any]) -> list[Row]:
    section = f"large ledger ({g['postings']:,} postings)"
    ingest = _rate(g["events"], g["ingest_seconds"])
    rebuild = _rate(g["postings"], g["rebuild_seconds"])
    verify = _rate(g["entries"], g["verify_seconds"])
    chains = _rate(g["entries"], g.get("verify_chains_seconds", 0))
    per_view = [
        Row(
            section,
            f"view rebuild: {name} alone ({g['view_rows'][name]:,} rows written)",
            _rate(g["postings"], seconds),
            "postings/s",
            f"{_rate(g['postings'], seconds) / 500_000:.2f}x target",
            "",
        )
        for name, seconds in g.get("rebuild_view_seconds", {}).items()
    ]
    chains_row = (
        [
            Row(
                section,
                f"verify, hash chains only (--no-replay; ok={g['verify_chains_ok']})",
                chains * 60,
                "entries/min",
                f"{chains * 60 / 1_000_000:.2f}x target",
                f">= 1M/min: {_met(chains * 60 >= 1_000_000)}",
            )
        ]
        if chains
        else []
    )
    return [
        Row(section, "build: LedgerService.ingest, no Kafka", ingest, "events/s", "", ""),
        Row(
            section,
            "view rebuild (all views)",
            rebuild,
            "postings/s",
            f"{rebuild / 500_000:.2f}x target",
            f">= 500k/s: {_met(rebuild >= 500_000)}",
        ),
        *per_view,
        *chains_row,
        Row(
            section,
            f"verify, full: chains + replay through the rules (ok={g['verify_ok']})",
            verify * 60,
            "entries/min",
            f"{verify * 60 / 1_000_000:.2f}x target",
            f">= 1M/min: {_met(verify * 60 >= 1_000_000)}",
        ),
        *_daily_rows(section, g),
        Row(section, "balance query p50", g["balance_p50_ms"], "ms", "", ""),
        Row(
            section,
            "balance query p99",
            g["balance_p99_ms"],
            "ms",
            f"{g['balance_p99_ms'] / 5:.2f}x the 5 ms bound",
            f"< 5 ms: {_met(g['balance_p99_ms'] < 5)}",
        ),
    ]


def _daily_rows(section: str, g: dict[str, Any]) -> list[Row]:
    """Issue 22: the daily check (a day's events from the signed checkpoint) beside the
    full one; its cost should be the day's, not the history's."""
    if "daily_seconds" not in g:
        return []
    seconds = g["daily_seconds"]
    full = g["verify_seconds"]
    return [
        Row(
            section,
            f"verify, daily: {g['daily_events']:,} new events from the checkpoint "
            f"(ok={g['daily_ok']})",
            seconds,
            "s",
            f"{seconds / full:.3f}x the full check's {full:.1f} s",
            f"{_rate(g['daily_entries'], seconds) * 60:,.0f} entries/min",
        )
    ]


def rss_rows(result: dict[str, Any]) -> list[str]:
    """One line per e2e run: RSS at start/end, and the last quarter against the first."""
    lines = []
    for stream in ("mix", "orders"):
        for key in _e2e_keys(result.get(stream)):
            run = (result.get(stream) or {}).get(key)
            if not run or "first_mib" not in run["rss"]:
                continue
            r = run["rss"]
            ok = 0.8 <= r["late_vs_early"] <= 1.2
            lines.append(
                f"| {stream} {key} | {run['records']:,} | {r['first_mib']} | {r['last_mib']} | "
                f"{r['max_mib']} | {r['late_vs_early']:.2f} | {_met(ok)} |"
            )
    return lines


def cpu_rows(result: dict[str, Any]) -> list[str]:
    """One line per e2e run: CPU per record of the consumers, PostgreSQL and Kafka."""
    lines = []
    for stream in ("mix", "orders"):
        for key in _e2e_keys(result.get(stream)):
            run = (result.get(stream) or {}).get(key)
            cpu = (run or {}).get("cpu")
            if not cpu:
                continue
            total = (
                cpu["consumers_us_per_record"]
                + cpu["postgres_us_per_record"]
                + cpu["kafka_us_per_record"]
            )
            lines.append(
                f"| {stream} {key} | {cpu['consumers_us_per_record']} | "
                f"{cpu['postgres_us_per_record']} | {cpu['kafka_us_per_record']} | "
                f"{total:.1f} | {cpu['cores_busy']} |"
            )
    return lines


def _e2e_keys(stream: dict[str, Any] | None) -> list[str]:
    """e2e_1, e2e_2, … of a stream's result, by group size."""
    keys = [k for k in (stream or {}) if k.startswith("e2e_")]
    return sorted(keys, key=lambda k: int(k[4:]))


def _fmt(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def _caveats(result: dict[str, Any]) -> list[str]:
    """Lines that say how far the run got."""
    out = []
    if not result.get("complete", True):
        out.append("**Incomplete run**: only the sections finished so far are below.")
    if result.get("retried_after_database_loss"):
        again = ", ".join(result["retried_after_database_loss"])
        out.append(f"Steps run again after PostgreSQL went away: {again}.")
    if "error" in (result.get("large") or {}):
        out.append(f"Large ledger not measured: {result['large']['error']}")
    return ["", *out] if out else []


def markdown(result: dict[str, Any]) -> str:
    head = [
        f"# bench/run.py {result['time']}",
        "",
        f"Machine: {result['machine']}, {result['cpus']} cores; {result['note']}",
        *_caveats(result),
        "",
        f"Sizes: {result['sizes']}",
        "",
        f"Domain (ledger/compiled.py): {result.get('domain', 'interpreted (not recorded)')}",
        "",
        "| stream | measure | rate | unit | ratios | target |",
        "|---|---|---:|---|---|---|",
    ]
    body = [
        f"| {r.section} | {r.name} | {_fmt(r.rate)} | {r.unit} | {r.ratios} | {r.target} |"
        for r in rows(result)
    ]
    rss = rss_rows(result)
    tail = []
    if rss:
        tail = [
            "",
            "Consumer RSS (sum over the group's processes), sampled every half second;"
            " first/last/quarters from 10% of the records on (after warm-up):",
            "",
            "| run | records | first MiB | last MiB | max MiB | last/first quarter | flat ±20% |",
            "|---|---:|---:|---:|---:|---:|---|",
            *rss,
        ]
    cpu = cpu_rows(result)
    if cpu:
        tail += [
            "",
            "CPU per record (µs; consumers from /proc, PostgreSQL: the postmaster and its"
            " children, Kafka: the broker) and the cores busy on average during the run:",
            "",
            "| run | consumers | PostgreSQL | Kafka | total | cores busy |",
            "|---|---:|---:|---:|---:|---:|",
            *cpu,
        ]
    return "\n".join(head + body + tail) + "\n"


def chart(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = rows(result)
    panels = [
        ("realistic mix: records/s", [r for r in table if r.section == "realistic mix"]),
        ("orders only: orders/s", [r for r in table if r.unit == "orders/s"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(20, 6))
    for ax, (title, chosen) in zip(axes[:2], panels, strict=True):
        names = [r.name for r in chosen][::-1]
        ax.barh(names, [r.rate for r in chosen][::-1], color="tab:blue")
        ax.set_xscale("log")
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=7)
        for y, r in enumerate(chosen[::-1]):
            ax.text(r.rate, y, f" {_fmt(r.rate)}", va="center", fontsize=7)
    ax = axes[2]
    for stream in ("mix", "orders"):
        for key in _e2e_keys(result.get(stream)):
            run = (result.get(stream) or {}).get(key)
            if run and run["rss"].get("samples"):
                samples = run["rss"]["samples"]
                ax.plot(
                    [s[1] for s in samples], [s[2] / 1024 for s in samples], label=f"{stream} {key}"
                )
    ax.set_xlabel("records applied")
    ax.set_ylabel("consumer RSS, MiB")
    ax.set_title("consumer RSS over the run")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
