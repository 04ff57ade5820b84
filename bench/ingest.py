"""Ingest: single-conversion POSTs per second under gunicorn (2 workers) against a bare DRF
create view on the same database (the baseline), and conversions per second through the bulk
endpoint (1,000 per call; one call at a time, then one in flight per web worker).

    .venv/bin/python bench/ingest.py [--seconds 10] [--concurrency 16]

Our create validates the click, writes the status history, matches postbacks (one postback is
configured, so each conversion also writes a delivery and enqueues it on the broker); the bare
view writes only the conversion row. No qcluster runs: queued tasks are left in the broker.
"""

import argparse
import asyncio
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402

counter = itertools.count()


async def hammer(url: str, token: str, body, seconds: float, concurrency: int) -> dict:
    """POST body() repeatedly from `concurrency` clients for `seconds`; requests/s and errors."""
    import aiohttp

    done, errors = 0, 0
    headers = {"Authorization": f"Token {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        deadline = time.monotonic() + seconds

        async def client():
            nonlocal done, errors
            while time.monotonic() < deadline:
                async with session.post(url, json=body()) as response:
                    await response.read()
                    if response.status in (200, 201):
                        done += 1
                    else:
                        errors += 1

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"requests": done, "errors": errors, "per_s": round(done / elapsed, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bulk-calls", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()
    env = common.configure("ingest")
    load = os.getloadavg()
    sink = common.FastSink()  # the postback target; nothing is sent (no qcluster)
    click = common.demo_rows(1, sink.url)[0]
    sale = click.affiliate.postbacks.get().conversion_types.get().pk
    token = common.api_token()
    web, base = common.start_gunicorn(env, workers=args.workers)
    run = f"{time.time():.0f}"

    def ours():
        return {
            "cid": click.cid,
            "conversion_type": "sale",
            "transaction_id": f"s{run}-{next(counter)}",
        }

    def bare():
        return {
            "affiliate": click.affiliate_id,
            "offer": click.offer_id,
            "conversion_type": sale,
            "transaction_id": f"b{run}-{next(counter)}",
            "currency": "USD",
        }

    def bulk():
        return {"conversions": [ours() for _ in range(1000)]}

    try:
        rounds = []
        for _ in range(2):  # alternate, so drift in the machine's load hits both alike
            b = asyncio.run(
                hammer(
                    base + "/bench/bare-conversions/", token, bare, args.seconds, args.concurrency
                )
            )
            o = asyncio.run(
                hammer(base + "/api/v1/conversions/", token, ours, args.seconds, args.concurrency)
            )
            rounds.append({"bare_drf_create": b, "api_create": o})
            print(f"single: ours {o['per_s']}/s ({o['errors']} errors), bare DRF {b['per_s']}/s")
        bulk_one = asyncio.run(bulk_run(base, token, bulk, args.bulk_calls))
        print(f"bulk, one call at a time: {bulk_one['conversions_per_s']} conversions/s")
        bulk_rate = asyncio.run(bulk_run(base, token, bulk, args.bulk_calls, args.workers))
        print(
            f"bulk, {args.workers} calls in flight (one per web worker): "
            f"{bulk_rate['conversions_per_s']} conversions/s ({args.bulk_calls} x 1,000)"
        )
    finally:
        common.stop_gunicorn(web)
        sink.stop()
    ours_rate = sum(r["api_create"]["per_s"] for r in rounds) / len(rounds)
    bare_rate = sum(r["bare_drf_create"]["per_s"] for r in rounds) / len(rounds)
    print(f"single ratio (ours / bare DRF): {ours_rate / bare_rate:.2f}")
    common.write_results(
        "ingest",
        {
            "gunicorn_workers": args.workers,
            "client_concurrency": args.concurrency,
            "seconds_per_round": args.seconds,
            "target": "single >= 1.0x the bare DRF create; bulk >= 3,000 conversions/s",
            "rounds": rounds,
            "single_per_s": round(ours_rate, 1),
            "bare_drf_per_s": round(bare_rate, 1),
            "single_ratio_to_bare": round(ours_rate / bare_rate, 2),
            "bulk": bulk_rate,
            "bulk_one_call_at_a_time": bulk_one,
        },
        load,
    )


async def bulk_run(base: str, token: str, body, calls: int, concurrency: int = 1) -> dict:
    """`calls` bulk POSTs of 1,000, `concurrency` of them in flight at a time."""
    import aiohttp

    async with aiohttp.ClientSession(headers={"Authorization": f"Token {token}"}) as session:
        started, created, times = time.monotonic(), 0, []
        remaining = iter(range(calls))

        async def client():
            nonlocal created
            for _ in remaining:
                t = time.monotonic()
                url = base + "/api/v1/conversions/bulk/"
                async with session.post(url, json=body()) as response:
                    created += (await response.json())["created"]
                times.append(time.monotonic() - t)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "calls": calls,
        "in_flight": concurrency,
        "created": created,
        "conversions_per_s": round(created / elapsed),
        "seconds_per_call_median": round(common.percentile(times, 50), 3),
    }


if __name__ == "__main__":
    main()
