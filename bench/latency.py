"""End-to-end latency: conversions posted through the API (gunicorn, 2 workers) at a steady
rate; time from the API's 201 to the sink receiving the postback, p50/p95/p99. Baseline: the
queue's floor, a django-q2 task that sends one request, enqueued at the same rate (time from
enqueue to the sink receiving it).

    .venv/bin/python bench/latency.py [--rate 100] [--seconds 20]
"""

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402


def paced(count: int, rate: float, fn) -> float:
    """Call fn(i) for i in range(count) at `rate` per second (from a thread pool); returns the
    rate achieved (calls started per second)."""
    with ThreadPoolExecutor(max_workers=32) as pool:
        start = time.monotonic()
        for i in range(count):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(fn, i)
        return count / (time.monotonic() - start)


def stats(latencies: list[float]) -> dict:
    ms = [x * 1000 for x in latencies]
    return {
        "n": len(ms),
        "p50_ms": round(common.percentile(ms, 50), 1),
        "p95_ms": round(common.percentile(ms, 95), 1),
        "p99_ms": round(common.percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else None,
    }


def queue_floor(env, rate: float, seconds: float) -> dict:
    from django_q.tasks import async_task

    sink = common.FastSink()
    cluster = common.start_qcluster(env, "bench-latency-floor")
    sent = {}
    try:

        def one(i):
            sent[f"floor-{i}"] = time.time()
            async_task("bench.tasks.ping", f"{sink.url}/pb?txn=floor-{i}")

        count = int(rate * seconds)
        paced(count, rate, one)
        deadline = time.monotonic() + 60
        while sink.count() < count and time.monotonic() < deadline:
            time.sleep(0.2)
        times = sink.get("/__times")
    finally:
        common.stop_qcluster(cluster)
        sink.stop()
    return stats([times[k] - t for k, t in sent.items() if k in times])


def api_to_sink(env, rate: float, seconds: float, *, hang_every: int = 0, label="") -> dict:
    """Post conversions at `rate`; latency of postbacks to healthy receivers."""
    import requests

    sink, hanging = common.FastSink(), common.FastSink()
    clicks = common.demo_rows(30, sink.url, hang_url=hanging.url + "/hang", hang_every=hang_every)
    token = common.api_token()
    web, base = common.start_gunicorn(env, workers=2)
    cluster = common.start_qcluster(env, "bench-latency-qcluster")
    answered, failures, api_times = {}, [], []
    local = threading.local()
    run = f"{label}{time.time():.0f}"

    def one(i):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
        click = clicks[i % len(clicks)]
        txn = f"{run}-{i}"
        started = time.monotonic()
        response = session.post(
            base + "/api/v1/conversions/",
            json={"cid": click.cid, "conversion_type": "sale", "transaction_id": txn},
        )
        api_times.append(time.monotonic() - started)
        if response.status_code != 201:
            failures.append(response.status_code)
        elif not click.hanging:
            answered[txn] = time.time()

    try:
        count = int(rate * seconds)
        achieved = paced(count, rate, one)
        deadline = time.monotonic() + 60
        while len(set(answered) & set(sink.get("/__times"))) < len(answered):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        times = sink.get("/__times")
    finally:
        common.stop_qcluster(cluster)
        common.stop_gunicorn(web)
        sink.stop()
        hanging.stop()
    latencies = [times[k] - t for k, t in answered.items() if k in times]
    result = {
        "posted": count,
        "post_rate_achieved": round(achieved, 1),
        "api_response": stats(api_times),
        "api_errors": len(failures),
        "healthy_postbacks": len(answered),
        "healthy_received": len(latencies),
        "hanging_endpoints": f"1 in {hang_every}" if hang_every else "none",
        **stats(latencies),
    }
    print(
        f"{label or 'api->sink'}: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
        f"p99 {result['p99_ms']} ms ({len(latencies)}/{len(answered)} received, "
        f"{achieved:.0f} posts/s)"
    )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    env = common.configure("latency")
    load = os.getloadavg()
    floor = queue_floor(env, args.rate, args.seconds)
    print(f"queue floor: p50 {floor['p50_ms']} ms, p95 {floor['p95_ms']}, p99 {floor['p99_ms']}")
    run = api_to_sink(env, args.rate, args.seconds)
    common.write_results(
        "latency",
        {
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "target": "p50 <= 150 ms, p99 <= 1 s at 100 conversions/s",
            "queue_floor": floor,
            "api_to_sink": run,
            "p50_ratio_to_floor": round(run["p50_ms"] / floor["p50_ms"], 2),
        },
        load,
    )


if __name__ == "__main__":
    main()
