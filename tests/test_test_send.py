"""Test sends: sent now through the delivery path, logged as finished tests, never the real
delivery of an event and never retried."""

import pytest
from django.db import IntegrityError

from demo.sink import Sink
from postbacks import matching
from postbacks.delivery import queue
from postbacks.delivery.testsend import send_test
from postbacks.models import Delivery, DeliveryState
from postbacks.transport.policy import HttpResult
from tests.factories import ConversionFactory, PostbackFactory
from tests.test_delivery import FakeSeam

pytestmark = pytest.mark.django_db


@pytest.fixture
def seam(monkeypatch):
    fake = FakeSeam()
    monkeypatch.setattr("postbacks.transport.requests_sender.send", fake)
    return fake


def test_sample_test_send_is_logged_finished_without_a_conversion(seam):
    postback = PostbackFactory(
        url="https://tracker.example.com/pb?clickid={affS1}&payout={payout}&id={deliveryId}"
    )

    test = send_test(postback)

    test.refresh_from_db()
    assert test.is_test and test.conversion is None
    assert test.state == DeliveryState.SUCCESS and test.finished_at
    attempt = test.attempt_log.get()
    assert attempt.url == (
        f"https://tracker.example.com/pb?clickid=AFF-CLICK-123&payout=12.50&id={test.uid}"
    )
    assert attempt.request_headers["X-Postback-Id"] == str(test.uid)
    assert attempt.response_status == 200
    assert seam.calls[0]["url"] == attempt.url


def test_test_send_for_a_conversion_changes_nothing_and_is_not_the_event_delivery(seam):
    conversion = ConversionFactory(click__aff_s1="partner-7", status="approved")
    postback = PostbackFactory(affiliate=conversion.affiliate, statuses=["approved"])
    before = conversion.updated

    first, second = send_test(postback, conversion), send_test(postback, conversion)

    assert first.conversion == conversion and first.status == "approved"
    assert "clickid=partner-7" in second.attempt_log.get().url
    conversion.refresh_from_db()
    assert conversion.updated == before and conversion.status == "approved"
    # The real event still gets its one delivery: test rows do not count.
    change = conversion.status_changes.create(to_status="approved", source="api")
    real = Delivery.objects.filter(pk__in=matching.create_deliveries(conversion, change))
    assert [d.is_test for d in real] == [False]
    assert Delivery.objects.filter(conversion=conversion).count() == 3


def test_failed_test_send_is_final_and_never_retried(seam, broker_calls):
    seam.results = [HttpResult(status=503, body="busy")]
    test = send_test(PostbackFactory())

    assert test.state == DeliveryState.FAILED
    assert not queue.due_for_enqueue().filter(pk=test.pk).exists()
    assert queue.sweep() == 0
    assert queue.retry_deliveries(Delivery.objects.filter(pk=test.pk)) == 0
    test.refresh_from_db()
    assert test.state == DeliveryState.FAILED and broker_calls == []


def test_test_send_to_a_private_address_is_refused_by_the_guard(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    with Sink() as sink:
        test = send_test(PostbackFactory(url=sink.url + "/pb?c={affS1}"))
        assert sink.requests == []
    assert test.state == DeliveryState.FAILED
    assert "Destination not allowed" in test.attempt_log.get().error


def test_test_send_reaches_an_allowed_sink_with_the_delivery_headers(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as sink:
        sink.behaviour.body = "received"
        test = send_test(PostbackFactory(url=sink.url + "/pb?c={affS1}"))
        [received] = sink.wait_for(1)
    assert received.query == {"c": "AFF-CLICK-123"}
    assert received.headers["X-Postback-Id"] == str(test.uid)
    attempt = test.attempt_log.get()
    assert attempt.response_status == 200 and attempt.response_body == "received"


def test_only_test_deliveries_may_lack_a_conversion():
    with pytest.raises(IntegrityError):
        Delivery.objects.create(postback=PostbackFactory(), conversion=None, status="approved")
