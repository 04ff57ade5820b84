"""A breaker that heals: an endpoint down for four first back-offs (two minutes at the default
30 s) with a real qcluster and sink; once it answers again, its whole backlog arrives within two
first back-offs, each postback once. The schedule is shortened to a first back-off of 4 s;
BREAKER_TEST_BACK_OFF=30 runs it at the default settings' scale."""

import itertools
import os
import time
from decimal import Decimal

import pytest
from django_q.brokers import get_broker

from conversions.services import ConversionInput, create_conversion
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState, EndpointHealth
from tests.e2e.conftest import start_qcluster, stop_qcluster, wait_until
from tests.factories import AffiliateFactory, OfferFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BACK_OFF = int(os.environ.get("BREAKER_TEST_BACK_OFF", "4"))
OUTAGE = 4 * BACK_OFF
BACKLOG = 30
_orders = itertools.count()


@pytest.fixture(params=["concurrent", "one per task"])
def worker(request, tmp_path, settings):
    concurrent = request.param == "concurrent"
    settings.POSTBACK_CONCURRENT_DISPATCH = concurrent  # how this process queues the deliveries
    get_broker().purge_queue()
    proc = start_qcluster(
        tmp_path / "qcluster.log",
        {
            "POSTBACK_CONCURRENT_DISPATCH": str(concurrent).lower(),
            "POSTBACK_BREAKER_THRESHOLD": "3",
            "POSTBACK_BREAKER_COOLDOWN": str(BACK_OFF),
            "POSTBACK_BREAKER_MAX_COOLDOWN": str(100 * BACK_OFF),
            # Retries long after the outage: only the breaker can bring the backlog back in time.
            "POSTBACK_RETRY_SCHEDULE": f"{4 * OUTAGE},{20 * OUTAGE}",
            "POSTBACK_CONNECT_TIMEOUT": "1",
            "POSTBACK_READ_TIMEOUT": "1",
            "POSTBACK_TOTAL_TIMEOUT": "3",
            "POSTBACK_CLAIM_SECONDS": "10",
        },
    )
    yield proc
    stop_qcluster(proc)


def convert(affiliate, offer):
    create_conversion(
        ConversionInput(
            affiliate=affiliate,
            offer=offer,
            conversion_type=conversion_type("sale"),
            transaction_id=f"heal-{next(_orders)}",
            currency="USD",
            payout=Decimal("5.00"),
        ),
        source="api",
    )


def test_after_an_outage_the_backlog_arrives_within_two_first_back_offs(worker, sink):
    sink.behaviour.status = 503
    affiliate, offer = AffiliateFactory(), OfferFactory()
    PostbackFactory(affiliate=affiliate, url=sink.url + "/pb?id={deliveryId}", statuses=["pending"])
    for _ in range(BACKLOG):
        convert(affiliate, offer)
    (first, *_) = sink.wait_for(1)
    down_since = first.received_at

    time.sleep(max(down_since + OUTAGE - time.time(), 0))
    sink.behaviour.status = 200
    healed_at = time.time()
    # No sweeps from here (nor does the worker's schedule run in this test database): the probe
    # goes out because the worker that opened the breaker queues it when it half-opens.
    done = wait_until(
        lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == BACKLOG,
        timeout=6 * BACK_OFF,
    )

    failing = [r for r in sink.requests if r.received_at < healed_at]
    answered = [r for r in sink.requests if r.received_at >= healed_at]
    assert done, list(Delivery.objects.values("state", "attempts", "next_attempt_at"))
    drained_in = max(r.received_at for r in answered) - healed_at
    assert drained_in <= 2 * BACK_OFF, f"backlog drained {drained_in:.1f} s after healing"
    # During the outage: the first requests out, then a probe each time the breaker half-opened
    # (the back-off stayed at the first one: a quarter of 16 s is 4 s), not a flood.
    probes = [r for r in failing if r.received_at > down_since + BACK_OFF - 1]
    assert 2 <= len(probes) <= OUTAGE // BACK_OFF + 1, [r.received_at - down_since for r in failing]
    assert len(failing) <= 2 * 8 + len(probes)  # the slow-start window of each worker process
    # Each postback arrived once after healing; each delivery has one successful attempt.
    assert sorted(r.query["id"] for r in answered) == sorted(
        str(uid) for uid in Delivery.objects.values_list("uid", flat=True)
    )
    assert DeliveryAttempt.objects.filter(response_status=200).count() == BACKLOG
    health = EndpointHealth.objects.get()
    assert health.opened_until is None and health.consecutive_failures == 0
