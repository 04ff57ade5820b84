"""Clicks: the tracking link (record the click, 302 to the offer with our cid) under gunicorn
(2 workers) against the bare baseline, a Django view on the same server that inserts one click
row and redirects. Clicks per second with 16 clients in flight, then the tracking link paced at
200 clicks/s: the rate achieved and the answers' p99.

    .venv/bin/python bench/clicks.py [--seconds 10] [--rate 200] [--concurrency 16]

Each run has a fresh database and a warm-up; the order of the two throughput figures alternates
from run to run.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402


def getter(http, url: str):
    async def send(*_):
        async with http.get(url, allow_redirects=False) as response:
            await response.read()
            return response.status == 302

    return send


async def measure(base: str, click, args, run_index: int) -> dict:
    ids = f"{click.offer_id}/{click.affiliate_id}/"
    async with common.session(limit=args.concurrency * 2) as http:
        sends = {
            "bare": getter(http, f"{base}/bench/bare-click/{ids}"),
            "clicks": getter(http, f"{base}/t/{ids}?affS1=bench&affS2=42"),
        }
        for send in sends.values():  # warm-up
            await common.closed_loop(args.warmup / 2, args.concurrency, send)
        order = list(sends) if run_index % 2 == 0 else list(sends)[::-1]
        result = {}
        for name in order:
            result[name] = await common.closed_loop(args.seconds, args.concurrency, sends[name])
            print(f"  {name}: {result[name]['per_s']}/s ({result[name]['errors']} errors)")
        count = int(args.rate * args.seconds)
        result["paced"] = await common.paced(args.rate, count, sends["clicks"])
        common.print_paced("tracking link paced", result["paced"])
    return result


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="paced clicks per second")
    parser.add_argument("--concurrency", type=int, default=16, help="clients in flight")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()
    bench = common.Bench("clicks", args)
    for i in range(args.repeats):
        with bench.run() as env:
            click = common.demo_rows(1, "http://127.0.0.1:9")[0]
            with common.gunicorn(env, args.workers) as base:
                r = asyncio.run(measure(base, click, args, i))
        paced = r["paced"]
        bench.record(
            {
                "clicks_per_s": r["clicks"]["per_s"],
                "bare_per_s": r["bare"]["per_s"],
                "ratio": common.ratio(r["clicks"]["per_s"], r["bare"]["per_s"]),
                "errors": r["clicks"]["errors"] + r["bare"]["errors"] + paced["errors"],
                "paced_target_rate": args.rate,
                "paced_achieved_rate": paced["achieved_rate"],
                "paced_p50_ms": paced["p50_ms"],
                "paced_p99_ms": paced["p99_ms"],
                "rate_reached": paced["rate_reached"],
            }
        )
    print()
    bench.target("tracking link, x bare insert + redirect", "ratio", ">=", 0.9)
    bench.target(
        f"tracking link p99 ms at {args.rate:g}/s", "paced_p99_ms", "<=", 50, needs="rate_reached"
    )
    bench.finish({"gunicorn_workers": args.workers})


if __name__ == "__main__":
    main()
