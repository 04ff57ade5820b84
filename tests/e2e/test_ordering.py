"""Per conversion and postback, in order, against a real qcluster and sink: a tracker that keeps
the last status it received ends at the conversion's status, on both dispatch paths and, on
PostgreSQL + Redis, with two nodes sharing the queue."""

import os
import threading
from collections import defaultdict

import pytest
from django.db import connection

from demo.sink import Sink, SinkBehaviour
from postbacks.delivery import queue
from postbacks.models import Delivery, DeliveryState
from tests.e2e.conftest import start_qcluster, stop_qcluster, wait_until
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAIRS = 30
ENV = {
    "POSTBACK_RETRY_SCHEDULE": "1,1",  # three attempts at most, a second apart
    "POSTBACK_BREAKER_THRESHOLD": "0",  # failures here are on purpose: no back-off
}


@pytest.fixture(params=["concurrent", "one-per-task"])
def dispatch(request, settings):
    """Both dispatch paths; the test process enqueues the way its workers expect."""
    settings.POSTBACK_CONCURRENT_DISPATCH = request.param == "concurrent"
    return {**ENV, "POSTBACK_CONCURRENT_DISPATCH": str(request.param == "concurrent")}


@pytest.fixture
def cluster(dispatch, transactional_db, tmp_path):
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    proc = start_qcluster(tmp_path / "qcluster.log", dispatch)
    yield proc
    stop_qcluster(proc)


@pytest.fixture
def two_nodes(dispatch, transactional_db, tmp_path):
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("two nodes run on PostgreSQL + Redis (set DATABASE_URL and REDIS_URL)")
    from django_q.brokers import get_broker

    get_broker().purge_queue()
    nodes = [
        start_qcluster(tmp_path / f"{name}.log", {**dispatch, "NODE_NAME": name})
        for name in ("node-a", "node-b")
    ]
    yield nodes
    for proc in nodes:
        stop_qcluster(proc)


class ByStatus(SinkBehaviour):
    """Answers each request by its status parameter: `failures[status]` 503s, then 200."""

    def __init__(self, failures: dict):
        super().__init__()
        self.failures, self.current = dict(failures), threading.local()
        self.lock = threading.Lock()

    def see(self, request) -> None:  # the sink's echo: runs in the request's thread first
        with self.lock:
            left = self.failures.get(request.query["status"], 0)
            self.failures[request.query["status"]] = left - 1
        self.current.status = 503 if left > 0 else 200

    status = property(lambda self: getattr(self.current, "status", 200), lambda self, v: None)


def postback_to(sink):
    click = ClickFactory()
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?txn={transactionId}&status={status}",
        statuses=["pending", "approved"],
        conversion_types=[conversion_type("sale")],
    )
    return click


def pending_then_approved(api_client, click, transaction_id: str) -> None:
    """Post a pending conversion and approve it right after, as a shop's backend would."""
    created = api_client.post(
        "/api/v1/conversions/",
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": transaction_id},
        format="json",
    )
    assert created.status_code == 201, created.content
    url = f"/api/v1/conversions/{created.json()['id']}/"
    assert api_client.patch(url, {"status": "approved"}, format="json").status_code == 200


def statuses_received(sink) -> dict[str, list[str]]:
    received = defaultdict(list)
    for request in sink.requests:
        received[request.query["txn"]].append(request.query["status"])
    return received


def race_pairs(api_client, sink) -> None:
    """The race from the issue: 30 pending → approved pairs to a receiver that answers slowly.
    Each pair must arrive as pending, then approved, each once."""
    sink.behaviour.delay = 0.3
    click = postback_to(sink)
    for n in range(PAIRS):
        pending_then_approved(api_client, click, f"order-{n}")

    sink.wait_for(2 * PAIRS, timeout=120)
    sink.wait_for(2 * PAIRS + 1, timeout=2)  # nothing more arrives
    assert statuses_received(sink) == {f"order-{n}": ["pending", "approved"] for n in range(PAIRS)}
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SUCCESS}


def test_30_pending_approved_pairs_arrive_in_order_at_a_slow_receiver(cluster, sink, api_client):
    race_pairs(api_client, sink)


def test_two_nodes_keep_each_conversions_order(two_nodes, sink, api_client):
    race_pairs(api_client, sink)


@pytest.mark.parametrize(
    ("pending_failures", "pending_ends"),
    [(2, DeliveryState.SUCCESS), (99, DeliveryState.FAILED)],
    ids=["pending-fails-twice-then-succeeds", "pending-fails-for-good"],
)
def test_approved_waits_until_pending_is_final_then_follows_it(
    cluster, api_client, pending_failures, pending_ends
):
    """The schedule gives pending three tries here: approved waits through them, and goes once
    pending is final, delivered or failed for good."""
    behaviour = ByStatus({"pending": pending_failures})
    with Sink(echo=lambda request: behaviour.see(request)) as sink:
        sink.behaviour = behaviour
        pending_then_approved(api_client, postback_to(sink), "order-1")

        done = wait_until(lambda: len(sink.requests) >= 4, timeout=60, also=queue.sweep)
        assert done, [r.path for r in sink.requests]
        sink.wait_for(5, timeout=2)

    assert statuses_received(sink) == {"order-1": ["pending", "pending", "pending", "approved"]}
    assert {d.status: d.state for d in Delivery.objects.all()} == {
        "pending": pending_ends,
        "approved": DeliveryState.SUCCESS,
    }
