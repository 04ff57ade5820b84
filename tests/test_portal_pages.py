"""The affiliate's own portal pages: tracking links, conversions, the postback log with its
attempts (masked, no internals), test send with its hourly limit, account."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from postbacks.delivery.testsend import send_test
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from postbacks.transport.policy import HttpResult
from tests.test_delivery import FakeSeam

from .factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
    portal_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def seam(monkeypatch):
    fake = FakeSeam(HttpResult(status=200, body="ok"))
    monkeypatch.setattr("postbacks.transport.requests_sender.send", fake)
    return fake


@pytest.fixture
def affiliate():
    return AffiliateFactory(name="Blue Media", click_id_token="{clickid}")


@pytest.fixture
def portal(client, affiliate):
    client.force_login(portal_user(affiliate))
    return client


def conversion_of(affiliate, **fields):
    return ConversionFactory(click=ClickFactory(affiliate=affiliate), **fields)


def test_overview_lists_a_tracking_link_per_active_offer_ready_to_copy(portal, affiliate):
    offer = OfferFactory(name="Summer sale")
    OfferFactory(name="Retired", active=False)
    page = portal.get("/portal/").content.decode()
    assert "Summer sale" in page and "Retired" not in page
    assert f"/t/{offer.pk}/{affiliate.pk}/?affS1={{clickid}}" in page
    assert 'class="secondary copy"' in page


def test_conversions_shows_only_their_own_with_amounts_in_the_conversions_currency(
    portal, affiliate
):
    conversion_of(affiliate, transaction_id="mine-1", payout=Decimal("1250"), currency="JPY")
    conversion_of(affiliate, transaction_id="mine-2", payout=Decimal("12.5"), currency="EUR")
    ConversionFactory(transaction_id="theirs-1")

    page = portal.get("/portal/conversions/").content.decode()

    assert "mine-1" in page and "mine-2" in page and "theirs-1" not in page
    assert "1,250 JPY" in page and "12.50 EUR" in page


def test_conversions_filter_by_status_offer_type_and_date(portal, affiliate):
    offer = OfferFactory()
    conversion_of(affiliate, transaction_id="approved-1", status="approved")
    conversion_of(affiliate, transaction_id="pending-1", status="pending")
    ConversionFactory(
        click=ClickFactory(affiliate=affiliate, offer=offer),
        transaction_id="lead-1",
        status="approved",
        conversion_type=conversion_type("lead"),
    )

    def listed(**query):
        page = portal.get("/portal/conversions/", query).content.decode()
        return {t for t in ("approved-1", "pending-1", "lead-1") if t in page}

    assert listed(status="pending") == {"pending-1"}
    assert listed(offer=offer.pk) == {"lead-1"}
    assert listed(conversion_type=conversion_type("lead").pk) == {"lead-1"}
    today = timezone.now().date()
    assert listed(created_from=str(today + timedelta(days=1))) == set()
    assert len(listed(created_from=str(today), created_to=str(today))) == 3


def test_conversions_cannot_be_filtered_to_another_affiliates_offer_rows(portal):
    other = ConversionFactory(transaction_id="theirs-2")
    page = portal.get("/portal/conversions/", {"offer": other.offer.pk}).content.decode()
    assert "theirs-2" not in page


def test_the_log_lists_their_deliveries_only(portal, affiliate, seam):
    mine = send_test(PostbackFactory(affiliate=affiliate, name="My tracker"))
    theirs = send_test(PostbackFactory(name="Other tracker"))

    page = portal.get("/portal/log/").content.decode()

    assert "My tracker" in page and str(mine.uid) in page
    assert "Other tracker" not in page and str(theirs.uid) not in page


def test_the_delivery_page_masks_secrets_and_hides_worker_names(portal, affiliate, seam):
    postback = PostbackFactory(
        affiliate=affiliate,
        url="https://tracker.example.com/pb?clickid={affS1}&api_key=sup3rsecret",
        headers=[{"name": "X-Auth-Token", "value": "hdr-secret-9"}],
    )
    sent = send_test(postback)
    DeliveryAttempt.objects.filter(delivery=sent).update(worker="node-7 pid 4242")

    page = portal.get(f"/portal/log/{sent.uid}/").content.decode()

    assert "clickid=AFF-CLICK-123" in page and "api_key=********" in page
    assert "sup3rsecret" not in page and "hdr-secret-9" not in page
    assert "node-7" not in page and "4242" not in page


def test_test_send_sends_the_postback_and_opens_its_log_entry(portal, affiliate, seam):
    postback = PostbackFactory(affiliate=affiliate)

    response = portal.post(f"/portal/postbacks/{postback.pk}/test/")

    sent = Delivery.objects.get(postback=postback, is_test=True)
    assert response.url == f"/portal/log/{sent.uid}/"
    assert sent.state == DeliveryState.SUCCESS
    assert len(seam.calls) == 1


def test_test_sends_are_limited_per_affiliate_per_hour(portal, affiliate, seam, settings):
    settings.PORTAL_TEST_SENDS_PER_HOUR = 2
    first, second = (PostbackFactory(affiliate=affiliate) for _ in range(2))
    portal.post(f"/portal/postbacks/{first.pk}/test/")
    portal.post(f"/portal/postbacks/{second.pk}/test/")

    response = portal.post(f"/portal/postbacks/{first.pk}/test/", follow=True)

    assert len(seam.calls) == 2
    assert "You have used your 2 test sends for this hour" in response.content.decode()
    # An hour later they count no more.
    Delivery.objects.update(created=timezone.now() - timedelta(hours=1, minutes=1))
    portal.post(f"/portal/postbacks/{first.pk}/test/")
    assert len(seam.calls) == 3


def test_the_limit_is_per_affiliate(portal, affiliate, seam, settings):
    settings.PORTAL_TEST_SENDS_PER_HOUR = 1
    send_test(PostbackFactory())  # another affiliate's test send
    postback = PostbackFactory(affiliate=affiliate)
    portal.post(f"/portal/postbacks/{postback.pk}/test/")
    assert len(seam.calls) == 2


def test_account_page_names_the_user_and_affiliate(portal, affiliate):
    page = portal.get("/portal/account/").content.decode()
    assert "Blue Media" in page and "Change password" in page
