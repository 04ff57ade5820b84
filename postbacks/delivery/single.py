"""One attempt of one delivery: claim it, render, send through the guarded seam, record.

A worker claims a delivery with a conditional UPDATE before sending, so a task that runs twice
(django-q2 delivers at least once) sends once. A worker that dies mid-send leaves a claim that
expires; the sweeper then enqueues the delivery again.
"""

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Subquery
from django.utils import timezone

from postbacks import conf, metrics
from postbacks.delivery import breaker, ordering
from postbacks.models import (
    OPEN_STATES,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    TrackingSettings,
)
from postbacks.rendering import RenderError, WaitingForRate, render_request
from postbacks.transport import policy, requests_sender, signing
from postbacks.transport.policy import USER_AGENT, HttpResult
from trackdesk.sql import update_row

RETRY_AFTER_CAP = 24 * 3600

log = logging.getLogger(__name__)


@dataclass
class NotSent(HttpResult):
    """No request went out because of an error of ours, not the endpoint's (an exception while
    rendering): retried on the schedule, and the circuit breaker does not count it."""


@dataclass
class RateWait(NotSent):
    """Not sent because no exchange rate converts the amounts yet (`pair`, "EUR→GBP"): the
    delivery waits for it without using up a retry (postbacks/money.py sends it when the rate
    is saved), and the breaker does not count it (no request went out)."""

    pair: str = ""


def not_sent(exc: Exception, while_doing: str) -> NotSent:
    log.exception("Delivery not sent: %s failed", while_doing)
    return NotSent(error=f"Not sent: {while_doing} failed: {type(exc).__name__}: {exc}"[:300])


def claim(delivery_id: int) -> Delivery | None:
    """Take the delivery for one attempt, or None when it is not due, another worker has it, or
    it waits for an earlier status change (postbacks/delivery/ordering.py sends it then)."""
    now = timezone.now()
    claimed = (
        Delivery.objects.filter(pk=delivery_id)
        .due(now)
        .unclaimed(now)
        .not_waiting()
        .update(
            claimed_until=now + timedelta(seconds=conf.claim_seconds()),
            attempts=F("attempts") + 1,
        )
    )
    if not claimed:
        return None
    # The tracking setting comes along, so rendering reads nothing more.
    tracking = TrackingSettings.objects.filter(pk=1).values("allow_revenue_parameters")
    return (
        Delivery.objects.select_related(
            "postback",
            "conversion__click",
            "conversion__conversion_type",
        )
        .annotate(allow_revenue=Subquery(tracking))
        .get(pk=delivery_id)
    )


def attempt_delivery(delivery_id: int) -> Delivery | None:
    """Make one attempt if the delivery is due and free; returns it, updated, or None."""
    delivery = claim(delivery_id)
    if delivery is None:
        return None
    health = breaker.health_of(delivery)  # one read decides the breaker before and after
    if breaker.defer_if_open(delivery, health):
        return delivery
    attempt, result = send_attempt(delivery)
    record(delivery, attempt, result)
    if not isinstance(result, NotSent):
        breaker.record_outcome(delivery, result, health)
    return delivery


def send_attempt(delivery: Delivery) -> tuple[DeliveryAttempt, HttpResult]:
    """Render and send; returns the unsaved attempt row and what happened."""
    allow_revenue = getattr(delivery, "allow_revenue", None)  # claim() reads it along
    attempt, refused = build_attempt(delivery, allow_revenue=allow_revenue)
    if refused is not None:
        return attempt, refused
    try:
        return attempt, requests_sender.send(
            attempt.method, attempt.url, headers=attempt.request_headers, body=attempt.request_body
        )
    except Exception as exc:  # the sender never raises; the attempt is logged all the same
        log.exception("Sending delivery %s failed", delivery.pk)
        return attempt, HttpResult(error=policy.sending_failed(exc))


def build_attempt(
    delivery: Delivery, *, allow_revenue: bool | None = None
) -> tuple[DeliveryAttempt, HttpResult | None]:
    """The unsaved attempt row with the rendered request, and a result instead of sending when
    it must not be sent (inactive postback, template that cannot render, or any other error
    while building the request: that one delivery fails, never the batch it is in)."""
    attempt = DeliveryAttempt(delivery=delivery, number=delivery.attempts)
    if not delivery.postback.active and not delivery.is_test:
        return attempt, HttpResult(error="Postback is inactive; not sent.", permanent=True)
    try:
        request = render_request(
            delivery.postback,
            delivery.conversion,
            status=delivery.status,
            delivery_uid=delivery.sent_id,
            allow_revenue=allow_revenue,
        )
        headers = _request_headers(delivery, request)
    except WaitingForRate as exc:
        return attempt, RateWait(error=f"Waiting for a rate: {exc}", pair=exc.pair)
    except RenderError as exc:
        return attempt, HttpResult(error=f"Not sent: {exc}", permanent=True)
    except Exception as exc:  # unforeseen: maybe a bug fixed by the next retry, so not permanent
        return attempt, not_sent(exc, "rendering")
    attempt.method, attempt.url = request.method, request.url
    attempt.request_headers, attempt.request_body = headers, request.body
    return attempt, None


def _request_headers(delivery: Delivery, request) -> dict:
    headers = {
        **request.headers,
        "User-Agent": USER_AGENT,
        "X-Postback-Id": delivery.sent_id,
        "X-Postback-Attempt": str(delivery.attempts),
    }
    if request.content_type:
        headers["Content-Type"] = request.content_type
    # The postback's own headers (validation keeps them clear of the names above) are signed too.
    headers.update(
        signing.headers(
            delivery.postback, delivery.sent_id, request.body, custom_headers=request.headers
        )
    )
    return headers


RECORDED_FIELDS = [
    "last_status_code",
    "last_duration_ms",
    "last_error",
    "claimed_until",
    "state",
    "finished_at",
    "next_attempt_at",
    "enqueued_at",
    "attempts",
    "waiting_for_rate",
]


def record(delivery: Delivery, attempt: DeliveryAttempt, result: HttpResult) -> None:
    """Write the attempt row and move the delivery to its next state."""
    apply_result(delivery, attempt, result)
    later_waits = save_outcome(delivery, attempt)
    metrics.record_attempts([(delivery, attempt, result)], not_sent=NotSent)
    if later_waits:  # a later status change of the conversion waits for this one
        ordering.release_next([delivery])


def save_outcome(delivery: Delivery, attempt: DeliveryAttempt) -> bool:
    """Save the attempt row and the delivery, filled in by apply_result, in one transaction;
    returns whether the delivery is final and an open delivery of a later status change (same
    postback and conversion) waits for it (ordering.release_next queues that one).

    Should the database refuse the row as it is, it is saved without the response, with the
    reason in its error: an outcome left unrecorded would have its claim expire and the request
    sent again. Raises when even that fails (the database is down, say).
    """
    try:
        return _save(delivery, attempt)
    except Exception as exc:
        log.exception("Recording delivery %s failed; now without the response", delivery.pk)
        attempt.response_headers, attempt.response_body = {}, ""
        attempt.error = f"{attempt.error} (response not logged: {type(exc).__name__}: {exc})"[:2000]
        delivery.last_error = attempt.error
        return _save(delivery, attempt)


def _save(delivery: Delivery, attempt: DeliveryAttempt) -> bool:
    with transaction.atomic():
        attempt.pk, attempt._state.adding = None, True  # an insert, even after a failed one
        attempt.save()
        later_waits = _update_outcome(delivery)
    return later_waits and delivery.is_finished


def _update_outcome(delivery: Delivery) -> bool:
    """Save RECORDED_FIELDS of the delivery and say, in the same statement, whether an open
    delivery of a later status change of its conversion to its postback exists (one that waits
    for this one): one statement where a save and a look-up were two."""
    table = connection.ops.quote_name(Delivery._meta.db_table)
    states = ", ".join("%s" for _ in OPEN_STATES)
    later_waits = (
        f"EXISTS (SELECT 1 FROM {table} later "
        f"WHERE later.postback_id = {table}.postback_id "
        f"AND later.conversion_id = {table}.conversion_id "
        f"AND later.status_change_id > {table}.status_change_id AND later.state IN ({states}))"
    )
    row = update_row(delivery, RECORDED_FIELDS, later_waits, OPEN_STATES)
    return bool(row and row[0])


def apply_result(delivery: Delivery, attempt: DeliveryAttempt, result: HttpResult) -> None:
    """Fill in the attempt row and the delivery's next state, unsaved.

    Both the single path (record) and the batch path (postbacks/delivery/batch.py) go through
    here.
    """
    now = timezone.now()
    attempt.response_status = result.status
    attempt.response_headers = {_storable(k): _storable(v) for k, v in result.headers.items()}
    attempt.response_body = _storable(result.body)
    attempt.duration_ms = result.duration_ms
    attempt.error = _storable(result.error) or _status_error(result.status)

    delivery.last_status_code = result.status
    delivery.last_duration_ms = result.duration_ms
    delivery.last_error = attempt.error
    delivery.claimed_until = None
    waits = isinstance(result, RateWait) and not delivery.is_test  # a test send is not retried
    delivery.waiting_for_rate = result.pair if waits else ""
    if waits:
        wait_for_rate(delivery, now)
    elif result.ok:
        delivery.state, delivery.finished_at = DeliveryState.SUCCESS, now
    elif result.permanent or delivery.is_test or delivery.attempts > len(conf.retry_schedule()):
        delivery.state, delivery.finished_at = DeliveryState.FAILED, now
    else:
        delivery.state = DeliveryState.RETRYING
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay(delivery.attempts, result))
        delivery.enqueued_at = None


def wait_for_rate(delivery: Delivery, now) -> None:
    """Retry at the schedule's times counted from the trigger, then at its last step for as long
    as the rate is missing: a postback is never lost for a missing rate. The claim's attempt is
    given back, so the endpoint still gets every retry once the rate exists."""
    delivery.attempts -= 1
    delivery.state = DeliveryState.RETRYING
    delivery.next_attempt_at = now + timedelta(seconds=rate_wait_delay(delivery.created, now))
    delivery.enqueued_at = None


def rate_wait_delay(triggered, now) -> float:
    """Seconds to the next of the retry schedule's points (1 min, 6 min, 36 min… after the
    trigger with the default); past the last one, its last step (an hour with no schedule)."""
    schedule = conf.retry_schedule() or (3600,)
    waited = (now - triggered).total_seconds()
    point = 0.0
    for step in schedule:
        point += step
        if point > waited + 1:  # a second's slack: a retry claimed on time is not repeated
            return point - waited
    return float(schedule[-1])


def _storable(text):
    """PostgreSQL refuses NUL in text and JSON, and a receiver may answer with one; shown as �."""
    return text.replace("\x00", "\ufffd") if isinstance(text, str) else text


def retry_delay(attempts_made: int, result: HttpResult | None = None) -> float:
    """Seconds before the next attempt: the schedule's step with ±10% jitter, or the
    receiver's Retry-After when it asks for longer (capped at a day)."""
    base = conf.retry_schedule()[attempts_made - 1]
    delay = base * random.uniform(0.9, 1.1)
    asked = _retry_after(result.headers if result else {})
    return max(delay, min(asked, RETRY_AFTER_CAP)) if asked else delay


def _retry_after(headers: dict) -> float:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return 0.0


def _status_error(status: int | None) -> str:
    if status is None or 200 <= status < 300:
        return ""
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed; a postback succeeds on 2xx only."
    return f"HTTP {status}: the receiver did not accept the postback."
