"""The tracking link: a click is recorded and the visitor is sent to the offer with our cid;
the link carries the affiliate's token in the click field their postbacks return."""

import html
import importlib
from urllib.parse import parse_qs, urlsplit

import pytest
from django.apps import apps
from django.urls import reverse

from affiliates.links import tracking_path, tracking_url
from affiliates.models import Affiliate
from conversions.models import Click
from postbacks.assistant.clickfield import remember_click_field
from tests.factories import (
    AffiliateFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
    postback_form_data,
)

FILL_MIGRATION = importlib.import_module("postbacks.migrations.0014_affiliate_click_field")

pytestmark = pytest.mark.django_db


def track(client, offer, affiliate, **kwargs):
    return client.get(reverse("track-click", args=[offer.pk, affiliate.pk]), **kwargs)


def test_click_redirects_to_landing_page_with_cid(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()

    response = track(client, offer, affiliate)

    click = Click.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"https://shop.example.com/landing?lang=en&cid={click.cid}"


def test_click_records_sub_ids_ip_user_agent_and_referrer(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()
    subs = {f"affS{i}": f"sub-{i}" for i in range(1, 6)}

    track(
        client,
        offer,
        affiliate,
        data=subs,
        REMOTE_ADDR="203.0.113.7",
        HTTP_USER_AGENT="Mozilla/5.0 test",
        HTTP_REFERER="https://blog.example.net/post",
    )

    click = Click.objects.get()
    assert (click.offer, click.affiliate) == (offer, affiliate)
    assert [click.aff_s1, click.aff_s2, click.aff_s3, click.aff_s4, click.aff_s5] == [
        "sub-1",
        "sub-2",
        "sub-3",
        "sub-4",
        "sub-5",
    ]
    assert click.ip == "203.0.113.7"
    assert click.user_agent == "Mozilla/5.0 test"
    assert click.referrer == "https://blog.example.net/post"


def test_landing_page_parameters_are_kept_and_its_cid_replaced(client):
    offer = OfferFactory(landing_page_url="https://shop.example.com/p?a=1&cid=old&b=%7Bx%7D#top")

    response = track(client, offer, AffiliateFactory(), data={"affS1": "abc"})

    cid = Click.objects.get().cid
    assert response["Location"] == f"https://shop.example.com/p?a=1&b=%7Bx%7D&cid={cid}#top"


def test_affiliate_sub_ids_are_not_passed_to_the_landing_page(client):
    response = track(client, OfferFactory(), AffiliateFactory(), data={"affS1": "secret"})

    assert parse_qs(urlsplit(response["Location"]).query).keys() == {"lang", "cid"}


def test_redirect_is_not_cached(client):
    response = track(client, OfferFactory(), AffiliateFactory())

    assert "no-store" in response["Cache-Control"]


def test_unparseable_remote_address_stores_no_ip(client):
    track(client, OfferFactory(), AffiliateFactory(), REMOTE_ADDR="unix:/run/gunicorn.sock")

    assert Click.objects.get().ip is None


@pytest.mark.parametrize(
    "offer_kwargs, affiliate_kwargs",
    [({"active": False}, {}), ({}, {"active": False})],
    ids=["inactive offer", "inactive affiliate"],
)
def test_inactive_offer_or_affiliate_is_404_and_records_nothing(
    client, offer_kwargs, affiliate_kwargs
):
    response = track(client, OfferFactory(**offer_kwargs), AffiliateFactory(**affiliate_kwargs))

    assert response.status_code == 404
    assert not Click.objects.exists()


def test_the_404_page_tells_the_visitor_the_link_is_not_active(client, settings):
    settings.DEBUG = False
    response = track(client, OfferFactory(active=False), AffiliateFactory())

    assert response.status_code == 404
    assert b"This link is not active" in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/t/999999/{affiliate}/",
        "/t/{offer}/999999/",
        "/t/abc/{affiliate}/",
        "/t/{offer}/x1/",
        "/t/99999999999999999999999/{affiliate}/",
    ],
)
def test_unknown_or_non_numeric_ids_are_404(client, path):
    offer, affiliate = OfferFactory(), AffiliateFactory()

    response = client.get(path.format(offer=offer.pk, affiliate=affiliate.pk))

    assert response.status_code == 404
    assert not Click.objects.exists()


def test_tracking_path_of_affiliate_resolves_to_the_tracking_link(client):
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{aff_sub}")

    response = client.get(tracking_path(affiliate, offer))

    assert response.status_code == 302
    assert Click.objects.get().aff_s1 == "{aff_sub}"


def test_tracking_path_without_a_token_names_what_goes_there():
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="")

    path = tracking_path(affiliate, offer)

    assert path == f"/t/{offer.pk}/{affiliate.pk}/?affS1={{your click id token}}"


def test_tracking_path_without_an_affiliate_or_offer_names_the_missing_ids():
    path = tracking_path(None, None, "affS2", "{clickid}")

    assert path == "/t/<offer id>/<affiliate id>/?affS2={clickid}"


def test_tracking_url_is_absolute_on_public_base_url(settings, rf):
    settings.PUBLIC_BASE_URL = "https://go.example.net/"
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")

    url = tracking_url(affiliate, offer, rf.get("/admin/", HTTP_HOST="admin.internal"))

    assert url == f"https://go.example.net/t/{offer.pk}/{affiliate.pk}/?affS1={{clickid}}"


def test_tracking_url_without_public_base_url_uses_the_request_host(settings, rf):
    settings.PUBLIC_BASE_URL = ""
    settings.ALLOWED_HOSTS = ["admin.example.org"]
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")
    request = rf.get("/admin/", HTTP_HOST="admin.example.org", secure=True)

    url = tracking_url(affiliate, offer, request)

    # The token's braces stay as written, ready for the affiliate's tracker to replace.
    assert url == f"https://admin.example.org/t/{offer.pk}/{affiliate.pk}/?affS1={{clickid}}"


def test_tracking_url_without_base_or_request_stays_relative(settings):
    settings.PUBLIC_BASE_URL = ""
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")

    assert tracking_url(affiliate, offer) == tracking_path(affiliate, offer)


# The click field: where the affiliate's click id travels, stored when their postbacks change.

AFF_S3_URL = "https://t.example.com/pb?clickid={affS3}&payout={payout}"


def test_tracking_link_carries_the_token_in_the_affiliates_click_field(client):
    offer = OfferFactory()
    affiliate = AffiliateFactory(click_id_token="{clickid}", click_field="affS3")

    path = tracking_path(affiliate, offer)
    client.get(path)

    assert path.endswith("?affS3={clickid}")
    assert Click.objects.get().aff_s3 == "{clickid}"


def test_a_new_affiliate_has_their_click_id_in_aff_s1():
    assert AffiliateFactory().click_field == "affS1"


def test_remembering_stores_the_field_their_postback_returns_the_click_id_in():
    affiliate = AffiliateFactory()
    PostbackFactory(affiliate=affiliate, url=AFF_S3_URL, active=False)

    remember_click_field(affiliate)

    affiliate.refresh_from_db()
    assert affiliate.click_field == "affS3"


def test_an_active_postback_decides_the_click_field_over_an_inactive_one():
    affiliate = AffiliateFactory()
    PostbackFactory(affiliate=affiliate, url="https://t.example.com/pb?clickid={affS2}")
    PostbackFactory(affiliate=affiliate, url="https://t.example.com/pb?subid={affS4}", active=False)

    remember_click_field(affiliate)

    assert Affiliate.objects.get(pk=affiliate.pk).click_field == "affS2"


def test_a_postback_that_does_not_say_leaves_aff_s1():
    affiliate = AffiliateFactory(click_field="affS4")
    PostbackFactory(affiliate=affiliate, url="https://t.example.com/pb?sub2={affS2}")

    remember_click_field(affiliate)

    assert Affiliate.objects.get(pk=affiliate.pk).click_field == "affS1"


def test_adding_a_postback_in_the_admin_stores_the_click_field(admin_client):
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")

    response = admin_client.post(
        reverse("admin:postbacks_postback_add"), postback_form_data(affiliate, url=AFF_S3_URL)
    )

    assert response.status_code == 302
    affiliate.refresh_from_db()
    assert affiliate.click_field == "affS3"
    page = admin_client.get(reverse("admin:affiliates_affiliate_change", args=[affiliate.pk]))
    assert f"/t/{offer.pk}/{affiliate.pk}/?affS3={{clickid}}" in html.unescape(
        page.content.decode()
    )


def test_changing_the_url_in_the_admin_changes_the_click_field(admin_client):
    affiliate = AffiliateFactory(click_field="affS3")
    postback = PostbackFactory(affiliate=affiliate, url=AFF_S3_URL)
    data = postback_form_data(affiliate, url="https://t.example.com/pb?clickid={affS1}")

    response = admin_client.post(
        reverse("admin:postbacks_postback_change", args=[postback.pk]), data
    )

    assert response.status_code == 302
    assert Affiliate.objects.get(pk=affiliate.pk).click_field == "affS1"


def test_creating_a_postback_over_the_api_stores_the_click_field(api_client):
    conversion_type("sale")
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")
    payload = {
        "name": "Tracker",
        "affiliate": affiliate.pk,
        "conversion_types": ["sale"],
        "statuses": ["approved"],
        "url": AFF_S3_URL,
    }

    response = api_client.post("/api/v1/postbacks/", payload, format="json")

    assert response.status_code == 201, response.content
    affiliate.refresh_from_db()
    assert affiliate.click_field == "affS3"
    assert tracking_path(affiliate, offer).endswith("?affS3={clickid}")


def test_updating_a_postback_url_over_the_api_changes_the_click_field(api_client):
    affiliate = AffiliateFactory()
    postback = PostbackFactory(affiliate=affiliate)

    response = api_client.patch(
        f"/api/v1/postbacks/{postback.pk}/", {"url": AFF_S3_URL}, format="json"
    )

    assert response.status_code == 200, response.content
    assert Affiliate.objects.get(pk=affiliate.pk).click_field == "affS3"


def test_moving_a_postback_to_another_affiliate_updates_both_click_fields(api_client):
    before, after = AffiliateFactory(), AffiliateFactory()
    postback = PostbackFactory(affiliate=before, url=AFF_S3_URL)
    assert Affiliate.objects.get(pk=before.pk).click_field == "affS3"

    response = api_client.patch(
        f"/api/v1/postbacks/{postback.pk}/", {"affiliate": after.pk}, format="json"
    )

    assert response.status_code == 200, response.content
    assert Affiliate.objects.get(pk=before.pk).click_field == "affS1"
    assert Affiliate.objects.get(pk=after.pk).click_field == "affS3"


def test_deleting_the_postback_that_set_the_click_field_resets_it():
    affiliate = AffiliateFactory()
    postback = PostbackFactory(affiliate=affiliate, url=AFF_S3_URL)
    assert Affiliate.objects.get(pk=affiliate.pk).click_field == "affS3"

    postback.delete()

    assert Affiliate.objects.get(pk=affiliate.pk).click_field == "affS1"


def test_the_migration_fills_the_click_field_of_existing_affiliates():
    with_s3, without = AffiliateFactory(), AffiliateFactory()
    PostbackFactory(affiliate=with_s3, url=AFF_S3_URL)
    PostbackFactory(affiliate=without)

    FILL_MIGRATION.fill_click_fields(apps, None)

    assert Affiliate.objects.get(pk=with_s3.pk).click_field == "affS3"
    assert Affiliate.objects.get(pk=without.pk).click_field == "affS1"


def test_post_to_tracking_link_is_not_allowed(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()

    response = client.post(reverse("track-click", args=[offer.pk, affiliate.pk]))

    assert response.status_code == 405
