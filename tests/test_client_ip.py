"""The client's address behind our proxies, as clicks record it (one client_ip for the app)."""

import pytest
from django.urls import reverse

from conversions.models import Click
from tests.factories import AffiliateFactory, OfferFactory

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"
VISITOR = "198.51.100.9"


def click_ip(client, **headers) -> str | None:
    offer, affiliate = OfferFactory(), AffiliateFactory()
    client.get(reverse("track-click", args=[offer.pk, affiliate.pk]), **headers)
    return Click.objects.get().ip


def test_click_behind_a_trusted_proxy_stores_the_visitors_address(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    ip = click_ip(client, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=VISITOR)

    assert ip == VISITOR


def test_addresses_the_visitor_adds_before_our_proxys_entry_are_ignored(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    ip = click_ip(client, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"203.0.113.66, {VISITOR}")

    assert ip == VISITOR


def test_forwarded_header_is_ignored_without_trusted_proxies(client, settings):
    settings.TRUSTED_PROXY_COUNT = 0

    ip = click_ip(client, REMOTE_ADDR=VISITOR, HTTP_X_FORWARDED_FOR="203.0.113.66")

    assert ip == VISITOR


def test_a_trusted_hop_that_is_not_an_address_stores_no_ip(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    ip = click_ip(client, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="unknown")

    assert ip is None
