"""The walkthrough page: link, simulated click, test conversion, delivery, each step real."""

import re

import pytest

from affiliates.models import Offer
from conversions.models import Click, Conversion
from postbacks.models import Delivery, DeliveryState
from tests.factories import AffiliateFactory, OfferFactory, PostbackFactory, conversion_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def postback():
    affiliate = AffiliateFactory(click_id_token="{clickid}")
    OfferFactory(name="Shop")
    return PostbackFactory(
        affiliate=affiliate, statuses=["approved"], conversion_types=[conversion_type("sale")]
    )


def steps_done(html: str) -> list[str]:
    return re.findall(r'data-done="(yes|no)"', html)


def test_walkthrough_from_link_to_delivery(
    admin_client, postback, broker_calls, django_capture_on_commit_callbacks
):
    url = f"/admin/postbacks/postback/{postback.pk}/walkthrough/"
    page = admin_client.get(url).content.decode()
    offer = Offer.objects.get(name="Shop")
    assert (
        f'value="http://testserver/t/{offer.pk}/{postback.affiliate.pk}/?affS1={{clickid}}"' in page
    )
    assert steps_done(page) == ["yes", "no", "no", "no"]

    response = admin_client.post(
        url, {"action": "click", "offer": offer.pk, "click_id": "partner-click-1"}
    )
    click = Click.objects.get(aff_s1="partner-click-1")
    assert click.affiliate == postback.affiliate and click.offer == offer
    page = admin_client.get(response.url).content.decode()
    assert steps_done(page) == ["yes", "yes", "no", "no"]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url,
            {
                "action": "conversion",
                "click": click.pk,
                "conversion_type": conversion_type("sale").pk,
                "status": "approved",
                "payout": "7.25",
            },
        )
    conversion = Conversion.objects.get(click=click)
    assert conversion.status_changes.count() == 1  # made by the conversion service
    delivery = Delivery.objects.get(conversion=conversion, postback=postback, is_test=False)
    assert broker_calls == [delivery.pk]
    page = admin_client.get(response.url).content.decode()
    assert steps_done(page) == ["yes", "yes", "yes", "yes"]
    assert 'http-equiv="refresh"' in page  # still pending: the page keeps watching

    Delivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.SUCCESS)
    page = admin_client.get(response.url).content.decode()
    assert 'http-equiv="refresh"' not in page and "Success" in page


def test_walkthrough_says_why_a_conversion_did_not_fire(admin_client, postback):
    url = f"/admin/postbacks/postback/{postback.pk}/walkthrough/"
    offer_pk = re.search(r"/t/(\d+)/", admin_client.get(url).content.decode())[1]
    response = admin_client.post(url, {"action": "click", "offer": offer_pk, "click_id": "c-2"})
    click = Click.objects.get(aff_s1="c-2")
    response = admin_client.post(
        url,
        {
            "action": "conversion",
            "click": click.pk,
            "conversion_type": conversion_type("sale").pk,
            "status": "pending",
            "payout": "",
        },
    )
    page = admin_client.get(response.url).content.decode()
    assert "it does not fire for status Pending" in page
    assert steps_done(page) == ["yes", "yes", "yes", "no"]


def test_walkthrough_ignores_rows_of_another_affiliate(admin_client, postback):
    stranger = Click.objects.create(
        affiliate=AffiliateFactory(), offer=OfferFactory(), aff_s1="not-theirs"
    )
    page = admin_client.get(
        f"/admin/postbacks/postback/{postback.pk}/walkthrough/?click={stranger.pk}"
    ).content.decode()
    assert steps_done(page)[1] == "no" and "not-theirs" not in page


def test_support_staff_may_read_the_walkthrough_but_not_create_rows(support_client, postback):
    url = f"/admin/postbacks/postback/{postback.pk}/walkthrough/"
    assert support_client.get(url).status_code == 200
    assert support_client.post(url, {"action": "click"}).status_code == 403


def test_walkthrough_uses_the_affiliates_click_field(admin_client, settings):
    """An affiliate whose postback returns the click ID from affS3 (Affiliate.click_field, set
    when the postback is saved) gets a link and a simulated click with the click ID in affS3,
    on PUBLIC_BASE_URL when that is set."""
    settings.PUBLIC_BASE_URL = "https://go.example.com"
    affiliate = AffiliateFactory(click_id_token="{subid}", click_field="affS3")
    offer = OfferFactory(name="Shop")
    postback = PostbackFactory(
        affiliate=affiliate,
        url="https://trk.example.com/pb?clickid={affS3}&payout={payout}",
        statuses=["approved"],
    )
    url = f"/admin/postbacks/postback/{postback.pk}/walkthrough/"
    page = admin_client.get(url).content.decode()
    assert f'value="https://go.example.com/t/{offer.pk}/{affiliate.pk}/?affS3={{subid}}"' in page

    response = admin_client.post(
        url, {"action": "click", "offer": offer.pk, "click_id": "partner-click-3"}
    )
    click = Click.objects.get(aff_s3="partner-click-3")
    assert click.aff_s1 == ""
    page = admin_client.get(response.url).content.decode()
    assert "<code>partner-click-3</code> (affS3)" in page


def test_walkthrough_explains_a_payout_that_is_not_a_number(admin_client, postback):
    url = f"/admin/postbacks/postback/{postback.pk}/walkthrough/"
    offer_pk = re.search(r"/t/(\d+)/", admin_client.get(url).content.decode())[1]
    admin_client.post(url, {"action": "click", "offer": offer_pk, "click_id": "c-4"})
    click = Click.objects.get(aff_s1="c-4")
    step = {"action": "conversion", "click": click.pk, "status": "approved"}
    step["conversion_type"] = conversion_type("sale").pk
    for payout in ("12,50", "-1", "NaN"):
        response = admin_client.post(url, {**step, "payout": payout}, follow=True)
        assert "The payout must be a number such as 12.50, or blank." in response.text
        assert steps_done(response.text) == ["yes", "yes", "no", "no"]  # the click is kept
    assert not Conversion.objects.exists()


def test_walkthrough_refuses_an_unknown_step_and_ignores_a_malformed_query(admin_client, postback):
    url = f"/admin/postbacks/postback/{postback.pk}/walkthrough/"
    response = admin_client.post(url, {"action": "refund"})
    assert response.status_code == 400 and b"Unknown walkthrough step." in response.content
    page = admin_client.get(f"{url}?click=abc&conversion=1&offer=x")
    assert page.status_code == 200 and steps_done(page.text) == ["yes", "no", "no", "no"]
