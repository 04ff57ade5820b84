"""Resend: a finished delivery sent again as a new logged delivery that carries the original's
id, so receivers can drop the copy; the once-only key, the order per conversion and the
sweeper keep working (issue 12, item 2)."""

import pytest
from django.db import IntegrityError, transaction

from conversions import services
from conversions.models import StatusChangeSource
from postbacks.delivery import queue, single
from postbacks.delivery.resend import CannotResend, resend, resend_refusal
from postbacks.models import Delivery, DeliveryState
from postbacks.transport.policy import HttpResult
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def requests_sent(monkeypatch, settings):
    settings.POSTBACK_BREAKER_THRESHOLD = 0
    sent = []

    def send(method, url, *, headers, body=""):
        sent.append({"url": url, "headers": headers})
        return HttpResult(status=200, body="ok")

    monkeypatch.setattr("postbacks.transport.requests_sender.send", send)
    return sent


def convert(postback, *statuses):
    data = services.ConversionInput(
        affiliate=postback.affiliate,
        offer=ClickFactory(affiliate=postback.affiliate).offer,
        conversion_type=conversion_type("sale"),
        transaction_id="T-1",
        currency="USD",
        status=statuses[0],
    )
    conversion, _ = services.create_conversion(data, source=StatusChangeSource.API)
    for status in statuses[1:]:
        services.update_conversion(conversion, source=StatusChangeSource.API, status=status)
    return conversion


@pytest.fixture
def postback():
    return PostbackFactory(
        url="https://tracker.example.com/pb?id={deliveryId}",
        statuses=["pending", "approved"],
        signing_secret="whsec_" + "A" * 44,
    )


@pytest.fixture
def delivered(postback, requests_sent):
    conversion = convert(postback, "approved")
    delivery = conversion.deliveries.get()
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCESS
    return delivery


def test_resend_creates_a_new_queued_delivery_of_the_same_status_change(
    delivered, broker_calls, django_capture_on_commit_callbacks
):
    broker_calls.clear()  # the original's
    with django_capture_on_commit_callbacks(execute=True):
        copy = resend(delivered)

    assert copy.pk != delivered.pk and copy.uid != delivered.uid
    assert (copy.postback, copy.conversion, copy.status_change, copy.status) == (
        delivered.postback,
        delivered.conversion,
        delivered.status_change,
        delivered.status,
    )
    assert copy.resend_of == delivered and list(delivered.resends.all()) == [copy]
    assert copy.state == DeliveryState.PENDING and broker_calls == [copy.pk]
    delivered.refresh_from_db()
    assert delivered.state == DeliveryState.SUCCESS  # the original's record is untouched


def test_the_resend_carries_the_originals_id_in_header_placeholder_and_signature(
    delivered, requests_sent
):
    copy = resend(delivered)
    single.attempt_delivery(copy.pk)

    first, again = requests_sent
    assert again["headers"]["X-Postback-Id"] == first["headers"]["X-Postback-Id"]
    assert again["headers"]["X-Postback-Id"] == str(delivered.uid)
    assert again["url"] == first["url"] == f"https://tracker.example.com/pb?id={delivered.uid}"
    assert again["headers"]["webhook-id"] == first["headers"]["webhook-id"] == str(delivered.uid)
    copy.refresh_from_db()
    assert copy.state == DeliveryState.SUCCESS and copy.attempt_log.count() == 1


def test_a_resend_of_a_resend_points_at_the_original_and_keeps_its_id(delivered, requests_sent):
    copy = resend(delivered)
    single.attempt_delivery(copy.pk)
    copy.refresh_from_db()

    second = resend(copy)

    assert second.resend_of == delivered and second.sent_id == str(delivered.uid)


def test_open_test_and_inactive_deliveries_are_not_resent(postback, delivered):
    open_one = Delivery.objects.create(
        postback=postback, conversion=delivered.conversion, status="pending"
    )
    test_send = Delivery.objects.create(
        postback=postback, status="approved", is_test=True, state=DeliveryState.SUCCESS
    )
    assert "Retry now" in resend_refusal(open_one)
    assert "test" in resend_refusal(test_send)
    with pytest.raises(CannotResend):
        resend(open_one)

    postback.active = False
    postback.save()
    delivered.refresh_from_db()
    assert "inactive" in resend_refusal(delivered)


def test_a_second_resend_waits_until_the_first_is_finished(delivered):
    resend(delivered)

    with pytest.raises(CannotResend, match="on its way"):
        resend(delivered)
    assert delivered.resends.count() == 1


def test_the_once_only_key_still_refuses_a_second_original(delivered):
    resend(delivered)  # allowed: a resend is not a second original

    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(
            postback=delivered.postback,
            conversion=delivered.conversion,
            status=delivered.status,
            status_change=delivered.status_change,
        )


def test_a_later_status_waits_for_an_open_resend_of_an_earlier_one(postback, requests_sent):
    conversion = convert(postback, "pending")
    pending = conversion.deliveries.get()
    single.attempt_delivery(pending.pk)
    copy = resend(Delivery.objects.get(pk=pending.pk))
    services.update_conversion(conversion, source=StatusChangeSource.API, status="approved")
    approved = conversion.deliveries.get(status="approved")

    assert single.attempt_delivery(approved.pk) is None  # held back: the resend goes first
    single.attempt_delivery(copy.pk)
    single.attempt_delivery(approved.pk)

    assert [r["headers"]["X-Postback-Id"] for r in requests_sent] == [
        str(pending.uid),
        str(pending.uid),
        str(approved.uid),
    ]


def test_the_sweeper_queues_a_resend_the_broker_never_got(delivered):
    copy = resend(delivered)
    Delivery.objects.filter(pk=copy.pk).update(enqueued_at=None)  # the broker was down

    assert copy.pk in queue.due_for_enqueue().values_list("pk", flat=True)


def test_log_retention_prunes_an_original_and_its_resend_keeps_the_id(delivered, requests_sent):
    from datetime import timedelta

    from django.utils import timezone

    from postbacks.delivery import retention

    copy = resend(delivered)
    Delivery.objects.filter(pk=delivered.pk).update(
        finished_at=timezone.now() - timedelta(days=100)
    )

    assert retention.prune(timezone.now() - timedelta(days=90)).deliveries == 1
    single.attempt_delivery(copy.pk)

    copy.refresh_from_db()
    assert copy.resend_of is None
    assert requests_sent[-1]["headers"]["X-Postback-Id"] == str(delivered.uid)
