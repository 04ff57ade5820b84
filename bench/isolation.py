"""Isolation: the latency benchmark's load with a third of the endpoints hanging (never
answering) against the same load with every endpoint answering. Healthy work is equal in both
(the same 20 healthy affiliates, the same conversions at the same rate); the p99 is taken over
the same healthy samples (those received in both runs); the order alternates from run to run and
each half has a fresh database.

    .venv/bin/python bench/isolation.py [--rate 100] [--seconds 20]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402
from bench.latency import post_conversions  # noqa: E402


def main():
    parser = common.parser(__doc__)
    parser.add_argument("--rate", type=float, default=100, help="conversions per second")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    bench = common.Bench("isolation", args)
    for i in range(args.repeats):
        halves = {}
        for hanging in (False, True) if i % 2 == 0 else (True, False):
            with bench.run() as env:
                label = "1/3 hanging: " if hanging else "all healthy: "
                halves[hanging] = post_conversions(env, args, hanging=hanging, label=label)
        (healthy, healthy_ms), (hang, hang_ms) = halves[False], halves[True]
        same = healthy_ms.keys() & hang_ms.keys()
        p99 = common.latency_ms([healthy_ms[t] for t in same])["p99_ms"]
        p99_hanging = common.latency_ms([hang_ms[t] for t in same])["p99_ms"]
        print(f"  healthy p99 over the same {len(same)} samples: {p99} ms vs {p99_hanging} ms")
        bench.record(
            {
                "healthy_p99_ms": p99,
                "hanging_p99_ms": p99_hanging,
                "p99_ratio": common.ratio(p99_hanging, p99),
                "samples": len(same),
                "all_healthy_rate": healthy["achieved_rate"],
                "third_hanging_rate": hang["achieved_rate"],
                "cpu_ms_all_healthy": healthy["cpu_ms_total"],
                "cpu_ms_third_hanging": hang["cpu_ms_total"],
                "rate_reached": healthy["rate_reached"] and hang["rate_reached"],
                "first": "1/3 hanging" if i % 2 else "all healthy",
            }
        )
    print()
    bench.target(
        "healthy p99 with 1/3 hanging, x all healthy", "p99_ratio", "<=", 1.2, needs="rate_reached"
    )
    bench.finish({"gunicorn_workers": 2})


if __name__ == "__main__":
    main()
