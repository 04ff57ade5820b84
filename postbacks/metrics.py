"""The postbacks' Prometheus metrics: attempts recorded as they are logged, and the delivery
tables read when Prometheus scrapes (open deliveries, the queue, breakers). The metric objects
and the endpoint are trackdesk/metrics.py's; docs/operations.md#metrics lists every metric.

Every scrape-time number reads open deliveries or failing endpoints only, through the indexes
that lead with the state, so a scrape grows with the backlog, not with the log (measured with
1,000,000 deliveries: docs/operations.md#metrics).
"""

import functools
import logging
from collections import Counter

from django.db import DatabaseError
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from postbacks.delivery import queue
from postbacks.delivery.breaker import endpoint_key
from postbacks.models import OPEN_STATES, Delivery, DeliveryState, EndpointHealth
from trackdesk import metrics

log = logging.getLogger(__name__)

FINISHED = (DeliveryState.SUCCESS, DeliveryState.FAILED)


def record_attempts(finished, *, not_sent: type) -> None:
    """Count logged attempts: (delivery, attempt, result) each, the delivery in its new state.

    `not_sent` is single.NotSent (passed in: single.py and batch.py call this, so it cannot
    import them). Test sends are left out, as the breaker does, so success rates are the
    endpoints'.
    """
    try:
        _record(finished, not_sent)
    except Exception:  # a metric is never worth an unrecorded outcome
        log.exception("Recording attempt metrics failed")


def _record(finished, not_sent: type) -> None:
    attempts, done = Counter(), Counter()
    for delivery, _, result in finished:
        if delivery.is_test:
            continue
        outcome = outcome_of(result, not_sent)
        attempts[(_endpoint(delivery.postback.url), outcome, http_class(result.status))] += 1
        if outcome != "not_sent":
            _seconds(outcome).observe(result.duration_ms / 1000)
        if delivery.state in FINISHED:
            done[delivery.state] += 1
    for labels, count in attempts.items():
        metrics.ATTEMPTS.labels(*labels).inc(count)
    for state, count in done.items():
        metrics.FINISHED.labels(state).inc(count)


def outcome_of(result, not_sent: type) -> str:
    """success (2xx); failure (the endpoint answered otherwise, or not in time); not_sent (no
    request went out: refused destination, inactive postback, a template or rate problem)."""
    if result.ok:
        return "success"
    if isinstance(result, not_sent) or (result.permanent and result.status is None):
        return "not_sent"
    return "failure"


def http_class(status: int | None) -> str:
    return f"{status // 100}xx" if status else "none"


@functools.lru_cache(maxsize=4096)
def _endpoint(url: str) -> str:
    return endpoint_key(url) or "unknown"


@functools.cache
def _seconds(outcome: str):
    """The histogram's child for an outcome, looked up once: observed for every attempt."""
    return metrics.ATTEMPT_SECONDS.labels(outcome)


class DeliveryCollector:
    """The delivery tables as gauges, read at each scrape."""

    def collect(self):
        now = timezone.now()
        try:
            families = list(_delivery_gauges(now)) + list(_breaker_gauges(now))
        except DatabaseError as exc:
            log.warning("Metrics could not read the database: %s", exc)
            families = []
        up = GaugeMetricFamily(
            "trackdesk_metrics_database_up",
            "1 when this scrape could read the delivery tables, 0 when the database failed.",
        )
        up.add_metric([], 1 if families else 0)
        yield from families
        yield up
        yield from _task_queue_gauge()


def _delivery_gauges(now):
    by_state = dict(
        Delivery.objects.filter(state__in=OPEN_STATES)
        .values_list("state")
        .annotate(n=Count("*"))  # the state index alone answers it on PostgreSQL
        .order_by()
    )
    open_ = GaugeMetricFamily(
        "trackdesk_deliveries_open",
        "Deliveries that may still be sent, by state (pending, retrying).",
        labels=["state"],
    )
    for state in OPEN_STATES:
        open_.add_metric([state], by_state.get(state, 0))
    yield open_

    due = Delivery.objects.due(now).unclaimed(now)
    yield GaugeMetricFamily(
        "trackdesk_deliveries_due",
        "Deliveries due now that no worker holds (some may wait for an earlier status change).",
        value=due.count(),
    )
    # The oldest one a worker could claim now: one waiting for an earlier status change of its
    # conversion goes once that is final (the earlier may be retrying for hours), so it is not
    # late. Read in next_attempt_at order, it stops at the first that may go: the ordering check
    # for every due row would cost a scan per row on SQLite (its partial index is not used).
    oldest = (
        due.not_waiting()
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    yield GaugeMetricFamily(
        "trackdesk_oldest_due_delivery_age_seconds",
        "How long the longest-waiting due delivery a worker could claim has been due (0: none).",
        value=max((now - oldest).total_seconds(), 0) if oldest else 0,
    )


def _breaker_gauges(now):
    rows = EndpointHealth.objects.filter(
        Q(consecutive_failures__gt=0) | Q(opened_until__isnull=False)
    ).values_list("host", "consecutive_failures", "opened_until")
    backed_off = GaugeMetricFamily(
        "trackdesk_endpoint_breaker_open",
        "1 while an endpoint's breaker holds its deliveries back (backed off, or waiting for "
        "its probe), 0 while it fails but is still sent to. Endpoints without failures: absent.",
        labels=["endpoint"],
    )
    failures = GaugeMetricFamily(
        "trackdesk_endpoint_consecutive_failures",
        "Failed attempts in a row per failing endpoint (host:port).",
        labels=["endpoint"],
    )
    for host, streak, opened_until in rows:
        backed_off.add_metric([host], 1 if opened_until is not None else 0)
        failures.add_metric([host], streak)
    yield backed_off
    yield failures


def _task_queue_gauge():
    try:
        size = queue.broker().queue_size()
    except Exception as exc:  # Redis down: the other metrics still go out
        log.warning("Metrics could not read the task queue: %s", exc)
        return
    yield GaugeMetricFamily(
        "trackdesk_task_queue_depth",
        "Tasks waiting on the django-q2 broker (each says: send what is due).",
        value=size,
    )


collector = DeliveryCollector()
metrics.register_collector(collector)  # postbacks/apps.py imports this module at start
