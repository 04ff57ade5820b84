"""Scale-out: two qcluster processes (two nodes) on one Redis queue and one PostgreSQL database
share the work, and every postback still reaches the receiver exactly once.

Runs only on PostgreSQL + Redis (.ci/run's second run): that is the multi-node set-up.
"""

import os
import time

import pytest
from django.db import connection

from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from tests.e2e.conftest import start_qcluster, stop_qcluster
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EVENTS = 2000
CHUNK = 100  # 20 bulk calls of 100, so work keeps arriving while both clusters send


@pytest.fixture(params=["concurrent", "one-per-task"])
def two_nodes(request, transactional_db, tmp_path, settings):
    """Both dispatch paths: batches sent concurrently (the default), one delivery per task."""
    concurrent = request.param == "concurrent"
    settings.POSTBACK_CONCURRENT_DISPATCH = concurrent  # how this process enqueues
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("scale-out runs on PostgreSQL + Redis (set DATABASE_URL and REDIS_URL)")
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    # The same Q_CLUSTER name on both: that is what makes django-q2 clusters share one queue.
    nodes = [
        start_qcluster(
            tmp_path / f"{name}.log",
            {"NODE_NAME": name, "POSTBACK_CONCURRENT_DISPATCH": str(concurrent)},
        )
        for name in ("node-a", "node-b")
    ]
    yield nodes
    for proc in nodes:
        stop_qcluster(proc)


def test_two_clusters_share_2000_events_and_each_postback_arrives_once(two_nodes, sink, api_client):
    sink.behaviour.delay = 0.02  # a receiver that takes a moment, so work overlaps
    click = ClickFactory()
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?txn={transactionId}&id={deliveryId}",
        statuses=["pending"],
        conversion_types=[conversion_type("sale")],
    )
    for start in range(0, EVENTS, CHUNK):
        items = [
            {"cid": click.cid, "conversion_type": "sale", "transaction_id": f"order-{n}"}
            for n in range(start, start + CHUNK)
        ]
        response = api_client.post(
            "/api/v1/conversions/bulk/", {"conversions": items}, format="json"
        )
        assert response.json()["created"] == CHUNK

    received = sink.wait_for(EVENTS, timeout=120)
    sink.wait_for(EVENTS + 1, timeout=2)  # nothing more arrives
    assert len(sink.requests) == EVENTS
    ids = [r.headers["X-Postback-Id"] for r in received]
    assert len(set(ids)) == EVENTS
    assert set(ids) == {str(uid) for uid in Delivery.objects.values_list("uid", flat=True)}
    assert {r.query["txn"] for r in received} == {f"order-{n}" for n in range(EVENTS)}

    deadline = time.monotonic() + 30
    while DeliveryAttempt.objects.count() < EVENTS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert DeliveryAttempt.objects.count() == EVENTS
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SUCCESS}
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
    nodes = {w.split(":")[0] for w in DeliveryAttempt.objects.values_list("worker", flat=True)}
    assert nodes == {"node-a", "node-b"}, "both clusters should have sent postbacks"
