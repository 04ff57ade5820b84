"""Isolation: an affiliate user never reads or changes another affiliate's data.

Walks every URL pattern of portal.urls (so a new page cannot escape the test) as each of two
affiliates: a pattern with object ids is opened with every object id of the other affiliate
(GET and POST) and must answer 404 (405 where the method is not offered) and change nothing;
a page without one must not show the other affiliate's data.
"""

import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse

from conversions.models import Conversion
from portal import urls as portal_urls
from portal.models import PostbackProposal
from portal.moderation import request_values
from postbacks.models import Delivery, DeliveryAttempt, Postback

from .factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    PostbackFactory,
    portal_user,
)

pytestmark = pytest.mark.django_db

# Pages of the account itself, reached with a one-time link rather than an object id.
ONE_TIME_LINK_PARAMS = {"uidb64", "token"}


def patterns(entries=portal_urls.urlpatterns, prefix=""):
    """(name, converters) of every pattern in portal.urls, included ones too."""
    for entry in entries:
        if isinstance(entry, URLResolver):
            yield from patterns(entry.url_patterns, prefix)
        elif isinstance(entry, URLPattern):
            assert entry.name, f"{entry.pattern} has no name: name it so tests can reach it"
            yield entry.name, dict(entry.pattern.converters)


def make_world(name: str, base: int) -> dict:
    """An affiliate with one of everything the portal shows, ids from `base` (distinct per
    affiliate, so another affiliate's id never names one of your own rows by chance)."""
    affiliate = AffiliateFactory(name=f"{name} Media")
    user = portal_user(affiliate, username=f"{name.lower()}-user@example.com")
    postback = PostbackFactory(pk=base + 1, affiliate=affiliate, name=f"{name} live postback")
    PostbackFactory(pk=base + 2, affiliate=affiliate, name=f"{name} paused", active=False)
    conversion = ConversionFactory(
        click=ClickFactory(affiliate=affiliate), transaction_id=f"{name}-txn"
    )
    delivery = Delivery.objects.create(
        pk=base + 3, postback=postback, conversion=conversion, status="approved"
    )
    DeliveryAttempt.objects.create(
        pk=base + 4, delivery=delivery, number=1, url=f"https://{name.lower()}.example/pb"
    )
    PostbackProposal.objects.create(
        pk=base + 5,
        affiliate=affiliate,
        postback=postback,
        values={**request_values(postback), "url": f"https://{name.lower()}.example/changed"},
        base=request_values(postback),
        proposed_by=user,
    )
    PostbackProposal.objects.create(
        pk=base + 6,
        affiliate=affiliate,
        is_new=True,
        values={"name": f"{name} proposed postback", "url": f"https://{name.lower()}.example/n"},
        proposed_by=user,
    )
    client = Client()
    client.force_login(user)
    return {
        "affiliate": affiliate,
        "client": client,
        "ints": [base + n for n in range(1, 7)] + [affiliate.pk, user.pk],
        "uuids": [delivery.uid, conversion.pk],
        "markers": [
            f"{name} Media",
            f"{name} live postback",
            f"{name} paused",
            f"{name}-txn",
            f"{name.lower()}.example",
            f"{name} proposed postback",
            f"{name.lower()}-user",
        ],
    }


def state(affiliate) -> tuple:
    """What a stray write would change: the affiliate's postbacks, proposals and deliveries."""
    return (
        list(Postback.objects.filter(affiliate=affiliate).values().order_by("pk")),
        list(PostbackProposal.objects.filter(affiliate=affiliate).values().order_by("pk")),
        Delivery.objects.filter(postback__affiliate=affiliate).count(),
        Conversion.objects.filter(affiliate=affiliate).count(),
    )


def object_ids(converters: dict, other: dict):
    """Every kwargs combination naming one of the other affiliate's objects."""
    [(param, converter)] = converters.items()  # one id per portal URL so far
    kind = type(converter).__name__
    if kind == "IntConverter":
        return [{param: value} for value in other["ints"]]
    if kind == "UUIDConverter":
        return [{param: value} for value in other["uuids"]]
    raise AssertionError(f"Teach the isolation test the {kind} parameter {param!r}")


@pytest.fixture
def worlds():
    return make_world("Alpha", 1000), make_world("Bravo", 2000)


def test_the_walk_covers_every_portal_url():
    names = {name for name, _ in patterns()}
    assert {"overview", "conversions", "log", "delivery", "test_send", "account"} <= names
    assert {"postbacks", "postback_edit", "postback_deactivate", "changes"} <= names


@pytest.mark.parametrize("direction", ["alpha sees bravo", "bravo sees alpha"])
def test_no_portal_url_shows_or_changes_the_other_affiliates_data(worlds, direction):
    me, other = worlds if direction == "alpha sees bravo" else worlds[::-1]
    before = state(other["affiliate"])
    for name, converters in patterns():
        url_name = f"portal:{name}"
        if not converters:
            _page_hides_the_other(me, other, reverse(url_name))
        elif set(converters) <= ONE_TIME_LINK_PARAMS:
            fake = {"uidb64": "MjAwMQ", "token": "set-password"}
            _page_hides_the_other(me, other, reverse(url_name, kwargs=fake))
        else:
            for kwargs in object_ids(converters, other):
                url = reverse(url_name, kwargs=kwargs)
                for method in ("get", "post"):
                    status = getattr(me["client"], method)(url).status_code
                    assert status in (404, 405), f"{method.upper()} {url} as {direction}: {status}"
                _own_objects_are_found(me, url_name, converters)
    assert state(other["affiliate"]) == before


def _page_hides_the_other(me: dict, other: dict, url: str) -> None:
    response = me["client"].get(url, follow=True)
    assert response.status_code in (200, 405), f"GET {url}: {response.status_code}"
    page = response.content.decode()
    shown = [marker for marker in other["markers"] if marker in page]
    assert shown == [], f"GET {url} shows the other affiliate's {shown}"


def _own_objects_are_found(me: dict, url_name: str, converters: dict) -> None:
    """The same URL with one's own ids answers: the 404s above are about ownership."""
    statuses = {
        me["client"].get(reverse(url_name, kwargs=kwargs)).status_code
        for kwargs in object_ids(converters, me)
    }
    assert statuses - {404}, f"{url_name} finds none of the affiliate's own objects"


def test_another_affiliates_delivery_id_is_404_even_as_a_random_uuid(worlds):
    me, _ = worlds
    assert me["client"].get(f"/portal/log/{uuid.uuid4()}/").status_code == 404
