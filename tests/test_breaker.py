"""Endpoint isolation: a failing endpoint is backed off, probed, closed again, or paused."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from postbacks.delivery import breaker, queue
from postbacks.delivery.single import attempt_delivery, claim
from postbacks.models import Delivery, DeliveryState, EndpointHealth, Postback
from postbacks.transport.policy import HttpResult
from tests.factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db

DOWN = "https://down.example.com/pb?c={cid}"
UP = "https://up.example.com/pb?c={cid}"


class Seam:
    """Stands in for postbacks.transport.requests_sender.send; answers per host."""

    def __init__(self):
        self.answers = {}
        self.calls = []
        self.while_sending = None  # what another worker does while this request is out

    def __call__(self, method, url, *, headers, body=""):
        self.calls.append(url)
        if self.while_sending:
            meanwhile, self.while_sending = self.while_sending, None
            meanwhile()
        host = breaker.endpoint_key(url)
        return self.answers.get(host, HttpResult(status=200))


@pytest.fixture
def seam(monkeypatch, settings):
    settings.POSTBACK_BREAKER_THRESHOLD = 3
    settings.POSTBACK_BREAKER_COOLDOWN = 30
    settings.POSTBACK_BREAKER_MAX_COOLDOWN = 3600
    settings.POSTBACK_RETRY_SCHEDULE = [60] * 10
    fake = Seam()
    fake.answers["down.example.com:443"] = HttpResult(error="No response within 10 s")
    monkeypatch.setattr("postbacks.transport.requests_sender.send", fake)
    return fake


def deliveries(url: str, count: int) -> list[Delivery]:
    postback = PostbackFactory(url=url)
    return [
        Delivery.objects.create(
            postback=postback,
            conversion=ConversionFactory(affiliate=postback.affiliate),
            status="pending",
        )
        for _ in range(count)
    ]


def health(host="down.example.com:443") -> EndpointHealth:
    return EndpointHealth.objects.get(host=host)


def test_endpoint_key_is_host_and_port():
    assert breaker.endpoint_key("https://Tracker.Example.com./pb?x={cid}") == (
        "tracker.example.com:443"
    )
    assert breaker.endpoint_key("http://127.0.0.2:8080/pb") == "127.0.0.2:8080"


def test_consecutive_failures_open_the_breaker(seam):
    for d in deliveries(DOWN, 3):
        attempt_delivery(d.pk)
    assert health().consecutive_failures == 3
    assert health().opened_until > timezone.now() + timedelta(seconds=29)


def test_open_breaker_defers_without_sending_or_using_a_retry(seam):
    *failing, waiting = deliveries(DOWN, 4)
    for d in failing:
        attempt_delivery(d.pk)
    calls_before = len(seam.calls)

    attempt_delivery(waiting.pk)

    waiting.refresh_from_db()
    assert len(seam.calls) == calls_before
    assert waiting.attempts == 0 and waiting.attempt_log.count() == 0
    assert waiting.state == DeliveryState.PENDING
    assert waiting.next_attempt_at == health().opened_until
    assert waiting.claimed_until is None


def test_open_breaker_sets_the_postbacks_whole_backlog_aside_at_once(seam):
    """One task finds the endpoint backed off: its postback's other due deliveries move to the
    same time in one go, so the sweeper does not enqueue them ahead of other endpoints'."""
    made = deliveries(DOWN, 3 + 1 + 50)
    failing, first, backlog = made[:3], made[3], made[4:]
    (healthy,) = deliveries(UP, 1)
    for d in failing:
        attempt_delivery(d.pk)

    attempt_delivery(first.pk)

    opened_until = health().opened_until
    waiting = Delivery.objects.filter(pk__in=[d.pk for d in [first, *backlog]])
    assert set(waiting.values_list("next_attempt_at", "attempts")) == {(opened_until, 0)}
    assert list(queue.due_for_enqueue().values_list("pk", flat=True)) == [healthy.pk]


def test_while_a_probe_is_out_the_backlog_is_not_set_aside(seam):
    """Half-open: only what a worker claimed waits for the probe; the backlog stays due, so it
    goes as soon as the probe closes the breaker (not a claim period later)."""
    made = deliveries(DOWN, 3 + 1 + 1 + 5)
    failing, probe, other, backlog = made[:3], made[3], made[4], made[5:]
    for d in failing:
        attempt_delivery(d.pk)
    EndpointHealth.objects.update(opened_until=timezone.now() - timedelta(seconds=1))
    assert not breaker.defer_if_open(claim(probe.pk))  # one worker claims the probe, sends it

    attempt_delivery(other.pk)  # another worker's delivery waits for that probe

    other.refresh_from_db()
    assert other.next_attempt_at == health().opened_until and health().probing
    assert all(
        d.next_attempt_at < timezone.now()
        for d in Delivery.objects.filter(pk__in=[d.pk for d in backlog])
    )


def test_an_open_breaker_does_not_hold_back_other_endpoints(seam):
    for d in deliveries(DOWN, 3):
        attempt_delivery(d.pk)
    (healthy,) = deliveries(UP, 1)
    attempt_delivery(healthy.pk)
    healthy.refresh_from_db()
    assert healthy.state == DeliveryState.SUCCESS


def test_half_open_lets_one_probe_through_and_success_closes(seam, broker_calls, settings):
    settings.POSTBACK_CONCURRENT_DISPATCH = False  # a task per delivery: each one is queued
    *failing, first, second = deliveries(DOWN, 5)
    for d in failing + [first]:
        attempt_delivery(d.pk)  # the 4th is deferred
    EndpointHealth.objects.update(opened_until=timezone.now() - timedelta(seconds=1))
    Delivery.objects.filter(pk__in=[first.pk, second.pk]).update(next_attempt_at=timezone.now())
    seam.answers.clear()  # the endpoint is back
    # Two workers at once: the first sends the probe, the second waits for its outcome.
    seam.while_sending = lambda: attempt_delivery(second.pk)
    calls_before = len(seam.calls)

    attempt_delivery(first.pk)

    second.refresh_from_db()
    assert len(seam.calls) == calls_before + 1  # the probe only
    assert second.attempts == 0 and not second.attempt_log.exists()
    assert health().opened_until is None and health().consecutive_failures == 0
    # The probe's success ends the wait of the delivery that waited for it: due and queued now.
    assert second.next_attempt_at <= timezone.now() and second.pk in broker_calls
    attempt_delivery(second.pk)
    second.refresh_from_db()
    assert second.state == DeliveryState.SUCCESS


def test_a_failed_probe_soon_after_opening_backs_off_for_the_first_back_off_again(seam):
    *failing, probe = deliveries(DOWN, 4)
    for d in failing:
        attempt_delivery(d.pk)
    EndpointHealth.objects.update(opened_until=timezone.now() - timedelta(seconds=1))
    before = timezone.now()
    attempt_delivery(probe.pk)
    probe.refresh_from_db()
    assert probe.attempts == 1 and probe.attempt_log.count() == 1
    wait = (health().opened_until - before).total_seconds()
    assert 29 <= wait <= 31 and not health().probing


@pytest.mark.parametrize("backed_off_minutes, wait", [(20, 300), (600, 3600)])
def test_a_failed_probe_backs_off_a_quarter_of_the_time_backed_off_up_to_the_cap(
    seam, backed_off_minutes, wait
):
    (probe,) = deliveries(DOWN, 1)
    now = timezone.now()
    EndpointHealth.objects.create(
        host="down.example.com:443",
        consecutive_failures=40,
        first_failure_at=now - timedelta(minutes=backed_off_minutes),
        opened_at=now - timedelta(minutes=backed_off_minutes),
        opened_until=now - timedelta(seconds=1),
    )
    attempt_delivery(probe.pk)
    assert wait - 1 <= (health().opened_until - now).total_seconds() <= wait + 1


def test_concurrent_failures_back_off_for_the_first_back_off_not_the_longest(seam):
    """16 requests out at once when the endpoint went down (8 in flight per process, two
    processes) fail together: the breaker opens for POSTBACK_BREAKER_COOLDOWN, and failures
    finishing after it opened do not back it off further; only a failed probe does."""
    made = deliveries(DOWN, 1)
    (d,) = made
    d.last_error = "HTTP 503: the receiver did not accept the postback."
    failure = HttpResult(status=503)
    before = timezone.now()

    breaker.record_outcomes([(d, failure)] * 16)  # one tick of one process's batch
    opened_until = health().opened_until
    breaker.record_outcomes([(d, failure)] * 8)  # the next tick, or the other process
    for _ in range(8):  # one delivery at a time (concurrent dispatch off), workers at once
        breaker.record_outcome(d, failure)

    assert 29 <= (opened_until - before).total_seconds() <= 31
    assert health().opened_until == opened_until and health().consecutive_failures == 32


def test_a_successful_probe_lets_the_whole_backlog_go_at_once(seam, broker_calls, settings):
    """The endpoint is back: the deliveries set aside for it and the retries of the failures
    during the outage become due and are queued, not left to the retry schedule."""
    settings.POSTBACK_CONCURRENT_DISPATCH = False  # a task per delivery: each one is queued
    *failing, waiting = deliveries(DOWN, 4)
    for d in failing:
        attempt_delivery(d.pk)  # three failures: retries a minute from now; the breaker opens
    attempt_delivery(waiting.pk)  # set aside until the breaker half-opens
    (elsewhere,) = deliveries(UP, 1)
    Delivery.objects.filter(pk=elsewhere.pk).update(
        state=DeliveryState.RETRYING, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    (probe,) = deliveries(DOWN, 1)
    EndpointHealth.objects.update(opened_until=timezone.now() - timedelta(seconds=1))
    seam.answers.clear()
    broker_calls.clear()

    attempt_delivery(probe.pk)

    now = timezone.now()
    backlog = Delivery.objects.filter(pk__in=[d.pk for d in [*failing, waiting]])
    assert all(d.next_attempt_at <= now for d in backlog)
    assert sorted(broker_calls) == sorted(d.pk for d in backlog)
    assert Delivery.objects.get(pk=elsewhere.pk).next_attempt_at > now  # another endpoint's
    assert backlog.filter(attempts=1).count() == 3  # no attempt made or given back meanwhile


def test_at_half_open_the_longest_waiting_delivery_is_queued_as_the_probe(seam, broker_calls):
    failing = deliveries(DOWN, 3)
    for d in failing:
        attempt_delivery(d.pk)  # each waits for its retry, a minute after its failure
    host = "down.example.com:443"
    assert breaker.queue_probe(host) == []  # backed off: not yet
    EndpointHealth.objects.update(opened_until=timezone.now() - timedelta(seconds=1))

    first, *others = Delivery.objects.order_by("next_attempt_at")  # retry times have jitter

    assert breaker.queue_probe(host) == [first.pk]

    assert broker_calls == [first.pk]
    assert Delivery.objects.get(pk=first.pk).next_attempt_at <= timezone.now()
    assert all(d.next_attempt_at > timezone.now() for d in others)
    attempt_delivery(first.pk)  # the task it queued sends the probe, which fails
    assert len(seam.calls) == 4 and health().opened_until > timezone.now()


def test_a_worker_process_that_opens_the_breaker_queues_the_probe_when_it_half_opens(
    seam, monkeypatch, settings
):
    """Without the nudge the probe would wait for the sweeper's next run (up to 90 s late)."""
    from django_q.signals import pre_execute

    settings.POSTBACK_BREAKER_COOLDOWN = 0.2
    woken = threading.Event()
    monkeypatch.setattr(breaker, "queue_probe", lambda host: woken.set())
    breaker.forget_wakes()  # this test process has not run a task yet
    (d,) = deliveries(DOWN, 1)
    failure = HttpResult(status=503)
    for _ in range(3):
        breaker.record_outcome(d, failure)
    assert health().opened_until and not breaker.pending_wakes()  # runs no tasks: no timer
    EndpointHealth.objects.all().delete()

    pre_execute.send(sender="django_q", func=None, task={})  # as django-q2's worker does
    for _ in range(3):
        breaker.record_outcome(d, failure)

    assert breaker.pending_wakes() == ["down.example.com:443"]
    assert woken.wait(5)
    breaker.forget_wakes()


def test_refusals_and_test_sends_do_not_count_against_the_endpoint(seam):
    refused = HttpResult(error="Destination not allowed", permanent=True)
    seam.answers["down.example.com:443"] = refused
    for d in deliveries(DOWN, 4):
        attempt_delivery(d.pk)
    seam.answers["down.example.com:443"] = HttpResult(status=503)
    for d in deliveries(DOWN, 4):
        Delivery.objects.filter(pk=d.pk).update(is_test=True)
        attempt_delivery(d.pk)
    assert not EndpointHealth.objects.exists()


def test_success_ends_the_failure_streak(seam):
    for d in deliveries(DOWN, 2):
        attempt_delivery(d.pk)
    seam.answers.clear()
    (ok,) = deliveries(DOWN, 1)
    attempt_delivery(ok.pk)
    assert health().consecutive_failures == 0 and health().first_failure_at is None


def test_threshold_zero_turns_the_breaker_off(seam, settings):
    settings.POSTBACK_BREAKER_THRESHOLD = 0
    for d in deliveries(DOWN, 5):
        attempt_delivery(d.pk)
    assert len(seam.calls) == 5 and health().opened_until is None


# --- auto-pause ------------------------------------------------------------------------------


def test_endpoint_failing_for_days_pauses_its_postbacks_with_the_reason(seam, settings):
    settings.POSTBACK_AUTO_PAUSE_AFTER = 5
    (d,) = deliveries(DOWN, 1)
    other_on_same_endpoint = PostbackFactory(url="https://down.example.com/other")
    elsewhere = PostbackFactory(url=UP)
    EndpointHealth.objects.create(
        host="down.example.com:443",
        consecutive_failures=40,
        first_failure_at=timezone.now() - timedelta(days=5, minutes=1),
    )
    attempt_delivery(d.pk)
    paused = Postback.objects.filter(active=False)
    assert set(paused) == {d.postback, other_on_same_endpoint}
    assert "down.example.com:443 has failed every attempt since" in paused[0].paused_reason
    elsewhere.refresh_from_db()
    assert elsewhere.active and not elsewhere.paused_reason


def test_no_pause_before_the_period_or_when_turned_off(seam, settings):
    (d,) = deliveries(DOWN, 1)
    EndpointHealth.objects.create(
        host="down.example.com:443", first_failure_at=timezone.now() - timedelta(days=30)
    )
    settings.POSTBACK_AUTO_PAUSE_AFTER = 0
    attempt_delivery(d.pk)
    assert Postback.objects.get().active


def test_resuming_clears_the_reason_and_the_streak(seam):
    (d,) = deliveries(DOWN, 1)
    Postback.objects.update(active=False, paused_reason="Paused automatically ...")
    EndpointHealth.objects.create(
        host="down.example.com:443",
        consecutive_failures=9,
        first_failure_at=timezone.now() - timedelta(days=9),
    )
    breaker.resume(Postback.objects.get())
    assert Postback.objects.get().paused_reason == ""
    assert health().first_failure_at is None and health().consecutive_failures == 0


# --- work ordering ---------------------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [False, True])
def test_sweeper_enqueues_the_longest_waiting_deliveries_first(broker_calls, settings, concurrent):
    settings.POSTBACK_CONCURRENT_DISPATCH = concurrent
    newer, older = deliveries(UP, 2)
    now = timezone.now()
    Delivery.objects.filter(pk=newer.pk).update(next_attempt_at=now - timedelta(minutes=1))
    Delivery.objects.filter(pk=older.pk).update(next_attempt_at=now - timedelta(minutes=9))
    queue.sweep()
    # One task per delivery, or one per batch (its drain claims the oldest due first).
    assert broker_calls == ([older.pk] if concurrent else [older.pk, newer.pk])


def test_deliveries_of_an_open_endpoint_leave_the_sweep_until_it_half_opens(seam, broker_calls):
    for d in deliveries(DOWN, 4):
        attempt_delivery(d.pk)
    Delivery.objects.update(enqueued_at=None)
    (healthy,) = deliveries(UP, 1)
    queue.sweep()
    # The three failed ones wait for their retry, the deferred one for the half-open breaker.
    assert broker_calls == [healthy.pk]


def test_check_warns_when_a_claim_can_expire_during_a_request(settings):
    from postbacks.checks import claim_outlasts_the_request

    assert claim_outlasts_the_request(None) == []
    settings.POSTBACK_CLAIM_SECONDS, settings.POSTBACK_TOTAL_TIMEOUT = 10, 15
    (warning,) = claim_outlasts_the_request(None)
    assert warning.id == "postbacks.W001"


def test_check_warns_when_a_drain_can_outlive_its_task(settings):
    from postbacks.checks import drain_ends_before_the_task_timeout

    assert drain_ends_before_the_task_timeout(None) == []
    settings.POSTBACK_DRAIN_SECONDS = 50
    (warning,) = drain_ends_before_the_task_timeout(None)
    assert warning.id == "postbacks.W002"
    settings.POSTBACK_CONCURRENT_DISPATCH = False
    assert drain_ends_before_the_task_timeout(None) == []


def test_a_delivery_waiting_for_a_rate_is_never_queued_as_the_probe(seam, broker_calls):
    """It would send nothing (no rate yet), so the half-open probe would be lost."""
    failing = deliveries(DOWN, 3)
    for d in failing:
        attempt_delivery(d.pk)
    EndpointHealth.objects.update(opened_until=timezone.now() - timedelta(seconds=1))
    first, second, _ = Delivery.objects.order_by("next_attempt_at")
    Delivery.objects.filter(pk=first.pk).update(waiting_for_rate="EUR→GBP")

    assert breaker.queue_probe("down.example.com:443") == [second.pk]
