"""Dispatch: N pending deliveries sent and logged by a real qcluster, per second and CPU seconds
per delivered postback, against a raw aiohttp client firing the same N requests at the same
sink with the product's caps (POSTBACK_CONCURRENCY in flight, POSTBACK_PER_HOST_CONCURRENCY per
host). The raw client runs before the cluster starts, never while it polls.

    .venv/bin/python bench/dispatch.py [--n 5000] [--workers 2] [--delays 0.1]

CPU is the whole qcluster process tree's (sentinel, pusher, monitor, workers) from enqueue to
the last delivery recorded, and the raw client's own process. Each run has a fresh database and
sends a warm-up batch first.
"""

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402


async def raw_client(url: str, n: int, limit: int, per_host: int, tag: str) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=per_host)
    # Generous socket timeouts (a baseline must not fail on a loaded machine); no limit on
    # waiting for a free connection slot.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i):
            async with session.get(f"{url}/pb?txn={tag}-{i}") as response:
                await response.read()

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.monotonic() - started


def pending_deliveries(n: int, click, tag: str) -> list[int]:
    from django.utils import timezone

    from conversions.models import Conversion
    from postbacks.models import Delivery

    postback = click.affiliate.postbacks.get()
    conversions = Conversion.objects.bulk_create(
        Conversion(
            affiliate=click.affiliate,
            offer=click.offer,
            click=click,
            conversion_type_id=postback.conversion_types.get().pk,
            transaction_id=f"{tag}-{i}",
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


def dispatch(cluster, sink, click, n: int, tag: str) -> dict:
    """Enqueue n new deliveries and wait until every one is final; seconds, CPU, delivered."""
    from postbacks.delivery import queue
    from postbacks.models import Delivery, DeliveryState

    ids = pending_deliveries(n, click, tag)
    before = sink.count()
    cpu = common.tree_cpu_seconds(cluster.pid)
    started = time.monotonic()
    queue.enqueue(ids, marked=True)
    # Watch the sink first (no database reads competing with the workers), then the rows.
    common.wait_until(lambda: sink.count() - before >= n, 600, every=0.05)
    open_states = (DeliveryState.PENDING, DeliveryState.RETRYING)
    pending = Delivery.objects.filter(pk__in=ids, state__in=open_states)
    if not common.wait_until(lambda: not pending.exists(), 600, every=0.02):
        raise RuntimeError("dispatch did not finish in 10 minutes")
    elapsed = time.monotonic() - started
    cpu = common.tree_cpu_seconds(cluster.pid) - cpu
    ok = Delivery.objects.filter(pk__in=ids, state=DeliveryState.SUCCESS).count()
    return {"seconds": elapsed, "cpu": cpu, "ok": ok}


def one_run(env, args, delay: float) -> dict:
    from django.conf import settings

    limit, per_host = settings.POSTBACK_CONCURRENCY, settings.POSTBACK_PER_HOST_CONCURRENCY
    with common.sinks(delay) as (sink,):
        click = common.demo_rows(1, sink.url)[0]
        asyncio.run(raw_client(sink.url, args.n // 10, limit, per_host, "raw-warm"))
        cpu = time.process_time()
        raw_seconds = asyncio.run(raw_client(sink.url, args.n, limit, per_host, "raw"))
        raw_cpu = time.process_time() - cpu
        with common.qcluster(env, {"Q_WORKERS": str(args.workers)}) as cluster:
            dispatch(cluster, sink, click, max(args.n // 10, 10), "warm")
            ours = dispatch(cluster, sink, click, args.n, "timed")
    rate, raw_rate = ours["ok"] / ours["seconds"], args.n / raw_seconds
    cpu_each, raw_cpu_each = ours["cpu"] / max(ours["ok"], 1), raw_cpu / args.n
    row = {
        "per_s": round(rate),
        "raw_per_s": round(raw_rate),
        "ratio": common.ratio(rate, raw_rate),
        "cpu_ms_each": round(cpu_each * 1000, 3),
        "raw_cpu_ms_each": round(raw_cpu_each * 1000, 3),
        "cpu_ratio": common.ratio(cpu_each, raw_cpu_each),
        "delivered": ours["ok"],
    }
    print(
        f"  sink {delay * 1000:.0f} ms: {row['per_s']}/s sent+logged ({ours['ok']}/{args.n} ok), "
        f"raw aiohttp {row['raw_per_s']}/s, ratio {row['ratio']}; CPU per postback "
        f"{row['cpu_ms_each']} ms vs raw {row['raw_cpu_ms_each']} ms ({row['cpu_ratio']}x)"
    )
    return row


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--n", type=int, default=5000, help="deliveries per timed batch")
    parser.add_argument("--workers", type=int, default=2, help="qcluster worker processes")
    parser.add_argument("--delays", default="0.1", help="sink delays in seconds, comma-separated")
    args = parser.parse_args()
    bench = common.Bench("dispatch", args)
    from django.conf import settings

    delays = [float(d) for d in args.delays.split(",")]
    for _ in range(args.repeats):
        figures = {}
        for delay in delays:
            with bench.run() as env:
                row = one_run(env, args, delay)
            figures.update({f"{k}@{delay * 1000:.0f}ms": v for k, v in row.items()})
        bench.record(figures)
    key = f"@{delays[-1] * 1000:.0f}ms"
    print()
    bench.target(f"dispatch{key}, x raw client", f"ratio{key}", ">=", 0.5)
    bench.target(f"dispatch{key}, postbacks/s", f"per_s{key}", ">=", 2000)
    bench.target(f"CPU per postback{key}, x raw client", f"cpu_ratio{key}", "<=", 2.0)
    bench.finish(
        {
            "POSTBACK_CONCURRENCY": settings.POSTBACK_CONCURRENCY,
            "POSTBACK_PER_HOST_CONCURRENCY": settings.POSTBACK_PER_HOST_CONCURRENCY,
            "POSTBACK_BATCH_SIZE": settings.POSTBACK_BATCH_SIZE,
            "qcluster_workers": args.workers,
            "cpu_note": "qcluster process tree vs the raw client's process; sink excluded",
        }
    )


if __name__ == "__main__":
    main()
