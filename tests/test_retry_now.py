""" "Retry now" respects a worker's claim: a delivery being sent is left alone, so a request
still in flight is never sent a second time (issue 13, item 5)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from demo.sink import Sink
from postbacks.delivery import batch, queue, single
from postbacks.models import Delivery, DeliveryState
from tests.factories import ConversionFactory, PostbackFactory

CHANGELIST = reverse("admin:postbacks_delivery_changelist")


def make_delivery(url: str, **fields) -> Delivery:
    postback = PostbackFactory(url=url + "/pb?id={deliveryId}", statuses=["pending"])
    conversion = ConversionFactory(click__affiliate=postback.affiliate)
    return Delivery.objects.create(
        postback=postback, conversion=conversion, status="pending", **fields
    )


def retry_now(client, delivery):
    return client.post(
        CHANGELIST, {"action": "retry_now", "_selected_action": [delivery.pk]}, follow=True
    )


def in_a_worker(send):
    """Run `send` in a thread as a worker would, with its own database connection."""

    def run():
        try:
            send()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


SENDERS = {
    "single": lambda delivery: single.attempt_delivery(delivery.pk),
    "batch": lambda delivery: batch.drain(budget=10),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", SENDERS)
def test_retry_now_during_a_slow_send_leaves_it_alone_and_sends_no_duplicate(
    path, support_client, settings, broker_calls
):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as sink:
        sink.behaviour.delay = 2.0  # a slow receiver: the request stays in flight
        delivery = make_delivery(sink.url)
        send = SENDERS[path]
        worker = in_a_worker(lambda: send(delivery))
        assert sink.wait_for(1, timeout=10), "the worker never sent"

        page = retry_now(support_client, delivery)
        # The worker that takes the queued message (if any) finds the delivery claimed.
        assert single.attempt_delivery(delivery.pk) is None
        assert batch.drain(budget=1) == 0
        worker.join(timeout=30)
        received = sink.wait_for(2, timeout=1)

    assert "Queued 0 deliveries for a retry now. 1 is being sent now, left alone" in page.text
    assert broker_calls == []
    assert len(received) == 1
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCESS
    assert (delivery.attempts, delivery.attempt_log.count()) == (1, 1)


@pytest.mark.django_db
def test_retry_now_requeues_a_delivery_whose_worker_died(
    support_client, broker_calls, django_capture_on_commit_callbacks
):
    """A claim that ran out belongs to no one: the delivery is queued again at once."""
    delivery = make_delivery(
        "https://tracker.example.com",
        attempts=1,
        claimed_until=timezone.now() - timedelta(seconds=1),
    )

    with django_capture_on_commit_callbacks(execute=True):
        page = retry_now(support_client, delivery)

    assert "Queued 1 delivery for a retry now." in page.text
    assert "being sent now" not in page.text
    assert broker_calls == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.RETRYING and delivery.claimed_until is None


@pytest.mark.django_db
def test_retry_deliveries_skips_a_live_claim_and_keeps_it(broker_calls):
    until = timezone.now() + timedelta(seconds=60)
    delivery = make_delivery("https://tracker.example.com", attempts=1, claimed_until=until)

    assert queue.retry_deliveries(Delivery.objects.all()) == 0

    delivery.refresh_from_db()
    assert (delivery.state, delivery.claimed_until) == (DeliveryState.PENDING, until)
    assert list(queue.being_sent(Delivery.objects.all())) == [delivery]
