"""Support opens a failed delivery from the postback log, reads the receiver's response headers
on the timeline, retries it, and reads the conversion's status history (issue 12, items 2, 3
and 9), in a real browser at 1280 px."""

import io
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from conversions import services
from conversions.models import StatusChangeSource
from demo.sink import Sink
from postbacks.delivery import single
from postbacks.models import Delivery, DeliveryState
from tests.factories import AffiliateFactory, ClickFactory, PostbackFactory, conversion_type

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-browser-test-password"


@pytest.fixture
def support_user(django_user_model):
    from django.core.management import call_command

    django_user_model.objects.create_user("sam", password=PASSWORD)
    call_command("assign_role", "sam", "support", stdout=io.StringIO())


@pytest.fixture
def sink(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the sink listens on loopback
    settings.POSTBACK_BREAKER_THRESHOLD = 0
    with Sink() as server:
        yield server


def failed_delivery(sink) -> Delivery:
    """A conversion pending then approved; the approved postback failed its last attempt."""
    affiliate = AffiliateFactory(name="Acme Partners")
    PostbackFactory(
        affiliate=affiliate,
        name="Acme S2S",
        url=sink.url + "/pb?clickid={affS1}&status={status}&token=SECRET123",
        statuses=["approved"],
    )
    data = services.ConversionInput(
        affiliate=affiliate,
        offer=ClickFactory(affiliate=affiliate).offer,
        conversion_type=conversion_type("sale"),
        transaction_id="AUD-TX-1",
        currency="USD",
        status="pending",
    )
    conversion, _ = services.create_conversion(data, source=StatusChangeSource.API)
    services.update_conversion(conversion, source=StatusChangeSource.API, status="approved")
    delivery = conversion.deliveries.get()
    sink.behaviour.status, sink.behaviour.body = 503, "busy, try later"
    sink.behaviour.headers = {"X-Receiver-Trace": "trace-77"}
    single.attempt_delivery(delivery.pk)
    # Skip ahead to the last retry of the schedule: it fails too, and the delivery is failed.
    Delivery.objects.filter(pk=delivery.pk).update(attempts=7, next_attempt_at=delivery.created)
    single.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    return delivery


def test_support_reads_the_response_headers_and_retries_a_failed_delivery(
    page, shot, live_server, support_user, sink
):
    delivery = failed_delivery(sink)
    base = live_server.url
    page_path = reverse("admin:postbacks_delivery_change", args=[delivery.pk])

    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))

    # From the log, filtered to failed deliveries, to the delivery's page.
    page.goto(f"{base}{reverse('admin:postbacks_delivery_changelist')}?state__exact=failed")
    page.locator(f"#result_list a[href^='{page_path}']").first.click()
    expect(page).to_have_url(re.compile(re.escape(page_path)))

    newest = page.locator("#pb-timeline details.pb-attempt").first
    expect(newest).to_contain_text("Attempt 8 of 8")
    expect(newest.locator(".pb-response")).to_contain_text("X-Receiver-Trace")
    expect(newest.locator(".pb-response")).to_contain_text("trace-77")
    expect(newest.locator(".pb-response")).to_contain_text("busy, try later")
    expect(newest.locator(".pb-request")).to_contain_text("token=********")
    expect(page.locator("#pb-timeline")).not_to_contain_text("SECRET123")
    shot("B-01-failed-delivery")

    page.click("a.pb-action:has-text('Retry now')")
    expect(page.locator("h1")).to_contain_text("Retry this delivery now?")
    shot("B-02-retry-confirmation")
    page.click("input[type=submit][value='Yes, retry now']")
    expect(page.locator(".messagelist")).to_contain_text("Queued for a retry now")

    # The worker's part, run here: the receiver is back and the retry goes through.
    sink.behaviour.status, sink.behaviour.body, sink.behaviour.headers = 200, "OK", {}
    assert single.attempt_delivery(delivery.pk) is not None
    page.reload()
    expect(page.locator("#pb-timeline details.pb-attempt").first).to_contain_text("Attempt 9")
    expect(page.locator("#pb-timeline details.pb-attempt").first).to_contain_text("HTTP 200")
    expect(page.locator(".field-state")).to_contain_text("Success")
    shot("B-03-delivery-retried")

    # The conversion page: its status history says why pending sent nothing.
    page.goto(
        f"{base}{reverse('admin:conversions_conversion_change', args=[delivery.conversion_id])}"
    )
    history = page.locator("#pb-status-history")
    expect(history).to_contain_text("status Pending not selected")
    expect(history.locator(f"a[href='{page_path}']")).to_be_visible()
    shot("B-04-conversion-history")
