"""Faulty receivers against a real qcluster and real local sinks: each fault is logged as it
happened and retried; a receiver that heals gets everything; a hanging third of the endpoints
does not hold back the rest of a burst."""

import itertools
from decimal import Decimal

import pytest
from django_q.brokers import get_broker

from conversions.services import ConversionInput, create_conversion
from demo.sink import Sink
from postbacks.delivery import batch, queue
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from tests.e2e.conftest import start_qcluster, stop_qcluster, wait_until
from tests.factories import AffiliateFactory, OfferFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST_RETRIES = {
    "POSTBACK_RETRY_SCHEDULE": ",".join(["1"] * 20),
    "POSTBACK_CONNECT_TIMEOUT": "1",
    "POSTBACK_READ_TIMEOUT": "1",
    "POSTBACK_TOTAL_TIMEOUT": "3",
    "POSTBACK_STALE_AFTER": "1",
    "POSTBACK_CLAIM_SECONDS": "10",
    "POSTBACK_BREAKER_THRESHOLD": "0",
}
_transactions = itertools.count()


@pytest.fixture
def cluster(tmp_path):
    """Start a qcluster with extra settings: `cluster(**env)`; stopped after the test."""
    started = []

    def start(**env):
        get_broker().purge_queue()
        proc = start_qcluster(tmp_path / f"qcluster-{len(started)}.log", {**FAST_RETRIES, **env})
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_qcluster(proc)


def convert(affiliate, offer):
    conversion, _ = create_conversion(
        ConversionInput(
            affiliate=affiliate,
            offer=offer,
            conversion_type=conversion_type("sale"),
            transaction_id=f"fault-{next(_transactions)}",
            currency="USD",
            payout=Decimal("5.00"),
        ),
        source="api",
    )
    return conversion


def endpoint(url: str):
    """An affiliate with one postback to `url`, and an offer to convert on."""
    affiliate = AffiliateFactory()
    PostbackFactory(affiliate=affiliate, url=url + "/pb?id={deliveryId}", statuses=["pending"])
    return affiliate, OfferFactory()


def attempts_of(delivery, at_least: int):
    return wait_until(
        lambda: delivery.attempt_log.count() >= at_least, timeout=30, also=queue.sweep
    )


FAULTS = {
    "500": ({"status": 500}, 500, "HTTP 500: the receiver did not accept the postback."),
    "hang": ({"hang": True}, None, "No response within 1 s (read timeout)"),
    "reset": ({"reset": True}, None, "Connection failed: "),
    "huge 503 body": ({"status": 503, "body_size": 20_000_000}, 503, "HTTP 503"),
    "redirect": (
        {"redirect_to": "http://127.0.0.1:9/elsewhere"},
        302,
        "HTTP 302: redirects are not followed",
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_logged_and_retried(cluster, sink, fault):
    behaviour, status, error = FAULTS[fault]
    for name, value in behaviour.items():
        setattr(sink.behaviour, name, value)
    cluster()
    convert(*endpoint(sink.url))
    delivery = Delivery.objects.get()

    assert attempts_of(delivery, 2), "no retry after the first attempt"
    first = delivery.attempt_log.get(number=1)
    assert first.response_status == status
    assert first.error.startswith(error)
    assert len(first.response_body) <= 4096  # the huge body is cut at the cap
    delivery.refresh_from_db()
    assert delivery.state in (DeliveryState.RETRYING, DeliveryState.PENDING)
    assert len(sink.requests) >= 2
    sink.release()


def test_slow_answer_within_the_timeout_succeeds_once(cluster, sink):
    sink.behaviour.delay = 0.5
    cluster()
    convert(*endpoint(sink.url))
    done = wait_until(lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).first())
    assert done
    (attempt,) = done.attempt_log.all()
    assert attempt.response_status == 200 and attempt.duration_ms >= 500
    assert len(sink.requests) == 1


def test_receiver_that_heals_gets_every_postback(cluster, sink):
    """Failing long enough to open the breaker; after healing, the probe closes it and every
    delivery arrives."""
    sink.behaviour.status = 503
    cluster(
        POSTBACK_BREAKER_THRESHOLD="3",
        POSTBACK_BREAKER_COOLDOWN="1",
        POSTBACK_BREAKER_MAX_COOLDOWN="2",
    )
    affiliate, offer = endpoint(sink.url)
    conversions = [convert(affiliate, offer) for _ in range(6)]
    assert wait_until(
        lambda: DeliveryAttempt.objects.filter(response_status=503).count() >= 4,
        also=queue.sweep,
    )

    sink.behaviour.status = 200
    assert wait_until(
        lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 6,
        timeout=40,
        also=queue.sweep,
    ), list(Delivery.objects.values("state", "attempts", "last_error"))
    for delivery in Delivery.objects.all():
        assert delivery.attempt_log.filter(response_status=200).count() == 1
    received = {r.query["id"] for r in sink.requests}
    assert received == {str(uid) for uid in Delivery.objects.values_list("uid", flat=True)}
    assert len(conversions) == 6


def test_burst_with_a_third_of_the_endpoints_hanging_completes_for_the_healthy_ones(
    cluster, settings
):
    """1,000 conversions over three endpoints on three loopback hosts, one of which never
    answers. With a 5 s timeout and two workers, waiting on the hanging third in turn would take
    about 14 minutes; the breaker sets them aside after a few timeouts instead."""
    with (
        Sink(host="127.0.0.1") as one,
        Sink(host="127.0.0.2") as two,
        Sink(host="127.0.0.3") as dead,
    ):
        dead.behaviour.hang = True
        cluster(
            POSTBACK_READ_TIMEOUT="5",
            POSTBACK_TOTAL_TIMEOUT="6",
            POSTBACK_CLAIM_SECONDS="30",
            POSTBACK_BREAKER_THRESHOLD="3",
            POSTBACK_BREAKER_COOLDOWN="600",
        )
        endpoints = [endpoint(s.url) for s in (one, two, dead)]
        for n in range(1000):
            convert(*endpoints[n % 3])
        dead_host = dead.url + "/"
        healthy = Delivery.objects.exclude(postback__url__startswith=dead_host)
        hanging = Delivery.objects.filter(postback__url__startswith=dead_host)
        assert healthy.count() == 667 and hanging.count() == 333

        assert wait_until(
            lambda: healthy.filter(state=DeliveryState.SUCCESS).count() == 667,
            timeout=180,
            every=1,
        ), list(healthy.exclude(state=DeliveryState.SUCCESS).values("state", "last_error")[:5])

        # While every healthy delivery is done, the hanging endpoint's are all still open,
        # nearly all of them never sent: they wait for the breaker instead of for a timeout.
        # A handful went out: the slow start's first window in each worker process.
        handful = batch.INITIAL_WINDOW * settings.Q_CLUSTER["workers"]
        assert not hanging.filter(state__in=(DeliveryState.SUCCESS, DeliveryState.FAILED)).exists()
        assert DeliveryAttempt.objects.filter(delivery__in=hanging).count() <= handful
        assert len(dead.requests) <= handful
        assert len(one.requests) + len(two.requests) == 667
        dead.release()


def test_conversions_saved_while_every_worker_waits_on_a_hanging_receiver_arrive_meanwhile(
    cluster,
):
    """Both workers' drains hold requests to a receiver that never answers (30 s timeout).
    Conversions for a healthy receiver saved meanwhile reach it while those requests are
    still out, each once, and so do those saved once the workers are free again, with no help
    from the sweeper (a delivery whose task was never run would wait an hour): on Redis a
    drain is woken by their tasks, of which at most one per worker is pending; on the ORM
    broker the drains look again every few ticks."""
    with Sink(host="127.0.0.1") as healthy, Sink(host="127.0.0.2") as dead:
        dead.behaviour.hang = True
        cluster(
            POSTBACK_READ_TIMEOUT="30",
            POSTBACK_TOTAL_TIMEOUT="31",
            POSTBACK_CLAIM_SECONDS="60",
            POSTBACK_STALE_AFTER="3600",
        )
        held = batch.INITIAL_WINDOW * 2  # each worker's first window to the endpoint
        hanging = endpoint(dead.url)
        for _ in range(held + 4):
            convert(*hanging)
        assert wait_until(lambda: len(dead.requests) >= held, timeout=30), len(dead.requests)

        answering = endpoint(healthy.url)
        for _ in range(50):
            convert(*answering)
        assert wait_until(lambda: len(healthy.requests) >= 50, timeout=15), len(healthy.requests)
        assert len(dead.requests) == held  # all still out: nothing has timed out yet
        assert len({r.query["id"] for r in healthy.requests}) == 50  # each once

        dead.behaviour.hang = False
        dead.release()  # the workers are free again: each task is taken at once
        for _ in range(50):
            convert(*answering)
        assert wait_until(lambda: len(healthy.requests) >= 100, timeout=15), len(healthy.requests)
        assert len({r.query["id"] for r in healthy.requests}) == 100
