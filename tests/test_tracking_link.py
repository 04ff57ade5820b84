"""The tracking link: a click is recorded and the visitor is sent to the offer with our cid."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from conversions.models import Click
from tests.factories import AffiliateFactory, OfferFactory, PostbackFactory

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

    response = client.get(affiliate.tracking_path(offer))

    assert response.status_code == 302
    assert Click.objects.get().aff_s1 == "{aff_sub}"


def test_tracking_path_without_a_token_names_what_goes_there():
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="")

    path = affiliate.tracking_path(offer)

    assert path == f"/t/{offer.pk}/{affiliate.pk}/?affS1={{your click id token}}"


def test_tracking_url_is_absolute_on_public_base_url(settings, rf):
    settings.PUBLIC_BASE_URL = "https://go.example.net/"
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")

    url = affiliate.tracking_url(offer, rf.get("/admin/", HTTP_HOST="admin.internal"))

    assert url == f"https://go.example.net/t/{offer.pk}/{affiliate.pk}/?affS1={{clickid}}"


def test_tracking_url_without_public_base_url_uses_the_request_host(settings, rf):
    settings.PUBLIC_BASE_URL = ""
    settings.ALLOWED_HOSTS = ["admin.example.org"]
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")
    request = rf.get("/admin/", HTTP_HOST="admin.example.org", secure=True)

    url = affiliate.tracking_url(offer, request)

    # The token's braces stay as written, ready for the affiliate's tracker to replace.
    assert url == f"https://admin.example.org/t/{offer.pk}/{affiliate.pk}/?affS1={{clickid}}"


def test_tracking_url_without_base_or_request_stays_relative(settings):
    settings.PUBLIC_BASE_URL = ""
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")

    assert affiliate.tracking_url(offer) == affiliate.tracking_path(offer)


def test_tracking_link_uses_the_click_field_of_the_affiliates_postback(client):
    offer, affiliate = OfferFactory(), AffiliateFactory(click_id_token="{clickid}")
    PostbackFactory(
        affiliate=affiliate, url="https://t.example.com/pb?clickid={affS3}", active=False
    )

    path = affiliate.tracking_path(offer)
    client.get(path)

    assert path.endswith("?affS3={clickid}")
    assert affiliate.click_id_field() == "affS3"
    assert Click.objects.get().aff_s3 == "{clickid}"


def test_an_active_postback_decides_the_click_field_over_an_inactive_one():
    affiliate = AffiliateFactory()
    PostbackFactory(affiliate=affiliate, url="https://t.example.com/pb?clickid={affS2}")
    PostbackFactory(affiliate=affiliate, url="https://t.example.com/pb?subid={affS4}", active=False)

    assert affiliate.click_id_field() == "affS2"
    assert AffiliateFactory().click_id_field() == "affS1"


def test_post_to_tracking_link_is_not_allowed(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()

    response = client.post(reverse("track-click", args=[offer.pk, affiliate.pk]))

    assert response.status_code == 405
