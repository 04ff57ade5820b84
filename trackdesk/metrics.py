"""Prometheus metrics: every metric object, the one-line recorders the hot paths call, and the
protected /metrics endpoint (MetricsMiddleware).

Counters and histograms are recorded where events happen (an increment in memory, or in a
memory-mapped file per process in multiprocess mode); gauges that describe the database (open
deliveries, the queue, breakers) are read when Prometheus scrapes, by collectors that higher apps
register here (postbacks/metrics.py), so this module imports no app.

Multiprocess mode: gunicorn's workers and qcluster's processes each count their own events.
With PROMETHEUS_MULTIPROC_DIR set (in the environment of every process, before any starts; see
docs/operations.md#metrics), each process writes its values to files in that directory and
/metrics sums the files of every process on the machine. Unset: one process, values in memory.
"""

import functools
import hmac
import ipaddress
import logging
import os
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

from trackdesk.middleware import client_ip

log = logging.getLogger(__name__)

PATH = "/metrics"

# Multiprocess mode has no *_created samples; leave them out of single-process mode too.
disable_created_metrics()
if settings.PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client chose where values live when it was first imported, from the
    # environment; a value that came too late would leave every process counting alone.
    if values.ValueClass is values.MutexValue:
        raise ImproperlyConfigured(
            "PROMETHEUS_MULTIPROC_DIR is set, but not in the environment the process started "
            "with: set it there (or in .env) for the web and the worker alike."
        )
    os.makedirs(settings.PROMETHEUS_MULTIPROC_DIR, exist_ok=True)

# The process's own metrics (single-process mode reads them from here) and the scrape-time
# collectors higher apps register.
registry = CollectorRegistry()
_scrape_collectors: list = []

CONVERSIONS = Counter(
    "trackdesk_conversions_ingested",
    "New conversions stored (path: single, bulk; status: a status change), by source.",
    ["path", "source"],
    registry=registry,
)
CLICKS = Counter("trackdesk_clicks", "Tracking-link clicks recorded.", registry=registry)
ATTEMPTS = Counter(
    "trackdesk_postback_attempts",
    "Postback attempts by endpoint (host:port), outcome (success, failure, not_sent) and HTTP "
    "status class (2xx, 3xx, 4xx, 5xx; none: no response).",
    ["endpoint", "outcome", "http_class"],
    registry=registry,
)
ATTEMPT_SECONDS = Histogram(
    "trackdesk_postback_attempt_duration_seconds",
    "Time from sending a postback to its answer (or the time-out), by outcome.",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
    registry=registry,
)
FINISHED = Counter(
    "trackdesk_deliveries_finished",
    "Deliveries that reached a final state (success, failed).",
    ["state"],
    registry=registry,
)


def _never_raises(record: Callable) -> Callable:
    """A metric is never worth a failed request or a lost outcome: errors are logged."""

    def guarded(*args, **kwargs):
        try:
            record(*args, **kwargs)
        except Exception:
            log.exception("Recording a metric failed")

    return guarded


@_never_raises
def click() -> None:
    CLICKS.inc()


@_never_raises
def conversions_ingested(path: str, source: str, count: int = 1) -> None:
    _ingested(path, source).inc(count)


@functools.cache
def _ingested(path: str, source: str):
    return CONVERSIONS.labels(path, source)  # a handful of children, each looked up once


def register_collector(collector) -> None:
    """Add a collector read at each scrape (an object with collect(), yielding metric families)."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)
        registry.register(collector)


def exposition() -> bytes:
    """What /metrics answers: this machine's counters (every process's in multiprocess mode)
    and the scrape-time gauges, in Prometheus's text format."""
    if not settings.PROMETHEUS_MULTIPROC_DIR:
        return generate_latest(registry)
    scrape = CollectorRegistry()
    multiprocess.MultiProcessCollector(scrape, path=settings.PROMETHEUS_MULTIPROC_DIR)
    for collector in _scrape_collectors:
        scrape.register(collector)
    return generate_latest(scrape)


def refusal(request) -> HttpResponse | None:
    """None when the caller may read the metrics, else the answer.

    Off (404) unless METRICS_TOKEN or METRICS_ALLOWED_IPS is set; with both set, both must pass.
    """
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS
    if not token and not networks:
        return HttpResponse("Not found.", status=404, content_type="text/plain")
    if networks and not _address_allowed(client_ip(request), networks):
        return HttpResponse("Forbidden.", status=403, content_type="text/plain")
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("A bearer token is required.", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            response["Content-Type"] = "text/plain"
            return response
    return None


def _address_allowed(address: str | None, networks: list[str]) -> bool:
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(network, strict=False) for network in networks)


class MetricsMiddleware:
    """Answer GET /metrics before anything else, like the health probes: Prometheus scrapes by
    IP address over the internal network, so ALLOWED_HOSTS and the HTTPS redirect must not
    refuse it; the token or the address allow-list protects it instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != PATH:
            return self.get_response(request)
        refused = refusal(request)
        if refused is not None:
            return refused
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
        return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
