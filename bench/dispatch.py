"""Dispatch throughput: N pending deliveries sent and logged by a real qcluster, per second,
against a raw asyncio client (aiohttp, 1,000 in flight) firing the same requests at the same
sink. Sink latency 0 ms and 100 ms.

    .venv/bin/python bench/dispatch.py [--n 5000] [--workers 2]

Database: /tmp/trackdesk-bench-dispatch.sqlite3, or BENCH_DATABASE_URL (PostgreSQL) and
REDIS_URL for the Redis broker.
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402


async def raw_client(url: str, n: int, in_flight: int = 1000) -> float:
    import aiohttp

    gate = asyncio.Semaphore(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i):
            async with gate, session.get(f"{url}/pb?txn=raw-{i}") as response:
                await response.read()

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.monotonic() - started


def pending_deliveries(n: int, url: str) -> list[int]:
    from django.utils import timezone

    from conversions.models import Conversion
    from postbacks.models import Delivery

    click = common.demo_rows(1, url)[0]
    postback = click.affiliate.postbacks.get()
    stamp = time.time()
    conversions = Conversion.objects.bulk_create(
        Conversion(
            affiliate=click.affiliate,
            offer=click.offer,
            click=click,
            conversion_type_id=postback.conversion_types.get().pk,
            transaction_id=f"d{stamp}-{i}",
            currency="USD",
        )
        for i in range(n)
    )
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(postback=postback, conversion=x, status="pending", enqueued_at=now)
        for x in conversions
    )
    return [d.pk for d in deliveries]


def run_dispatch(env, n: int, delay: float, workers: int) -> dict:
    from postbacks.delivery import queue
    from postbacks.models import Delivery, DeliveryState

    sink = common.FastSink(delay)
    cluster = common.start_qcluster(env, "bench-dispatch-qcluster", {"Q_WORKERS": str(workers)})
    try:
        baseline = asyncio.run(raw_client(sink.url, n))
        ids = pending_deliveries(n, sink.url)
        started = time.monotonic()
        queue.enqueue(ids)
        open_states = (DeliveryState.PENDING, DeliveryState.RETRYING)
        while Delivery.objects.filter(pk__in=ids, state__in=open_states).exists():
            if time.monotonic() - started > 600:
                raise RuntimeError("dispatch did not finish in 10 minutes")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        ok = Delivery.objects.filter(pk__in=ids, state=DeliveryState.SUCCESS).count()
    finally:
        common.stop_qcluster(cluster)
        sink.stop()
    rate, raw_rate = n / elapsed, n / baseline
    row = {
        "sink_delay_ms": int(delay * 1000),
        "deliveries": n,
        "delivered_ok": ok,
        "qcluster_workers": workers,
        "seconds": round(elapsed, 2),
        "postbacks_per_s": round(rate),
        "raw_client_per_s": round(raw_rate),
        "ratio_to_raw_client": round(rate / raw_rate, 3),
    }
    print(
        f"sink {row['sink_delay_ms']:>3} ms: {row['postbacks_per_s']:>6}/s sent+logged "
        f"({ok}/{n} ok), raw aiohttp {row['raw_client_per_s']:>6}/s, "
        f"ratio {row['ratio_to_raw_client']}"
    )
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    env = common.configure("dispatch")
    load = os.getloadavg()
    from django.conf import settings

    rows = [run_dispatch(env, args.n, delay, args.workers) for delay in (0.0, 0.1)]
    common.write_results(
        "dispatch",
        {
            "settings": {
                "POSTBACK_CONCURRENCY": settings.POSTBACK_CONCURRENCY,
                "POSTBACK_PER_HOST_CONCURRENCY": settings.POSTBACK_PER_HOST_CONCURRENCY,
                "POSTBACK_BATCH_SIZE": settings.POSTBACK_BATCH_SIZE,
            },
            "target": ">= 1,000/s to a 100 ms sink and >= 0.3x the raw client",
            "runs": rows,
        },
        load,
    )


if __name__ == "__main__":
    main()
