"""Concurrent dispatch (postbacks/delivery/batch.py): batch claims, many in flight, bulk log."""

import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future
from datetime import timedelta
from decimal import InvalidOperation

import pytest
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from demo.sink import Sink
from postbacks.delivery import batch, queue, tasks
from postbacks.delivery.queue import (
    send_to_broker as real_send_to_broker,
)  # before the fixture patches it
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState, EndpointHealth
from postbacks.transport.policy import HttpResult
from tests.factories import ConversionFactory, PostbackFactory
from trackdesk.broker import WakingRedis

pytestmark = pytest.mark.django_db


class FakeSender:
    """Stands in for ConcurrentSender: answers at once, or later for URLs marked as hanging."""

    def __init__(self, result=None, *, hang_seconds=0.3):
        self.result = result or HttpResult(status=200, body="ok")
        self.hang_seconds = hang_seconds
        self.calls = []
        self.in_flight = Counter()
        self.peak = Counter()
        self.lock = threading.Lock()

    def submit(self, method, url, headers, body=""):
        host = url.split("/")[2]
        future = Future()
        with self.lock:
            self.calls.append({"method": method, "url": url, "headers": headers, "body": body})
            self.in_flight[host] += 1
            self.peak[host] = max(self.peak[host], self.in_flight[host])
        if "hang" in host or "slow" in host:
            result = (
                self.result if "slow" in host else HttpResult(error="No response (read timeout)")
            )
            threading.Timer(self.hang_seconds, self._finish, (future, host, result)).start()
        else:
            self._finish(future, host, self.result)
        return future

    def close(self):
        self.closed = True

    def _finish(self, future, host, result):
        with self.lock:
            self.in_flight[host] -= 1
        future.set_result(result)


def make_deliveries(count, *, url="https://tracker.example.com/pb?c={affS1}", **delivery_fields):
    conversion = ConversionFactory()
    postback = PostbackFactory(affiliate=conversion.affiliate, url=url)
    deliveries = []
    for i in range(count):
        c = ConversionFactory(click__affiliate=conversion.affiliate, click__aff_s1=f"c{i}")
        deliveries.append(
            Delivery(postback=postback, conversion=c, status="pending", **delivery_fields)
        )
    return Delivery.objects.bulk_create(deliveries)


def test_drain_sends_every_due_delivery_once_and_logs_each_attempt():
    deliveries = make_deliveries(30)
    sender = FakeSender()
    assert batch.drain(sender=sender) == 30
    assert len(sender.calls) == 30
    assert len({c["headers"]["X-Postback-Id"] for c in sender.calls}) == 30
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SUCCESS}
    assert DeliveryAttempt.objects.count() == 30
    attempt = DeliveryAttempt.objects.get(delivery=deliveries[0])
    assert attempt.number == 1 and attempt.response_status == 200
    assert attempt.url == "https://tracker.example.com/pb?c=c0"
    assert attempt.worker  # which node and process sent it

    assert batch.drain(sender=sender) == 0  # a second run finds nothing to send
    assert len(sender.calls) == 30


def test_claim_batch_takes_only_due_unclaimed_open_deliveries():
    now = timezone.now()
    due = make_deliveries(2)
    make_deliveries(1, next_attempt_at=now + timedelta(hours=1))
    make_deliveries(1, claimed_until=now + timedelta(seconds=30))
    make_deliveries(1, state=DeliveryState.SUCCESS)
    make_deliveries(1, state=DeliveryState.FAILED)

    claimed = batch.claim_batch(100)
    assert sorted(d.pk for d in claimed) == sorted(d.pk for d in due)
    assert all(d.attempts == 1 and d.claimed_until for d in claimed)
    assert batch.claim_batch(100) == []  # claimed rows are not handed out twice


def test_claim_batch_respects_the_limit():
    make_deliveries(5)
    assert len(batch.claim_batch(3)) == 3
    assert len(batch.claim_batch(3)) == 2


@pytest.mark.django_db(transaction=True)
def test_claims_racing_on_separate_connections_never_take_a_row_twice():
    deliveries = make_deliveries(120)
    taken, errors, start = [], [], threading.Barrier(4)

    def claim_until_none():
        try:
            start.wait()
            while found := batch.claim_batch(7):
                taken.extend(d.pk for d in found)
        except Exception as exc:  # shown by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim_until_none) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(taken) == sorted(d.pk for d in deliveries)  # each once, none left behind
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_takes_the_message_at_once_can_claim_the_delivery(monkeypatch, orm_broker):
    """The sweeper, release_next and the probe mark enqueued_at, then send the message. A
    worker may take it before this process goes on; were the mark not committed yet, its claim
    (FOR UPDATE SKIP LOCKED) would pass over the locked row, find nothing, and the delivery
    would wait for a sweep minutes later (the e2e ordering test caught this on Redis)."""
    if orm_broker:
        pytest.skip("the ORM broker's message commits with the mark: no worker sees it before")
    (delivery,) = make_deliveries(1)
    claimed, errors = [], []

    def worker_takes_it_at_once(delivery_id):
        def claim():
            try:
                claimed.extend(d.pk for d in batch.claim_batch(10))
            except Exception as exc:  # shown by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=claim)
        thread.start()
        thread.join(timeout=30)

    monkeypatch.setattr(queue, "send_to_broker", worker_takes_it_at_once)
    assert queue.enqueue([delivery.pk]) == 1
    assert errors == []
    assert claimed == [delivery.pk]


def test_a_claim_is_one_statement_and_one_read_of_what_it_took():
    make_deliveries(3)

    with CaptureQueriesContext(connection) as queries:
        assert len(batch.claim_batch(10)) == 3

    sql = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(sql) == 2, "\n".join(sql)
    assert sql[0].startswith("UPDATE") and "RETURNING" in sql[0]
    if connection.vendor == "postgresql":
        assert "FOR UPDATE SKIP LOCKED" in sql[0]


def test_failure_schedules_a_retry_on_the_schedule(settings):
    settings.POSTBACK_RETRY_SCHEDULE = [60, 300]
    make_deliveries(3)
    before = timezone.now()
    batch.drain(sender=FakeSender(HttpResult(status=503)))
    for d in Delivery.objects.all():
        assert d.state == DeliveryState.RETRYING and d.last_status_code == 503
        assert d.claimed_until is None
        assert timedelta(seconds=50) < d.next_attempt_at - before < timedelta(seconds=70)
    assert batch.drain(sender=FakeSender()) == 0  # not due yet


def test_last_scheduled_failure_fails_the_delivery(settings):
    settings.POSTBACK_RETRY_SCHEDULE = [60]
    make_deliveries(2, attempts=1, state=DeliveryState.RETRYING)
    batch.drain(sender=FakeSender(HttpResult(status=500)))
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.FAILED}


def test_refused_destination_fails_at_once_without_retry():
    make_deliveries(2)
    refused = HttpResult(error="Destination not allowed: 10.0.0.1", permanent=True)
    batch.drain(sender=FakeSender(refused))
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.FAILED}
    assert DeliveryAttempt.objects.filter(error__startswith="Destination not allowed").count() == 2


def test_inactive_postback_is_logged_as_not_sent():
    deliveries = make_deliveries(2)
    deliveries[0].postback.__class__.objects.update(active=False)
    sender = FakeSender()
    batch.drain(sender=sender)
    assert sender.calls == []
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.FAILED}


def test_a_hanging_receiver_gets_a_bounded_share_and_others_still_go_out(settings):
    settings.POSTBACK_CONCURRENCY = 10
    settings.POSTBACK_PER_HOST_CONCURRENCY = 3
    settings.POSTBACK_BATCH_SIZE = 10
    settings.POSTBACK_BREAKER_THRESHOLD = 0  # the share alone; the breaker is tested below
    make_deliveries(12, url="https://hang.example.com/pb?c={affS1}")
    make_deliveries(20, url="https://healthy.example.com/pb?c={affS1}")
    sender = FakeSender(hang_seconds=0.2)

    batch.drain(sender=sender)

    assert sender.peak["hang.example.com"] <= 3
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 20
    assert Delivery.objects.filter(state=DeliveryState.RETRYING).count() == 12
    assert DeliveryAttempt.objects.count() == 32


def drain_saving_one_while_a_request_hangs(on_save=lambda delivery: None):
    """Drain one delivery whose request hangs for a second; when it goes out, save one for a
    healthy endpoint (and call `on_save` with it). Returns the attempts, the saved delivery
    read again, and, for each later request, whether the hanging one was still out."""
    make_deliveries(1, url="https://hang.example.com/pb?c={affS1}")
    sender = FakeSender(hang_seconds=1.0)
    submit, hanging, later, hang_was_out = sender.submit, [], [], []

    def submit_and_note(method, url, headers, body=""):
        future = submit(method, url, headers, body)
        if not hanging:
            hanging.append(future)  # saved while the hanging request is out:
            later.extend(make_deliveries(1, url="https://healthy.example.com/pb?c={affS1}"))
            on_save(later[0])
        else:
            hang_was_out.append(not hanging[0].done())
        return future

    sender.submit = submit_and_note
    attempts = batch.drain(sender=sender)
    later[0].refresh_from_db()
    return attempts, later[0], hang_was_out


def test_a_drain_waiting_for_a_hanging_request_sends_what_falls_due_meanwhile():
    """The drain took all that was due and waits for one hanging request; a conversion saved
    meanwhile queues a task that may need this very worker, so the drain itself sends it while
    the hanging request is still out (not after it, as once: up to the read timeout later)."""
    attempts, later, hang_was_out = drain_saving_one_while_a_request_hangs()
    assert attempts == 2
    assert later.state == DeliveryState.SUCCESS
    assert hang_was_out == [True]


@pytest.fixture
def waking_broker(monkeypatch):
    """The Redis broker that wakes drains, on a queue of its own, made the process's broker."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: the ORM broker neither wakes drains nor coalesces")
    waking = WakingRedis(list_key=f"test-{uuid.uuid4().hex}")
    monkeypatch.setattr(queue, "broker", lambda: waking)
    yield waking
    waking.connection.delete(waking.list_key, waking.pending_key, waking.wake_key)


def test_a_drain_waiting_for_a_hanging_request_is_woken_by_a_new_task(monkeypatch, waking_broker):
    """On Redis the task of a conversion saved while the drain waits for a hanging request
    wakes the drain, which sends it at once: not at its next look (made an hour here), nor
    after the hanging request."""
    monkeypatch.setattr(batch, "LOOK_AGAIN", 3600.0)
    # As the commit of a conversion does, the saved delivery's task is queued.
    attempts, later, hang_was_out = drain_saving_one_while_a_request_hangs(
        lambda delivery: real_send_to_broker(delivery.pk)
    )
    assert attempts == 2
    assert later.state == DeliveryState.SUCCESS
    assert hang_was_out == [True]


def test_tasks_that_send_what_is_due_are_pending_one_per_worker_at_most(settings, waking_broker):
    """While as many are queued, not started, as there are workers, another would repeat
    their claims: none is sent. Once one starts, one more is sent; when their count expires
    (lost, or the workers held), they are sent again."""
    settings.POSTBACK_CONCURRENT_DISPATCH = True
    waking_broker.pending_tasks = 2
    waking_broker.PENDING_FOR = 0.3
    for delivery_id in (1, 2, 3, 4):
        real_send_to_broker(delivery_id)
    assert waking_broker.queue_size() == 2  # a backlog queued at once keeps both workers busy

    waking_broker.task_started()
    real_send_to_broker(5)
    real_send_to_broker(6)
    assert waking_broker.queue_size() == 3

    time.sleep(0.4)  # the count expired: those pending may be lost
    for delivery_id in (7, 8, 9):
        real_send_to_broker(delivery_id)
    assert waking_broker.queue_size() == 5
    waking_broker.task_started()  # started tasks of the expired count leave the new one alone
    waking_broker.task_started()
    waking_broker.task_started()
    real_send_to_broker(10)
    assert waking_broker.queue_size() == 6


def test_other_tasks_are_always_sent_and_every_task_leaves_one_wake_up(settings, waking_broker):
    settings.POSTBACK_CONCURRENT_DISPATCH = False  # one task per delivery: each is sent
    for delivery_id in (1, 2, 3):
        real_send_to_broker(delivery_id)
    assert waking_broker.queue_size() == 3
    assert waking_broker.wait_for_wake(0.01) is True
    assert waking_broker.wait_for_wake(0.01) is False  # one wake-up, however many tasks


@pytest.mark.django_db(transaction=True)
def test_a_task_lets_the_next_be_sent_before_it_claims(monkeypatch, settings, waking_broker):
    """Whatever was committed before a task was left unsent, the drain of the pending one
    sees: it clears the mark first."""
    settings.POSTBACK_CONCURRENT_DISPATCH = True
    make_deliveries(2)
    real_send_to_broker(1)
    marked_at_claim = []
    claim_batch = batch.claim_batch

    def note_the_mark(*args, **kwargs):
        marked_at_claim.append(waking_broker.connection.exists(waking_broker.pending_key))
        return claim_batch(*args, **kwargs)

    monkeypatch.setattr(batch, "claim_batch", note_the_mark)
    monkeypatch.setattr("postbacks.transport.aiohttp_sender.ConcurrentSender", FakeSender)
    assert tasks.deliver_due() == 2
    assert marked_at_claim and not any(marked_at_claim)


def test_spent_budget_hands_the_rest_to_another_task(broker_calls, settings):
    settings.POSTBACK_BATCH_SIZE = 2
    make_deliveries(5)
    batch.drain(sender=FakeSender(), budget=0)
    assert Delivery.objects.filter(attempts=0).count() == 5
    assert len(broker_calls) == 1  # one due delivery queued: its task drains the rest


def test_deliver_due_task_drains(monkeypatch):
    make_deliveries(4)
    sender = FakeSender()
    monkeypatch.setattr("postbacks.transport.aiohttp_sender.ConcurrentSender", lambda: sender)
    assert tasks.deliver_due() == 4
    assert len(sender.calls) == 4


def test_a_task_drains_even_when_the_broker_cannot_be_told_it_started(monkeypatch):
    """Redis gone between taking the message and telling it the task started: the deliveries
    are in the database, so the task sends them anyway (the pending count expires by itself)."""

    class Unreachable:
        def task_started(self):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(queue, "broker", Unreachable)
    make_deliveries(3)
    monkeypatch.setattr("postbacks.transport.aiohttp_sender.ConcurrentSender", FakeSender)
    assert tasks.deliver_due() == 3
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 3


def test_enqueue_uses_the_concurrent_task_unless_switched_off(settings, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "postbacks.delivery.queue.async_task", lambda func, *a, **k: sent.append((func, a))
    )
    settings.POSTBACK_CONCURRENT_DISPATCH = True
    real_send_to_broker(5)
    settings.POSTBACK_CONCURRENT_DISPATCH = False
    real_send_to_broker(6)
    assert sent == [
        ("postbacks.delivery.tasks.deliver_due", ()),  # whatever is due
        ("postbacks.delivery.tasks.deliver", (6,)),
    ]


# --- circuit breaker (postbacks/delivery/breaker.py), the same rules as one delivery at a time


@pytest.fixture
def breaker_on(settings):
    settings.POSTBACK_BREAKER_THRESHOLD = 3
    settings.POSTBACK_BREAKER_COOLDOWN = 30
    settings.POSTBACK_BREAKER_MAX_COOLDOWN = 3600
    settings.POSTBACK_RETRY_SCHEDULE = [60] * 10


def test_a_backed_off_endpoints_backlog_does_not_starve_other_endpoints(breaker_on, settings):
    """A long, older backlog for a dead endpoint is claimed first (oldest first); it is set
    aside as a whole, so the next claim reaches the healthy endpoint's deliveries."""
    settings.POSTBACK_BATCH_SIZE = 20
    EndpointHealth.objects.create(
        host="tracker.example.com:443",
        consecutive_failures=5,
        opened_until=timezone.now() + timedelta(seconds=300),
    )
    old = timezone.now() - timedelta(minutes=5)
    backlog = make_deliveries(200, next_attempt_at=old)
    healthy = make_deliveries(3, url="https://up.example.com/pb?c={affS1}")
    sender = FakeSender()
    with CaptureQueriesContext(connection) as queries:
        assert batch.drain(sender=sender) == 3
    assert [c["url"].split("/")[2] for c in sender.calls] == ["up.example.com"] * 3
    claims = [q for q in queries if q["sql"].startswith("UPDATE") and "claimed_until" in q["sql"]]
    assert len(claims) < 10  # not one claim per batch of the backlog (200 / 20)
    opened_until = EndpointHealth.objects.get(host="tracker.example.com:443").opened_until
    assert set(
        Delivery.objects.filter(pk__in=[d.pk for d in backlog]).values_list(
            "next_attempt_at", "attempts", "claimed_until"
        )
    ) == {(opened_until, 0, None)}
    assert all(d.attempt_log.count() == 0 for d in backlog)
    assert {d.pk for d in healthy} == set(
        Delivery.objects.filter(state=DeliveryState.SUCCESS).values_list("pk", flat=True)
    )


def test_failures_in_a_batch_open_the_breaker(breaker_on):
    make_deliveries(5, url="https://hang.example.com/pb?c={affS1}")
    batch.drain(sender=FakeSender(hang_seconds=0.01))
    health = EndpointHealth.objects.get(host="hang.example.com:443")
    assert health.consecutive_failures == 5
    assert health.opened_until > timezone.now() + timedelta(seconds=29)
    assert "read timeout" in health.last_error


def test_an_open_breaker_defers_a_batch_without_sending_or_using_retries(breaker_on):
    EndpointHealth.objects.create(
        host="tracker.example.com:443",
        consecutive_failures=3,
        opened_until=timezone.now() + timedelta(seconds=30),
    )
    waiting = make_deliveries(4)
    healthy = make_deliveries(2, url="https://up.example.com/pb?c={affS1}")
    sender = FakeSender()

    assert batch.drain(sender=sender) == 2

    assert [c["url"].split("/")[2] for c in sender.calls] == ["up.example.com"] * 2
    opened_until = EndpointHealth.objects.get(host="tracker.example.com:443").opened_until
    for d in waiting:
        d.refresh_from_db()
        assert d.attempts == 0 and d.attempt_log.count() == 0 and d.claimed_until is None
        assert d.state == DeliveryState.PENDING and d.next_attempt_at == opened_until
    assert {d.state for d in Delivery.objects.filter(pk__in=[h.pk for h in healthy])} == {
        DeliveryState.SUCCESS
    }


def test_half_open_sends_one_probe_per_batch_and_its_success_lets_the_rest_go(breaker_on):
    EndpointHealth.objects.create(
        host="tracker.example.com:443",
        consecutive_failures=3,
        opened_until=timezone.now() - timedelta(seconds=1),
    )
    make_deliveries(4)
    backed_off_at_send = []

    class Watching(FakeSender):
        def submit(self, method, url, headers, body=""):
            health = EndpointHealth.objects.get(host="tracker.example.com:443")
            backed_off_at_send.append(health.opened_until is not None)
            return super().submit(method, url, headers, body)

    batch.drain(sender=Watching())

    # The probe went alone while the breaker was half-open; the others, which waited for its
    # outcome, went in the same drain once it had closed the breaker.
    assert backed_off_at_send == [True, False, False, False]
    health = EndpointHealth.objects.get(host="tracker.example.com:443")
    assert health.consecutive_failures == 0 and health.opened_until is None
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS, attempts=1).count() == 4


def test_a_success_after_failures_in_one_batch_ends_the_streak(breaker_on):
    from postbacks.delivery import breaker

    (delivery,) = make_deliveries(1)
    delivery.last_error = "HTTP 503"
    fail, ok = HttpResult(status=503), HttpResult(status=200)
    breaker.record_outcomes([(delivery, fail), (delivery, fail), (delivery, ok)])
    assert EndpointHealth.objects.filter(consecutive_failures__gt=0).count() == 0
    breaker.record_outcomes([(delivery, ok), (delivery, fail), (delivery, fail)])
    assert EndpointHealth.objects.get().consecutive_failures == 2


# --- slow start ------------------------------------------------------------------------------


def test_a_failing_endpoint_gets_a_handful_of_requests_before_the_breaker_opens(settings):
    settings.POSTBACK_BREAKER_THRESHOLD = 3
    make_deliveries(100, url="https://hang.example.com/pb?c={affS1}")
    sender = FakeSender(hang_seconds=0.05)
    batch.drain(sender=sender)
    assert sender.peak["hang.example.com"] == batch.INITIAL_WINDOW
    assert len(sender.calls) == batch.INITIAL_WINDOW  # then the breaker set the rest aside
    assert Delivery.objects.filter(attempts=0).count() == 100 - batch.INITIAL_WINDOW


def test_the_window_grows_with_successes_up_to_the_share(settings):
    settings.POSTBACK_PER_HOST_CONCURRENCY = 40
    make_deliveries(300, url="https://slow.example.com/pb?c={affS1}")
    sender = FakeSender(hang_seconds=0.02)
    batch.drain(sender=sender)
    assert len(sender.calls) == 300
    assert batch.INITIAL_WINDOW < sender.peak["slow.example.com"] <= 40


# --- slots per endpoint (host:port), not per postback ----------------------------------------


def test_many_postbacks_on_one_hanging_host_get_one_window_in_total(settings):
    """Ten postbacks pointing at one hanging tracker share its slow-start window: the host gets
    INITIAL_WINDOW requests in all (not ten windows) before its breaker opens."""
    settings.POSTBACK_BREAKER_THRESHOLD = 3
    for i in range(10):
        make_deliveries(10, url=f"https://hang.example.com/pb{i}?c={{affS1}}")
    make_deliveries(5, url="https://healthy.example.com/pb?c={affS1}")
    sender = FakeSender(hang_seconds=0.05)

    batch.drain(sender=sender)

    hanging = [c for c in sender.calls if c["url"].split("/")[2] == "hang.example.com"]
    assert sender.peak["hang.example.com"] == batch.INITIAL_WINDOW
    assert len(hanging) == batch.INITIAL_WINDOW  # then the breaker set the rest aside
    assert Delivery.objects.filter(attempts=0).count() == 100 - batch.INITIAL_WINDOW
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 5


def test_the_per_host_share_holds_across_postbacks(settings):
    settings.POSTBACK_PER_HOST_CONCURRENCY = 5
    settings.POSTBACK_BREAKER_THRESHOLD = 0
    for i in range(6):
        make_deliveries(10, url=f"https://slow.example.com/pb{i}?c={{affS1}}")
    make_deliveries(20, url="https://healthy.example.com/pb?c={affS1}")
    sender = FakeSender(hang_seconds=0.02)

    batch.drain(sender=sender)

    assert 1 < sender.peak["slow.example.com"] <= 5
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 80
    assert DeliveryAttempt.objects.count() == 80


def test_slots_are_keyed_like_the_breaker(settings):
    def key(url):
        return batch.endpoint_of(PostbackFactory(url=url))

    assert key("https://HANG.example.com:443/a") == key("https://hang.example.com./b?x=1")
    assert key("https://hang.example.com/a") == "hang.example.com:443"
    assert key("http://hang.example.com/a") == "hang.example.com:80"
    assert key("https://hang.example.com:8443/a") == "hang.example.com:8443"


# --- nothing sent goes unrecorded (real sink, real concurrent sender) ------------------------


@pytest.fixture
def to_loopback(settings, broker_calls):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.POSTBACK_RETRY_SCHEDULE = [60]
    return broker_calls


def later_sweeps_send_nothing_again() -> int:
    """What the sweeper and its task would do once every claim has expired; returns attempts."""
    past = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(claimed_until__isnull=False).update(claimed_until=past)
    queue.sweep()
    return batch.drain()


def ids_received(*sinks) -> Counter:
    return Counter(r.headers["X-Postback-Id"] for sink in sinks for r in sink.requests)


def test_a_delivery_that_cannot_be_rendered_fails_alone_while_others_are_in_flight(
    to_loopback, monkeypatch
):
    """An unforeseen exception while rendering one delivery (the InvalidOperation an
    overflowing amount raised) is that delivery's failed attempt, retried on the schedule; the
    requests already in flight are recorded and never sent again."""
    from postbacks.delivery import single

    renders = Counter()

    def render_request(*args, **kwargs):
        renders["calls"] += 1
        if renders["calls"] == 4:  # three requests are out by now (the sink answers slowly)
            raise InvalidOperation([InvalidOperation])
        return real_render_request(*args, **kwargs)

    real_render_request = single.render_request
    monkeypatch.setattr(single, "render_request", render_request)
    with Sink() as sink:
        sink.behaviour.delay = 0.3
        make_deliveries(6, url=sink.url + "/pb?c={affS1}")

        assert batch.drain() == 6
        assert later_sweeps_send_nothing_again() == 0

    assert sorted(ids_received(sink).values()) == [1] * 5
    bad = Delivery.objects.get(state=DeliveryState.RETRYING)
    (attempt,) = bad.attempt_log.all()
    assert attempt.error.startswith("Not sent: rendering failed: InvalidOperation")
    assert str(bad.uid) not in ids_received(sink)
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 5
    assert DeliveryAttempt.objects.count() == 6
    # Our error, not the endpoint's: the breaker did not count it.
    assert not EndpointHealth.objects.filter(consecutive_failures__gt=0).exists()


def test_an_error_of_the_drain_records_the_requests_in_flight_before_it_ends_the_drain(
    to_loopback, monkeypatch
):
    from postbacks.delivery import breaker

    real_record_outcomes = breaker.record_outcomes
    calls = Counter()

    def record_outcomes(outcomes, clean=None):
        calls["n"] += 1
        if calls["n"] == 1:  # the fast endpoint's answers; the slow one's are in flight
            raise RuntimeError("the breaker's table is locked")
        real_record_outcomes(outcomes, clean)

    monkeypatch.setattr(breaker, "record_outcomes", record_outcomes)
    with Sink() as fast, Sink(host="127.0.0.2") as slow:
        slow.behaviour.delay = 0.5
        make_deliveries(4, url=fast.url + "/pb?c={affS1}")
        make_deliveries(4, url=slow.url + "/pb?c={affS1}")

        with pytest.raises(RuntimeError, match="locked"):
            batch.drain()
        assert later_sweeps_send_nothing_again() == 0

    assert sorted(ids_received(fast, slow).values()) == [1] * 8
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS, attempts=1).count() == 8
    assert DeliveryAttempt.objects.filter(response_status=200).count() == 8


def test_a_response_the_database_cannot_store_as_is_is_recorded(to_loopback):
    """A NUL in a response body (PostgreSQL refuses it in text) once failed the whole batch's
    bulk insert, so every request in it was sent again after its claim expired."""
    with Sink() as sink:
        sink.behaviour.body = "ok\x00"
        make_deliveries(3, url=sink.url + "/pb?c={affS1}")
        assert batch.drain() == 3
        assert later_sweeps_send_nothing_again() == 0
    assert sorted(ids_received(sink).values()) == [1] * 3
    assert set(DeliveryAttempt.objects.values_list("response_body", flat=True)) == {"ok\ufffd"}


def test_rows_refused_in_bulk_are_recorded_one_by_one_without_what_the_database_refuses(
    monkeypatch,
):
    from postbacks.models import DeliveryAttempt as Attempt

    def refuse(*args, **kwargs):
        raise DataError("value too long for the bulk insert")

    real_save, saves = Attempt.save, Counter()

    def save_refusing_the_first(self, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] == 1:
            raise DataError("cannot store this response")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(batch, "insert_rows", refuse)  # the attempts' multi-row insert
    monkeypatch.setattr(Attempt, "save", save_refusing_the_first)
    make_deliveries(3)

    assert batch.drain(sender=FakeSender(HttpResult(status=200, body="fine"))) == 3

    assert Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 3
    bodies = sorted(Attempt.objects.values_list("response_body", flat=True))
    assert bodies == ["", "fine", "fine"]
    assert "response not logged: DataError: cannot store this response" in (
        Attempt.objects.get(response_body="").error
    )
