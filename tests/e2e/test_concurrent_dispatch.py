"""Concurrent dispatch end to end: a bulk call's postbacks go out from a real qcluster, each
exactly once, with every attempt logged, while a failing receiver is retried on its own."""

import pytest

from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from postbacks.sink import Sink
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

COUNT = 300


@pytest.fixture(autouse=True)
def concurrent_dispatch(monkeypatch, settings):
    """Concurrent dispatch is opt-in: on in this process and in the qcluster it starts."""
    monkeypatch.setenv("POSTBACK_CONCURRENT_DISPATCH", "true")
    settings.POSTBACK_CONCURRENT_DISPATCH = True


def test_bulk_conversions_reach_the_sink_once_each_and_failures_are_retried(
    qcluster, sink, api_client
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
        failing.wait_for(COUNT, timeout=60)
        sink.wait_for(COUNT + 1, timeout=1)  # nothing more arrives
        # The failing receiver stays up until every 503 is logged: closing it while its last
        # answers are in flight would turn them into connection errors.
        failed = Delivery.objects.exclude(postback__url__startswith=sink.url)
        wait_until_logged(failed, COUNT)

    assert len(received) == COUNT
    assert sorted(r.query["txn"] for r in received) == sorted(f"order-{n}" for n in range(COUNT))
    assert len({r.headers["X-Postback-Id"] for r in received}) == COUNT
    ok = Delivery.objects.filter(postback__url__startswith=sink.url)
    assert set(ok.values_list("state", flat=True)) == {DeliveryState.SUCCESS}
    assert DeliveryAttempt.objects.filter(delivery__in=ok).count() == COUNT
    assert set(failed.values_list("state", flat=True)) == {DeliveryState.RETRYING}
    assert set(failed.values_list("last_status_code", flat=True)) == {503}
    first_tries = DeliveryAttempt.objects.filter(delivery__in=failed, number=1)
    assert first_tries.count() == COUNT
    assert set(first_tries.values_list("response_status", flat=True)) == {503}


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
