"""One attempt of one delivery: claim, send through the seam, record, retry or finish."""

from datetime import timedelta
from decimal import InvalidOperation

import pytest
from django.db import DataError
from django.utils import timezone

from postbacks.delivery import queue, single, tasks
from postbacks.models import Delivery, DeliveryState, EndpointHealth
from postbacks.transport.policy import HttpResult
from tests.factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db


class FakeSeam:
    """Stands in for the requests sender's send: records requests, answers from a list."""

    def __init__(self, *results):
        self.results = list(results) or [HttpResult(status=200, body="ok")]
        self.calls = []

    def __call__(self, method, url, *, headers, body=""):
        self.calls.append({"method": method, "url": url, "headers": headers, "body": body})
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]


@pytest.fixture
def seam(monkeypatch):
    fake = FakeSeam()
    monkeypatch.setattr("postbacks.transport.requests_sender.send", fake)
    return fake


@pytest.fixture
def delivery():
    conversion = ConversionFactory(click__aff_s1="abc")
    postback = PostbackFactory(
        affiliate=conversion.affiliate,
        url="https://tracker.example.com/pb?clickid={affS1}&payout={payout}",
    )
    return Delivery.objects.create(postback=postback, conversion=conversion, status="pending")


def test_success_records_the_attempt_and_finishes(seam, delivery):
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCESS and delivery.finished_at
    attempt = delivery.attempt_log.get()
    assert attempt.url == "https://tracker.example.com/pb?clickid=abc&payout=12.50"
    assert attempt.method == "GET" and attempt.response_status == 200
    assert attempt.request_headers["X-Postback-Id"] == str(delivery.uid)
    assert attempt.request_headers["User-Agent"].startswith("TrackdeskPostbacks/")
    assert seam.calls[0]["url"] == attempt.url


def test_task_run_twice_sends_once(seam, delivery):
    tasks.deliver(delivery.pk)
    tasks.deliver(delivery.pk)
    assert len(seam.calls) == 1
    assert delivery.attempt_log.count() == 1


def test_delivery_claimed_by_another_worker_is_not_sent(seam, delivery):
    Delivery.objects.filter(pk=delivery.pk).update(
        claimed_until=timezone.now() + timedelta(seconds=30)
    )
    assert single.attempt_delivery(delivery.pk) is None
    assert seam.calls == []


def test_expired_claim_of_a_dead_worker_is_taken_over(seam, delivery):
    Delivery.objects.filter(pk=delivery.pk).update(
        claimed_until=timezone.now() - timedelta(seconds=1), attempts=1
    )
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCESS and delivery.attempts == 2


@pytest.mark.parametrize(
    "result",
    [
        HttpResult(status=500),
        HttpResult(status=302),
        HttpResult(status=404),
        HttpResult(error="Connect timeout"),
    ],
)
def test_failure_schedules_a_retry_per_the_schedule(seam, delivery, settings, result):
    settings.POSTBACK_RETRY_SCHEDULE = [60, 300]
    seam.results = [result]
    before = timezone.now()
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.RETRYING
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 54 <= wait <= 67  # 60 s ± 10% jitter
    assert delivery.attempt_log.get().error


def test_retries_follow_the_schedule_then_the_delivery_fails(seam, delivery, settings):
    settings.POSTBACK_RETRY_SCHEDULE = [60, 300]
    seam.results = [HttpResult(status=503)]
    waits = []
    for _ in range(3):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        started = timezone.now()
        single.attempt_delivery(delivery.pk)
        delivery.refresh_from_db()
        waits.append((delivery.next_attempt_at - started).total_seconds())
    assert delivery.state == DeliveryState.FAILED
    assert delivery.attempt_log.count() == 3
    assert 54 <= waits[0] <= 67 and 270 <= waits[1] <= 331


def test_default_schedule_is_seven_retries_like_trackdesk(settings):
    assert len(settings.POSTBACK_RETRY_SCHEDULE) == 7
    assert settings.POSTBACK_RETRY_SCHEDULE[0] == 60
    assert settings.POSTBACK_RETRY_SCHEDULE[-1] == 86400


def test_retry_after_header_postpones_the_next_attempt(seam, delivery):
    seam.results = [HttpResult(status=429, headers={"Retry-After": "900"})]
    before = timezone.now()
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.next_attempt_at - before).total_seconds() >= 899


def test_refused_destination_fails_at_once_without_retry(seam, delivery):
    seam.results = [HttpResult(error="Destination not allowed: ...", permanent=True)]
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    assert "not allowed" in delivery.last_error


def test_blocked_destination_is_logged_on_the_delivery_and_never_retried(settings):
    """No seam patched: the real guard refuses the metadata address before any connection."""
    settings.POSTBACK_ALLOWED_NETWORKS = []
    conversion = ConversionFactory()
    postback = PostbackFactory(
        affiliate=conversion.affiliate, url="http://169.254.169.254/latest/meta-data?c={cid}"
    )
    blocked = Delivery.objects.create(postback=postback, conversion=conversion, status="pending")
    single.attempt_delivery(blocked.pk)
    blocked.refresh_from_db()
    assert blocked.state == DeliveryState.FAILED and blocked.attempts == 1
    assert blocked.last_error.startswith("Destination not allowed: 169.254.169.254")
    assert blocked.attempt_log.get().error == blocked.last_error


def test_an_unforeseen_error_while_rendering_is_a_failed_attempt_retried_later(
    seam, delivery, monkeypatch, settings
):
    settings.POSTBACK_BREAKER_THRESHOLD = 1

    def overflowing(*args, **kwargs):
        raise InvalidOperation([InvalidOperation])

    monkeypatch.setattr(single, "render_request", overflowing)
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert seam.calls == []
    assert delivery.state == DeliveryState.RETRYING and delivery.claimed_until is None
    assert delivery.last_error.startswith("Not sent: rendering failed: InvalidOperation")
    assert delivery.attempt_log.get().error == delivery.last_error
    assert not EndpointHealth.objects.exists()  # our error, not the endpoint's


def test_an_error_in_the_sender_is_a_failed_attempt(delivery, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("pool closed")

    monkeypatch.setattr("postbacks.transport.requests_sender.send", broken)
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.RETRYING
    assert delivery.attempt_log.get().error == "Sending failed: RuntimeError: pool closed"


def test_a_response_the_database_refuses_is_recorded_without_it(seam, delivery, monkeypatch):
    from postbacks.models import DeliveryAttempt

    real_save, saves = DeliveryAttempt.save, []

    def refuse_once(self, *args, **kwargs):
        saves.append(self.response_body)
        if len(saves) == 1:
            raise DataError("cannot store this response")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(DeliveryAttempt, "save", refuse_once)
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCESS  # recorded: not sent again
    attempt = delivery.attempt_log.get()
    assert attempt.response_status == 200 and attempt.response_body == ""
    assert "response not logged: DataError: cannot store this response" in attempt.error


def test_deactivated_postback_is_not_sent(seam, delivery):
    delivery.postback.active = False
    delivery.postback.save()
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert seam.calls == [] and delivery.state == DeliveryState.FAILED


def test_post_form_sends_parameters_in_the_body(seam, delivery):
    delivery.postback.method = "POST"
    delivery.postback.save()
    single.attempt_delivery(delivery.pk)
    call = seam.calls[0]
    assert call["method"] == "POST"
    assert call["url"] == "https://tracker.example.com/pb"
    assert call["body"] == "clickid=abc&payout=12.50"
    assert call["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_post_json_sends_the_rendered_json_body(seam, delivery):
    delivery.postback.method = "POST"
    delivery.postback.body_format = "json"
    delivery.postback.body_template = '{"click": "{affS1}", "payout": {payout}}'
    delivery.postback.save()
    single.attempt_delivery(delivery.pk)
    call = seam.calls[0]
    assert call["body"] == '{"click": "abc", "payout": 12.50}'
    assert call["headers"]["Content-Type"] == "application/json"


# --- which deliveries a worker may take (Delivery.objects.open/due/unclaimed) --------------------


@pytest.mark.parametrize(
    ("state", "is_open"),
    [
        (DeliveryState.PENDING, True),
        (DeliveryState.RETRYING, True),
        (DeliveryState.SUCCESS, False),
        (DeliveryState.FAILED, False),
    ],
)
def test_pending_and_retrying_deliveries_are_open(delivery, state, is_open):
    rows = Delivery.objects.filter(pk=delivery.pk)
    rows.update(state=state, next_attempt_at=timezone.now())
    assert rows.open().exists() is is_open
    assert rows.due(timezone.now()).exists() is is_open


def test_a_delivery_is_due_from_its_next_attempt_time_on(delivery):
    at = timezone.now() + timedelta(minutes=1)
    rows = Delivery.objects.filter(pk=delivery.pk)
    rows.update(next_attempt_at=at)
    assert not rows.due(at - timedelta(microseconds=1)).exists()
    assert rows.due(at).exists()


def test_a_claim_holds_a_delivery_until_it_runs_out(delivery):
    until = timezone.now() + timedelta(seconds=30)
    rows = Delivery.objects.filter(pk=delivery.pk)
    assert rows.unclaimed(timezone.now()).exists()  # never claimed
    rows.update(claimed_until=until)
    assert not rows.unclaimed(until).exists()
    assert rows.unclaimed(until + timedelta(microseconds=1)).exists()


# --- the sweeper and manual retry -------------------------------------------------------------


def test_sweeper_enqueues_pending_deliveries_a_dead_worker_left(delivery, broker_calls, settings):
    settings.POSTBACK_STALE_AFTER = 120
    Delivery.objects.filter(pk=delivery.pk).update(
        enqueued_at=timezone.now() - timedelta(minutes=10),
        claimed_until=timezone.now() - timedelta(minutes=5),
    )
    assert queue.sweep() == 1
    assert broker_calls == [delivery.pk]


def test_sweeper_leaves_recently_enqueued_and_claimed_deliveries(delivery, broker_calls):
    Delivery.objects.filter(pk=delivery.pk).update(enqueued_at=timezone.now())
    assert queue.sweep() == 0
    Delivery.objects.filter(pk=delivery.pk).update(
        enqueued_at=None, claimed_until=timezone.now() + timedelta(seconds=30)
    )
    assert queue.sweep() == 0
    assert broker_calls == []


def test_sweeper_enqueues_due_retries_only(delivery, broker_calls):
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.RETRYING, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    assert queue.sweep() == 0
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert queue.sweep() == 1


def test_sweeper_ignores_finished_deliveries(delivery, broker_calls):
    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.SUCCESS)
    assert queue.sweep() == 0


def test_retry_now_requeues_a_failed_delivery(
    seam, delivery, broker_calls, django_capture_on_commit_callbacks
):
    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.FAILED, attempts=8)
    with django_capture_on_commit_callbacks(execute=True):
        assert queue.retry_deliveries(Delivery.objects.all()) == 1
    assert broker_calls == [delivery.pk]
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCESS


def test_retry_now_leaves_successful_deliveries_alone(delivery, broker_calls):
    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.SUCCESS)
    assert queue.retry_deliveries(Delivery.objects.all()) == 0


def test_a_migration_schedules_the_sweeper_every_minute():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(func="postbacks.delivery.tasks.sweep")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        Schedule.MINUTES,
        1,
        -1,  # forever
    )
