"""Isolation: the latency benchmark with a third of the endpoints hanging (never answering),
against the same run with every endpoint healthy; healthy endpoints' p99 should rise <= 20%.

    .venv/bin/python bench/isolation.py [--rate 100] [--seconds 20]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402
from bench.latency import api_to_sink  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    env = common.configure("isolation")
    load = os.getloadavg()
    healthy = api_to_sink(env, args.rate, args.seconds, label="all healthy")
    hanging = api_to_sink(env, args.rate, args.seconds, hang_every=3, label="1/3 hanging")
    common.write_results(
        "isolation",
        {
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "target": "healthy endpoints' p99 rises by <= 20% with a third hanging",
            "all_healthy": healthy,
            "third_hanging": hanging,
            "p99_ratio": round(hanging["p99_ms"] / healthy["p99_ms"], 2),
        },
        load,
    )


if __name__ == "__main__":
    main()
