"""The delivery page: a timeline of attempts with the request and the response, masked; Retry
now and Resend, each permission-checked behind a confirmation page (issue 12, item 2)."""

import io
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from tests.factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db


def page_url(delivery):
    return reverse("admin:postbacks_delivery_change", args=[delivery.pk])


def action_url(delivery, action):
    return reverse(f"admin:postbacks_delivery_{action}", args=[delivery.pk])


def make_delivery(state=DeliveryState.FAILED, **fields) -> Delivery:
    postback = PostbackFactory(statuses=["pending"])
    conversion = ConversionFactory(click__affiliate=postback.affiliate)
    finished = timezone.now() if state in (DeliveryState.SUCCESS, DeliveryState.FAILED) else None
    return Delivery.objects.create(
        postback=postback,
        conversion=conversion,
        status="pending",
        state=state,
        finished_at=finished,
        **fields,
    )


def add_attempt(delivery, number, **fields) -> DeliveryAttempt:
    values = {
        "method": "POST",
        "url": "https://tracker.example.com/pb?clickid=abc&token=SECRET123",
        "request_headers": {"X-Api-Key": "KEY-123", "X-Postback-Id": str(delivery.uid)},
        "request_body": "payout=12.50&api_key=BODYSECRET",
        "response_status": 503,
        "response_headers": {"Retry-After": "120", "X-Request-Id": "req-42"},
        "response_body": '{"error": "busy", "token": "RESPSECRET"}',
        "duration_ms": 231,
        "error": "HTTP 503: the receiver did not accept the postback.",
        "worker": "node-a:4242",
    }
    return DeliveryAttempt.objects.create(delivery=delivery, number=number, **(values | fields))


def test_timeline_shows_each_attempt_with_request_and_response_masked(support_client):
    delivery = make_delivery(attempts=2)
    add_attempt(delivery, 1, started_at=timezone.now() - timedelta(minutes=5))
    add_attempt(delivery, 2, response_headers={"X-Request-Id": "req-43"})

    page = support_client.get(page_url(delivery)).text

    assert page.index("Attempt 2 of 8") < page.index("Attempt 1 of 8")  # newest first
    assert f"of {delivery.pk}<" not in page  # attempts are not titled with the delivery id
    for shown in [
        "POST https://tracker.example.com/pb?clickid=abc&amp;token=********",
        "X-Api-Key",
        "payout=12.50&amp;api_key=********",
        "HTTP 503",
        "Retry-After",
        "req-43",
        "231 ms",
        "node-a:4242",
        "HTTP 503: the receiver did not accept",
    ]:
        assert shown in page, shown
    for secret in ["SECRET123", "KEY-123", "BODYSECRET", "RESPSECRET"]:
        assert secret not in page


def test_attempts_past_the_schedule_have_no_total():
    from postbacks.admin.delivery_page import attempt_title

    assert (attempt_title(8), attempt_title(9)) == ("Attempt 8 of 8", "Attempt 9")


def test_support_sees_retry_now_and_resend_on_a_failed_delivery(support_client):
    delivery = make_delivery()

    page = support_client.get(page_url(delivery)).text

    assert action_url(delivery, "retry") in page and action_url(delivery, "resend") in page


def test_a_delivered_one_offers_resend_only_and_an_open_one_retry_only(support_client):
    delivered = make_delivery(DeliveryState.SUCCESS)
    open_one = make_delivery(DeliveryState.RETRYING)

    delivered_page = support_client.get(page_url(delivered)).text
    open_page = support_client.get(page_url(open_one)).text

    assert action_url(delivered, "retry") not in delivered_page
    assert action_url(delivered, "resend") in delivered_page
    assert action_url(open_one, "retry") in open_page
    assert action_url(open_one, "resend") not in open_page
    assert support_client.get(action_url(delivered, "retry")).status_code == 403
    assert support_client.get(action_url(open_one, "resend")).status_code == 403


def test_retry_now_asks_first_then_queues_with_a_message(support_client, broker_calls, orm_broker):
    delivery = make_delivery(attempts=8)

    confirm = support_client.get(action_url(delivery, "retry"))
    delivery.refresh_from_db()
    assert "Yes, retry now" in confirm.text and delivery.state == DeliveryState.FAILED

    done = support_client.post(action_url(delivery, "retry"), follow=True)

    delivery.refresh_from_db()
    assert done.redirect_chain[-1][0] == page_url(delivery)
    assert "Queued for a retry now" in done.text
    assert delivery.state == DeliveryState.RETRYING
    assert broker_calls == ([delivery.pk] if orm_broker else [])  # Redis: on commit
    assert delivery.next_attempt_at <= timezone.now()


def test_resend_asks_first_then_opens_the_new_delivery_linked_both_ways(support_client):
    delivery = make_delivery(DeliveryState.SUCCESS)

    confirm = support_client.get(action_url(delivery, "resend"))
    assert "Yes, resend" in confirm.text and str(delivery.uid) in confirm.text
    assert not delivery.resends.exists()

    done = support_client.post(action_url(delivery, "resend"), follow=True)

    copy = delivery.resends.get()
    assert done.redirect_chain[-1][0] == page_url(copy)
    assert "Resent as a new delivery with the same id" in done.text
    assert "Resend of" in done.text and page_url(delivery) in done.text
    original_page = support_client.get(page_url(delivery)).text
    assert "Resent as" in original_page and page_url(copy) in original_page


def test_refused_resend_shows_why_and_changes_nothing(support_client):
    delivery = make_delivery(DeliveryState.FAILED)
    delivery.postback.active = False
    delivery.postback.save()

    page = support_client.post(action_url(delivery, "resend"))

    assert "The postback is inactive" in page.text and "Yes, resend" not in page.text
    assert not delivery.resends.exists()


def test_without_the_retry_permission_there_are_no_buttons_and_no_actions(manager_client):
    delivery = make_delivery()

    page = manager_client.get(page_url(delivery)).text

    assert action_url(delivery, "retry") not in page
    assert manager_client.get(action_url(delivery, "retry")).status_code == 403
    assert manager_client.post(action_url(delivery, "resend")).status_code == 403
    assert not delivery.resends.exists()


def test_the_actions_need_the_csrf_token(django_user_model):
    from django.core.management import call_command

    django_user_model.objects.create_user("support2", password="pw")
    call_command("assign_role", "support2", "support", stdout=io.StringIO())
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.get(username="support2"))
    delivery = make_delivery(DeliveryState.SUCCESS)

    assert client.post(action_url(delivery, "resend")).status_code == 403
    assert not delivery.resends.exists()
