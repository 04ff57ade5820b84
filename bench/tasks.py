"""Bench-only django-q2 task: the queue's own latency floor (enqueue -> one request sent)."""

import requests


def ping(url: str) -> None:
    requests.get(url, timeout=5)
