"""The long run's figures: per step, the targets of issue 22 §1, a Markdown table and a
PNG chart (matplotlib, headless). Works on a partial result too (a run cut short)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MIB_BOUND = 400.0  # consumer RSS, MiB
FLAT = 0.20  # RSS from the first step on, and CPU per record: within ±20%
KEPT = 0.85  # throughput over the last step >= 85% of that over the second


def steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per step: from a point to the next "mark" (a step ending where a new
    process started is not one: it spans the gap)."""
    out = []
    points = result.get("points", [])
    for before, after in zip(points, points[1:], strict=False):
        if after["kind"] != "mark" or after["records"] <= before["records"]:
            continue
        records = after["records"] - before["records"]
        seconds = after["seconds"] - before["seconds"]

        def us(name: str, a: dict[str, Any] = after, b: dict[str, Any] = before) -> float:
            return round((a[name] - b[name]) / (a["records"] - b["records"]) * 1e6, 1)

        out.append(
            {
                "records": after["records"],
                "step_records": records,
                "records_per_s": round(records / seconds) if seconds > 0 else None,
                "rss_mib": after["rss_mib"],
                "step_max_rss_mib": after.get("step_max_rss_mib"),
                "hwm_mib": after["hwm_mib"],
                "consumer_us": us("consumer_cpu_s"),
                "postgres_us": us("postgres_cpu_s"),
                "kafka_us": us("kafka_cpu_s"),
                "db_mib": after["db_mib"],
                "postgres_restarted": after["postgres_started"] != before["postgres_started"],
            }
        )
    return out


def window_rate(samples: list[list[float]], first: int, last: int) -> float | None:
    """Records/s between the moments ``first`` and ``last`` records were applied,
    interpolated between the half-second samples."""

    def when(records: int) -> float | None:
        previous = None
        for t, done, _ in samples:
            if done >= records:
                if previous is None or done == previous[1]:
                    return t
                t0, d0 = previous[0], previous[1]
                return t0 + (t - t0) * (records - d0) / (done - d0)
            previous = (t, done)
        return None

    start, end = when(first), when(last)
    if start is None or end is None or end <= start:
        return None
    return (last - first) / (end - start)


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of §1 with its figure and met / not met (None: not measured yet)."""
    step, total = result["step"], result["records"]
    samples, rows = result.get("samples", []), steps(result)
    done = samples[-1][1] if samples else 0
    out = []
    second = window_rate(samples, step, 2 * step)
    last = window_rate(samples, total - step, total) if done >= total else None
    ratio = last / second if last and second and total >= 3 * step else None
    out.append(
        {
            "target": f"throughput over the last {step:,} records >= {KEPT:.0%} of the second's",
            "figure": _ratio_text(ratio, f"{_n(last)} vs {_n(second)} records/s"),
            "met": None if ratio is None else ratio >= KEPT,
        }
    )
    warm = [r for r in rows if r["records"] >= step]
    if warm:
        first = warm[0]["rss_mib"]
        marks = [r["rss_mib"] for r in warm]
        spread = (min(marks) / first, max(marks) / first)
        flat = all(1 - FLAT <= m / first <= 1 + FLAT for m in marks)
        out.append(
            {
                "target": f"consumer RSS at every step flat within ±{FLAT:.0%} of the first's",
                "figure": f"{first} MiB at {warm[0]['records']:,}; "
                f"{spread[0]:.2f}x to {spread[1]:.2f}x of it",
                "met": flat if len(warm) > 1 else None,
            }
        )
        peak = max(r["step_max_rss_mib"] or r["rss_mib"] for r in warm)
        out.append(
            {
                "target": f"consumer RSS under {MIB_BOUND:.0f} MiB (largest sample from "
                f"{step:,} records on)",
                "figure": f"{peak} MiB (VmHWM of the whole run: {warm[-1]['hwm_mib']} MiB)",
                "met": peak < MIB_BOUND,
            }
        )
    # whole steps only: the tail after the last mark is a few records carrying the
    # run's fixed costs (the end of the stream, the last commit), not a rate
    whole = [r for r in rows if r["step_records"] >= step // 2]
    if len(whole) >= 3:
        first, last_row = whole[1], whole[-1]
        pg = last_row["postgres_us"] / first["postgres_us"] if first["postgres_us"] else None
        out.append(
            {
                "target": "PostgreSQL CPU per record does not grow (last whole step vs "
                f"second, within +{FLAT:.0%})",
                "figure": _ratio_text(
                    pg, f"{last_row['postgres_us']} vs {first['postgres_us']} µs/record"
                ),
                "met": None if pg is None else pg <= 1 + FLAT,
            }
        )
    return out


def _n(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ratio_text(ratio: float | None, detail: str) -> str:
    return f"{detail}" if ratio is None else f"{ratio:.2f}x ({detail})"


def _met(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**not met**")


def markdown(result: dict[str, Any]) -> str:
    stream = result["stream"]
    lines = [
        f"# Long run {result['time']}: {stream['variant']}, {result['records']:,} records"
        f" ({stream['periods']} periods, seed {stream['seed']})",
        "",
        f"Complete: {result.get('complete', False)}; attempts: "
        + "; ".join(
            f"{a['started']} {'ok' if not a['error'] else a['error'].splitlines()[0][:200]}"
            for a in result.get("attempts", [])
        ),
        "",
        "| target | figure | |",
        "|---|---|---|",
    ]
    lines += [f"| {t['target']} | {t['figure']} | {_met(t['met'])} |" for t in targets(result)]
    lines += [
        "",
        "Per step (CPU per record: the consumer, the PostgreSQL cluster, the Kafka broker):",
        "",
        "| records applied | records/s | RSS MiB | max RSS in step | HWM MiB "
        "| consumer µs | PostgreSQL µs | Kafka µs | ledger MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in steps(result):
        restarted = " (PostgreSQL restarted)" if r["postgres_restarted"] else ""
        lines.append(
            f"| {r['records']:,}{restarted} | {_n(r['records_per_s'])} | {r['rss_mib']} "
            f"| {r['step_max_rss_mib']} | {r['hwm_mib']} | {r['consumer_us']} "
            f"| {r['postgres_us']} | {r['kafka_us']} | {r['db_mib']:,} |"
        )
    points = [p for p in result.get("points", []) if p["kind"] == "mark"]
    if points:
        tables = sorted(points[-1]["tables_mib"].items(), key=lambda kv: -kv[1])[:8]
        lines += ["", "Largest tables at the end (MiB, indexes included): "]
        lines += ["", ", ".join(f"{name} {size:,}" for name, size in tables)]
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # whole steps only (the tail after the last mark is a few records of fixed costs)
    rows = [r for r in steps(result) if r["step_records"] >= result["step"] // 2]
    if not rows:
        return
    millions = [r["records"] / 1e6 for r in rows]
    fig, ((rate, rss), (cpu, size)) = plt.subplots(2, 2, figsize=(12, 8))
    fig.suptitle(
        f"bench/long.py {result['time']}: {result['stream']['variant']}, "
        f"{result['records']:,} records, one consumer"
    )
    rate.plot(millions, [r["records_per_s"] for r in rows], "o-")
    if len(rows) > 1 and rows[1]["records_per_s"]:
        rate.axhline(KEPT * rows[1]["records_per_s"], ls="--", c="grey", label="85% of step 2")
        rate.legend()
    rate.set(title="throughput per step", xlabel="records applied (M)", ylabel="records/s")
    samples = result.get("samples", [])
    rss.plot([s[1] / 1e6 for s in samples], [s[2] / 1024 for s in samples], lw=0.6, label="VmRSS")
    rss.plot(millions, [r["hwm_mib"] for r in rows], "k:", label="VmHWM")
    rss.axhline(MIB_BOUND, ls="--", c="red", label=f"{MIB_BOUND:.0f} MiB")
    first = next((r["rss_mib"] for r in rows if r["records"] >= result["step"]), None)
    if first:
        rss.axhspan(first * (1 - FLAT), first * (1 + FLAT), color="green", alpha=0.1, label="±20%")
    rss.legend(fontsize=8)
    rss.set(title="consumer memory", xlabel="records applied (M)", ylabel="MiB")
    for key, label in (("consumer_us", "consumer"), ("postgres_us", "PostgreSQL")):
        cpu.plot(millions, [r[key] for r in rows], "o-", label=label)
    cpu.plot(millions, [r["kafka_us"] for r in rows], "o-", label="Kafka")
    cpu.legend()
    cpu.set(title="CPU per record, per step", xlabel="records applied (M)", ylabel="µs")
    size.plot(millions, [r["db_mib"] / 1024 for r in rows], "o-")
    size.set(title="ledger database size", xlabel="records applied (M)", ylabel="GiB")
    for ax in (rate, rss, cpu, size):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def write(result: dict[str, Any], path: Path) -> None:
    """The .json, .md and .png of ``result`` at ``path`` (its .json name)."""
    path.write_text(json.dumps(result, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(result))
    chart(result, path.with_suffix(".png"))
