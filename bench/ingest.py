"""Ingest under gunicorn (2 workers): single-conversion POSTs per second against the bare
baseline (a DRF view with the same auth that inserts one row, no look-ups), also with 100
matching postbacks on the affiliate; and the bulk endpoint (calls of 1,000, one at a time)
against the bare bulk baseline (`bulk_create` of the same rows).

    .venv/bin/python bench/ingest.py [--seconds 10] [--concurrency 16] [--bulk-calls 10]

Ours validates the click and type, writes the status history, matches postbacks and writes and
queues a delivery per match. No qcluster runs: queued tasks stay in the broker. Each run has a
fresh database and a warm-up; the three single-POST figures are taken in an order that rotates
from run to run, so drift in the machine's load hits each alike.
"""

import asyncio
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402

counter = itertools.count()


def bodies(click, sale_id: int):
    """Request bodies for ours and the bare view: the same conversion, by cid or by ids."""

    def ours():
        return {"cid": click.cid, "conversion_type": "sale", "transaction_id": f"t{next(counter)}"}

    def bare():
        return {
            "affiliate": click.affiliate_id,
            "offer": click.offer_id,
            "conversion_type": sale_id,
            "transaction_id": f"t{next(counter)}",
        }

    return ours, bare


def poster(http, url: str, body):
    async def send():
        async with http.post(url, json=body()) as response:
            await response.read()
            return response.status in (200, 201)

    return send


async def single(base, token, args, run_index, one, hundred) -> dict:
    ours, bare = bodies(*one)
    ours100, _ = bodies(*hundred)
    async with common.session(token) as http:
        sends = {
            "bare": poster(http, base + "/bench/bare-conversions/", bare),
            "single": poster(http, base + "/api/v1/conversions/", ours),
            "single100": poster(http, base + "/api/v1/conversions/", ours100),
        }
        for send in sends.values():  # warm-up
            await common.closed_loop(args.warmup / 3, args.concurrency, send)
        names = list(sends)
        names = names[run_index % 3 :] + names[: run_index % 3]
        result = {}
        for name in names:
            result[name] = await common.closed_loop(args.seconds, args.concurrency, sends[name])
            print(f"  {name}: {result[name]['per_s']}/s ({result[name]['errors']} errors)")
    return result


async def bulk(base, token, calls: int, one) -> dict:
    ours, bare = bodies(*one)
    urls = {"bulk": "/api/v1/conversions/bulk/", "bare_bulk": "/bench/bare-conversions/bulk/"}
    makers = {"bulk": ours, "bare_bulk": bare}
    result = {}
    async with common.session(token) as http:
        for name in ("bare_bulk", "bulk", "bare_bulk", "bulk"):  # first pair is the warm-up
            created, started = 0, asyncio.get_running_loop().time()
            for _ in range(calls):
                body = {"conversions": [makers[name]() for _ in range(1000)]}
                async with http.post(base + urls[name], json=body) as response:
                    created += (await response.json())["created"]
            elapsed = asyncio.get_running_loop().time() - started
            result[name] = round(created / elapsed)
        print(f"  bulk, one call at a time: {result['bulk']}/s, bare {result['bare_bulk']}/s")
    return result


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="per single-POST figure")
    parser.add_argument("--concurrency", type=int, default=16, help="clients in flight")
    parser.add_argument("--bulk-calls", type=int, default=10, help="calls of 1,000")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()
    bench = common.Bench("ingest", args)
    for i in range(args.repeats):
        with bench.run() as env, common.sinks(0) as (sink,):
            click = common.demo_rows(1, sink.url)[0]
            click100 = common.demo_rows(1, sink.url, postbacks_each=100)[0]
            sale = click.affiliate.postbacks.get().conversion_types.get().pk
            token = common.api_token()
            with common.gunicorn(env, args.workers) as base:
                s = asyncio.run(single(base, token, args, i, (click, sale), (click100, sale)))
                b = asyncio.run(bulk(base, token, args.bulk_calls, (click, sale)))
        bench.record(
            {
                "single_per_s": s["single"]["per_s"],
                "bare_per_s": s["bare"]["per_s"],
                "single_ratio": common.ratio(s["single"]["per_s"], s["bare"]["per_s"]),
                "single100_per_s": s["single100"]["per_s"],
                "single100_ratio": common.ratio(s["single100"]["per_s"], s["bare"]["per_s"]),
                "bulk_per_s": b["bulk"],
                "bare_bulk_per_s": b["bare_bulk"],
                "bulk_ratio": common.ratio(b["bulk"], b["bare_bulk"]),
                "errors": sum(x["errors"] for x in s.values()),
            }
        )
    print()
    bench.target("single POST, x bare insert", "single_ratio", ">=", 1.0)
    bench.target("single POST with 100 matching postbacks, x bare", "single100_ratio", ">=", 0.8)
    bench.target("bulk, x bare bulk_create", "bulk_ratio", ">=", 0.8)
    bench.target("bulk conversions/s, one call at a time", "bulk_per_s", ">=", 3000)
    bench.finish({"gunicorn_workers": args.workers})


if __name__ == "__main__":
    main()
