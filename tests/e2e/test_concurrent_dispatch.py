"""Concurrent dispatch end to end: a bulk call's postbacks go out from a real qcluster, each
exactly once, with every attempt logged, while a failing receiver is set aside by the breaker."""

import pytest

from demo.sink import Sink
from postbacks.delivery import batch
from postbacks.delivery.breaker import endpoint_key
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState, EndpointHealth
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

COUNT = 300


@pytest.fixture(autouse=True)
def concurrent_dispatch(monkeypatch, settings):
    """Concurrent dispatch is opt-in: on in this process and in the qcluster it starts."""
    monkeypatch.setenv("POSTBACK_CONCURRENT_DISPATCH", "true")
    settings.POSTBACK_CONCURRENT_DISPATCH = True


def test_bulk_conversions_reach_the_sink_once_each_and_a_failing_receiver_is_set_aside(
    qcluster, sink, api_client, settings
):
    click = ClickFactory()
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?txn={transactionId}&id={deliveryId}",
        statuses=["pending"],
        conversion_types=[conversion_type("sale")],
    )
    with Sink() as failing:
        failing.behaviour.status = 503
        PostbackFactory(
            affiliate=click.affiliate,
            url=failing.url + "/pb?txn={transactionId}",
            statuses=["pending"],
            conversion_types=[conversion_type("sale")],
        )
        items = [
            {"cid": click.cid, "conversion_type": "sale", "transaction_id": f"order-{n}"}
            for n in range(COUNT)
        ]
        response = api_client.post(
            "/api/v1/conversions/bulk/", {"conversions": items}, format="json"
        )
        assert response.json()["created"] == COUNT

        received = sink.wait_for(COUNT, timeout=60)
        sink.wait_for(COUNT + 1, timeout=1)  # nothing more arrives
        failed = Delivery.objects.exclude(postback__url__startswith=sink.url)
        # The failing receiver stays up until its answers are logged: closing it while they are
        # in flight would turn them into connection errors.
        wait_until_logged(failed, len(failing.requests))

    assert len(received) == COUNT
    assert sorted(r.query["txn"] for r in received) == sorted(f"order-{n}" for n in range(COUNT))
    assert len({r.headers["X-Postback-Id"] for r in received}) == COUNT
    ok = Delivery.objects.filter(postback__url__startswith=sink.url)
    assert set(ok.values_list("state", flat=True)) == {DeliveryState.SUCCESS}
    assert DeliveryAttempt.objects.filter(delivery__in=ok).count() == COUNT

    # The 503s: a slow start sent a handful (per worker process), the circuit breaker then set
    # the rest aside for later without an attempt. All are still open, none lost or given up.
    tried = DeliveryAttempt.objects.filter(delivery__in=failed)
    handful = batch.INITIAL_WINDOW * settings.Q_CLUSTER["workers"]
    assert 1 <= tried.count() <= handful and tried.count() == len(failing.requests)
    assert set(tried.values_list("response_status", flat=True)) == {503}
    assert failed.count() == COUNT
    assert set(failed.values_list("state", flat=True)) <= {
        DeliveryState.RETRYING,
        DeliveryState.PENDING,
    }
    assert failed.filter(attempts=0).count() == COUNT - tried.count()
    assert EndpointHealth.objects.get(host=endpoint_key(failing.url)).opened_until is not None


def wait_until_logged(deliveries, count, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    logged = 0
    while time.monotonic() < deadline:
        logged = DeliveryAttempt.objects.filter(delivery__in=deliveries).count()
        if logged >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"only {logged} of {count} attempts were logged within {timeout}s")
