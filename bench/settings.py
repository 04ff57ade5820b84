"""Bench settings: the project's settings plus the baselines' views (bench/bare.py)."""

import os

from trackdesk.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Every run has a fresh database but the Redis cache outlives it: keys must not cross runs.
CACHES["default"]["KEY_PREFIX"] = os.environ.get("BENCH_RUN_ID", "")  # noqa: F405
