"""A worker SIGKILLed while sending loses no delivery and sends at most one duplicate, which
carries the same idempotency key."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule

from conversions.services import ConversionInput, create_conversion
from postbacks.delivery import queue
from postbacks.models import Delivery, DeliveryState
from tests.e2e.conftest import kill_qcluster, start_qcluster, stop_qcluster, wait_until
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SWEEPER = "postbacks: sweep due deliveries"
# A short claim so the second cluster may take the delivery over within the test; the first
# cluster waits long enough on the hanging sink to be killed mid-send.
ENV = {
    "POSTBACK_CLAIM_SECONDS": "3",
    "POSTBACK_STALE_AFTER": "1",
    "POSTBACK_READ_TIMEOUT": "60",
    "POSTBACK_TOTAL_TIMEOUT": "60",
}


def convert(click):
    conversion, _ = create_conversion(
        ConversionInput(
            affiliate=click.affiliate,
            offer=click.offer,
            conversion_type=conversion_type("sale"),
            transaction_id="order-crash-1",
            currency="USD",
            click=click,
            payout=Decimal("7.00"),
        ),
        source="api",
    )
    return conversion


def sweeper_due_now():
    """The migration's every-minute schedule (a flushed test database lost it), due at once;
    the restarted cluster's scheduler runs it on its first tick (about 30 s after start)."""
    Schedule.objects.update_or_create(
        name=SWEEPER,
        defaults={
            "func": "postbacks.delivery.tasks.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now() - timedelta(seconds=1),
        },
    )


def test_worker_killed_mid_send_is_completed_after_restart_with_one_idempotency_key(tmp_path, sink):
    get_broker().purge_queue()
    click = ClickFactory(aff_s1="their-click-7")
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?click={affS1}&id={deliveryId}",
        statuses=["pending"],
    )
    sink.behaviour.hang = True

    first = start_qcluster(tmp_path / "first.log", ENV)
    try:
        convert(click)
        assert sink.wait_for(1, timeout=20), "the first cluster never sent"
        delivery = Delivery.objects.get()
        assert delivery.state == DeliveryState.PENDING and delivery.claimed_until
    finally:
        kill_qcluster(first)  # mid-send: the request left, nothing was recorded

    sink.behaviour.hang = False
    sink.release()
    assert Delivery.objects.get().attempt_log.count() == 0
    sweeper_due_now()
    second = start_qcluster(tmp_path / "second.log", ENV)
    try:
        done = wait_until(
            lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).first(), timeout=50
        )
    finally:
        stop_qcluster(second)

    assert done, (tmp_path / "second.log").read_text()[-3000:]
    received = [r for r in sink.requests if r.query.get("click") == "their-click-7"]
    # The kill landed after the request left and before it was recorded: the one duplicate.
    assert len(received) == 2
    assert {r.headers["X-Postback-Id"] for r in received} == {str(done.uid)}
    assert {r.query["id"] for r in received} == {str(done.uid)}
    assert done.attempts == 2 and done.attempt_log.count() == 1


def test_delivery_abandoned_before_the_request_left_is_sent_exactly_once(tmp_path, sink, settings):
    """A worker that claimed a delivery and died before sending (the claim is all it left):
    the sweeper hands it to a live cluster once the claim expires, and the sink gets it once."""
    get_broker().purge_queue()
    click = ClickFactory(aff_s1="their-click-8")
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?click={affS1}&id={deliveryId}",
        statuses=["pending"],
    )
    convert(click)  # no cluster runs: the enqueued task is dropped below, as a dead node's is
    get_broker().purge_queue()
    Delivery.objects.update(claimed_until=timezone.now() + timedelta(seconds=2), attempts=1)
    settings.POSTBACK_STALE_AFTER = int(ENV["POSTBACK_STALE_AFTER"])  # for the sweeps run here

    cluster = start_qcluster(tmp_path / "cluster.log", ENV)
    try:
        done = wait_until(
            lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).first(),
            timeout=30,
            also=queue.sweep,  # the every-minute schedule, run here on every poll
        )
        sink.wait_for(2, timeout=2)  # nothing more arrives
    finally:
        stop_qcluster(cluster)

    assert done, (tmp_path / "cluster.log").read_text()[-3000:]
    assert [r.query for r in sink.requests] == [{"click": "their-click-8", "id": str(done.uid)}]
    assert done.attempts == 2 and done.attempt_log.count() == 1
