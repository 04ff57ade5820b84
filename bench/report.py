"""Print the performance page's figures table from the benchmarks' JSON results.

    .venv/bin/python bench/report.py [results folder]

Reads `<benchmark>-sqlite+orm.json` and `<benchmark>-postgresql+redis.json` (written by
`bench/ingest.py`, `clicks.py`, `dispatch.py`, `latency.py`, `isolation.py`) and prints, in
Markdown, when and under what load each ran, then one row per figure: min / median / max of the
runs, the baseline beside it, and the verdict the benchmark gave on the median. Nothing is
measured here; docs/performance.md pastes what this prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETUPS = (("sqlite+orm", "SQLite + ORM broker"), ("postgresql+redis", "PostgreSQL + Redis"))
BENCHMARKS = ("ingest", "clicks", "dispatch", "latency", "isolation")


def number(value) -> str:
    if isinstance(value, float) and not value.is_integer() or abs(value) < 10:
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,.0f}"


def spread(summary: dict, key: str, unit: str = "") -> str:
    figure = summary[key]
    return " / ".join(number(figure[part]) for part in ("min", "median", "max")) + unit


def verdict(results: dict, key: str) -> str:
    for target in results["targets"]:
        if target["key"] == key:
            return target["verdict"]
    return "—"


def not_reached(results: dict) -> str:
    """The runs that fell short of their target rate, as the benchmark judged them."""
    whys = {target["why"].strip() for target in results["targets"] if target["why"].strip()}
    return "".join(f" **{why}**" for why in sorted(whys))


def ratio_cell(ours: str, base: str, ratio: str, unit: str = "/s"):
    """A cell of our figure against its baseline's, and the ratio of the two."""

    def cell(results: dict, s: dict) -> str:
        return f"{spread(s, ours, unit)} vs {spread(s, base, unit)}: **{spread(s, ratio, '×')}**"

    return cell


def single100(results: dict, s: dict) -> str:
    return f"{spread(s, 'single100_per_s', '/s')}: **{spread(s, 'single100_ratio', '×')}**"


def paced_clicks(results: dict, s: dict) -> str:
    achieved = spread(s, "paced_achieved_rate", "/s")
    return f"achieved {achieved}{not_reached(results)}, p99 **{spread(s, 'paced_p99_ms', ' ms')}**"


def api_latency(results: dict, s: dict) -> str:
    achieved = spread(s, "achieved_rate", "/s")
    return (
        f"achieved {achieved}{not_reached(results)}; API p50 {spread(s, 'api_p50_ms', ' ms')}, "
        f"p99 **{spread(s, 'api_p99_ms', ' ms')}**"
    )


def sink_latency(results: dict, s: dict) -> str:
    received, expected = s["healthy_received"]["min"], s["healthy_expected"]["max"]
    return (
        f"p50 {spread(s, 'sink_p50_ms', ' ms')}, p99 **{spread(s, 'sink_p99_ms', ' ms')}** "
        f"({number(received)} of {number(expected)} received in the worst run)"
    )


def cpu_budget(results: dict, s: dict) -> str:
    if "cpu_ms_total" not in s:  # results written before the benchmark measured it
        return "not measured"
    parts = ", ".join(
        f"{name} {spread(s, f'cpu_ms_{part}')}"
        for part, name in (("api", "web"), ("worker", "worker"), ("database", "database server"))
    )
    return f"**{spread(s, 'cpu_ms_total', ' ms')}** ({parts}; {spread(s, 'cores_busy')} cores busy)"


def isolation(results: dict, s: dict) -> str:
    p99 = ratio_cell("hanging_p99_ms", "healthy_p99_ms", "p99_ratio", " ms")(results, s)
    rates = (
        f"API all answering {spread(s, 'all_healthy_rate', '/s')}, "
        f"⅓ hanging {spread(s, 'third_hanging_rate', '/s')}"
    )
    return f"{p99} ({rates}){not_reached(results)}"


# (benchmark, figure, its cell, the keys whose verdicts it shows, the target)
ROWS = [
    (
        "ingest",
        "single POST vs bare insert (`ingest.py`)",
        ratio_cell("single_per_s", "bare_per_s", "single_ratio"),
        ["single_ratio"],
        "≥ 1.0×",
    ),
    ("ingest", "the same, 100 matching postbacks", single100, ["single100_ratio"], "≥ 0.8×"),
    (
        "ingest",
        "bulk, calls of 1,000 one at a time, vs bare `bulk_create`",
        ratio_cell("bulk_per_s", "bare_bulk_per_s", "bulk_ratio"),
        ["bulk_ratio", "bulk_per_s"],
        "≥ 0.8×; ≥ 3,000/s",
    ),
    (
        "clicks",
        "tracking link vs bare insert + redirect (`clicks.py`)",
        ratio_cell("clicks_per_s", "bare_per_s", "ratio"),
        ["ratio"],
        "≥ 0.9×",
    ),
    ("clicks", "tracking link paced at 200/s", paced_clicks, ["paced_p99_ms"], "p99 ≤ 50 ms"),
    (
        "dispatch",
        "dispatch to a 100 ms sink vs raw aiohttp, same caps (`dispatch.py`)",
        ratio_cell("per_s@100ms", "raw_per_s@100ms", "ratio@100ms"),
        ["ratio@100ms", "per_s@100ms"],
        "≥ 0.5×; ≥ 2,000/s",
    ),
    (
        "dispatch",
        "CPU per delivered postback, ours vs raw",
        ratio_cell("cpu_ms_each@100ms", "raw_cpu_ms_each@100ms", "cpu_ratio@100ms", " ms"),
        ["cpu_ratio@100ms"],
        "≤ 2×",
    ),
    (
        "latency",
        "API at 100 conversions/s (`latency.py`)",
        api_latency,
        ["api_p99_ms"],
        "API p99 ≤ 100 ms at 100/s",
    ),
    ("latency", "commit → sink, same runs", sink_latency, ["sink_p99_ms"], "p99 ≤ 250 ms"),
    (
        "latency",
        "CPU per conversion, same runs, all processes (web, worker, database, Redis, client)",
        cpu_budget,
        [],
        "none (100/s on 2 cores allows 20 ms)",
    ),
    (
        "isolation",
        "isolation: healthy p99, ⅓ hanging vs all answering (`isolation.py`)",
        isolation,
        ["p99_ratio"],
        "≤ 1.2×",
    ),
]


def load(folder: Path) -> dict:
    found = {}
    for name in BENCHMARKS:
        for setup, _ in SETUPS:
            path = folder / f"{name}-{setup}.json"
            if path.exists():
                found[name, setup] = json.loads(path.read_text())
    return found


def report(folder: Path) -> str:
    found = load(folder)
    lines = ["Runs (results written at; 1-minute load average before and after each run):", ""]
    for name in BENCHMARKS:
        for setup, _ in SETUPS:
            results = found.get((name, setup))
            if not results:
                continue
            after = [run["load"][0] for run in results["runs"]]
            lines.append(
                f"- {name} {setup}: {results['when']}, {results['args']['repeats']} runs, "
                f"load {results['loadavg_before'][0]:.1f} before, "
                f"{min(after):.1f}–{max(after):.1f} after each run"
            )
    machines = {json.dumps(r["machine"], sort_keys=True) for r in found.values()}
    for machine in sorted(machines):
        m = json.loads(machine)
        lines.append(f"- machine: {m['cpus']} cores, {m['cpu_model']}, Python {m['python']}")
    lines += ["", "| figure | " + " | ".join(label for _, label in SETUPS) + " | target |"]
    lines.append("| --- | --- | --- | --- |")
    for name, label, cell, keys, target in ROWS:
        cells, verdicts = [], []
        for setup, _ in SETUPS:
            results = found.get((name, setup))
            if results is None:
                cells.append("not run")
                verdicts.append("—")
                continue
            cells.append(cell(results, results["summary"]))
            verdicts.append("/".join(verdict(results, key) for key in keys))
        judged = f"{target}: {', '.join(verdicts)}" if keys else target
        lines.append(f"| {label} | {' | '.join(cells)} | {judged} |")
    return "\n".join(lines)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    print(report(folder))
