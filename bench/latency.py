"""Latency: conversions posted through the API (gunicorn, 2 workers, and a qcluster) at a steady
rate to 30 affiliates' postbacks; the API's answer time, and the time from each delivery's row
(its `created` stamp, set in the transaction that commits it) to the sink receiving it.

    .venv/bin/python bench/latency.py [--rate 100] [--seconds 20]

The rate achieved is measured (answers per second) and printed next to the target; a run that
falls short fails the targets. Each run has a fresh database and a warm-up at the same rate.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402

AFFILIATES = 30


def post_conversions(env, args, *, hanging: bool = False, label: str = "") -> tuple[dict, dict]:
    """One run: post at args.rate for args.seconds; the figures, and the commit -> sink
    latencies of postbacks to healthy endpoints by transaction id.

    The same 30 affiliates either way; with `hanging`, every third one's postbacks go to a
    receiver that never answers (its own host:port, as a real dead receiver), so healthy work
    is the same with and without. Without, every postback goes to the answering sink: none
    may point at a /hang path, which would make the sink's own endpoint fail, open its circuit
    breaker and leave the healthy deliveries to the sweeper (a ~50 s tail)."""
    with common.sinks(0, 0) as (sink, dead):
        hang_url = dead.url + "/hang" if hanging else ""
        clicks = common.demo_rows(AFFILIATES, sink.url, hang_url=hang_url)
        token = common.api_token()
        web, base = common.start_gunicorn(env)
        try:
            with common.qcluster(env) as cluster:
                _, warm = asyncio.run(paced_posts(base, token, clicks, args.rate, args.warmup, "w"))
                common.wait_until(lambda: set(warm) <= set(sink.times()), 30, every=0.5)
                meter = common.CpuMeter(web.pid, cluster.pid)
                meter.start()
                paced, txns = asyncio.run(paced_posts(base, token, clicks, args.rate, args.seconds))
                common.wait_until(lambda: set(txns) <= set(sink.times()), 60, every=0.5)
                cpu = meter.stop(max(1, int(args.rate * args.seconds)))
                times = sink.times()
        finally:
            common.stop_gunicorn(web)
        latencies = common.commit_to_sink(times, txns)
    sink_ms = common.latency_ms(list(latencies.values()))
    common.print_paced(f"{label}API answers", paced)
    print(
        f"  {label}commit -> sink: p50 {sink_ms['p50_ms']} ms, p99 {sink_ms['p99_ms']} ms "
        f"({sink_ms['n']}/{len(txns)} healthy postbacks received)"
    )
    common.print_cpu(label, cpu)
    figures = {
        "target_rate": args.rate,
        "achieved_rate": paced["achieved_rate"],
        "rate_reached": paced["rate_reached"],
        "api_errors": paced["errors"],
        "api_p50_ms": paced["p50_ms"],
        "api_p99_ms": paced["p99_ms"],
        "sink_p50_ms": sink_ms["p50_ms"],
        "sink_p99_ms": sink_ms["p99_ms"],
        "sink_max_ms": sink_ms["max_ms"],
        "healthy_expected": len(txns),
        "healthy_received": sink_ms["n"],
        **cpu,
    }
    return figures, latencies


async def paced_posts(base, token, clicks, rate: float, seconds: float, prefix: str = "t"):
    """Post int(rate * seconds) conversions at `rate`, round-robin over the clicks; the paced
    result and the transaction ids that went to healthy endpoints and were answered 201."""
    txns = []
    async with common.session(token) as http:

        async def send(i):
            click = clicks[i % len(clicks)]
            txn = f"{prefix}{i}"
            body = {"cid": click.cid, "conversion_type": "sale", "transaction_id": txn}
            async with http.post(base + "/api/v1/conversions/", json=body) as response:
                await response.read()
                if response.status == 201 and not click.hanging:
                    txns.append(txn)
                return response.status == 201

        result = await common.paced(rate, max(1, int(rate * seconds)), send)
    return result, txns


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--rate", type=float, default=100, help="conversions per second")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    bench = common.Bench("latency", args)
    for _ in range(args.repeats):
        with bench.run() as env:
            bench.record(post_conversions(env, args)[0])
    print()
    bench.target("API answer p99 ms", "api_p99_ms", "<=", 100, needs="rate_reached")
    bench.target("commit -> sink p99 ms", "sink_p99_ms", "<=", 250, needs="rate_reached")
    bench.finish({"gunicorn_workers": 2, "affiliates": AFFILIATES})


if __name__ == "__main__":
    main()
