"""The benchmarks still run as documented (docs/performance.md), at tiny sizes: each repeats on
fresh databases that it removes afterwards, and reports min / median / max and PASS/MISS."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "ingest": ["--seconds", "0.5", "--bulk-calls", "1"],
    "dispatch": ["--n", "50"],
    "latency": ["--rate", "10", "--seconds", "1"],
    "isolation": ["--rate", "10", "--seconds", "1"],
    "clicks": ["--rate", "10", "--seconds", "0.5"],
}


def run_bench(name: str, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_RESULTS": str(results)}
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        env["BENCH_DATABASE_URL"] = os.environ["DATABASE_URL"]
    args = ["--repeats", "2", "--warmup", "0.2", *TINY[name]]
    return subprocess.run(
        [sys.executable, f"bench/{name}.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def leftover_databases(template: str) -> list:
    if template.startswith("/"):
        return [p for p in [Path(template).parent] if p.exists()]
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres") as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [template + "%"]
        )
        return rows.fetchall()


@pytest.mark.parametrize("name", list(TINY))
def test_benchmark_runs_on_fresh_databases_and_reports_its_spread(name, tmp_path):
    done = run_bench(name, tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    [path] = tmp_path.glob(f"{name}-*.json")
    result = json.loads(path.read_text())
    assert len(result["runs"]) == 2
    assert result["summary"] and all(
        set(spread) == {"min", "median", "max"} for spread in result["summary"].values()
    )
    assert result["targets"] and {t["verdict"] for t in result["targets"]} <= {"PASS", "MISS"}
    assert "min / median / max" in done.stdout
    if name in ("latency", "isolation", "clicks"):  # paced: the rate achieved beside the target
        assert "achieved" in done.stdout and "of 10/s" in done.stdout
    if name == "latency":  # where each conversion's CPU went: the web, the worker, the client
        for run in (r["figures"] for r in result["runs"]):
            assert run["cpu_ms_api"] > 0 and run["cpu_ms_worker"] > 0
            assert run["cpu_ms_total"] >= run["cpu_ms_api"] + run["cpu_ms_worker"]
        assert "CPU ms per conversion: api" in done.stdout
    assert leftover_databases(result["template_database"]) == []
