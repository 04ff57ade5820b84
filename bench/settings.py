"""Bench settings: the project's settings plus a bare DRF create view (the ingest baseline)."""

from trackdesk.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
