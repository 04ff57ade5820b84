"""Which postbacks fire for a conversion event, and that each fires once."""

import pytest

from conversions import services
from conversions.models import ConversionStatus, StatusChangeSource
from postbacks.matching import create_deliveries, matching_postbacks
from postbacks.models import Delivery, Scope
from tests.factories import (
    AffiliateFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversion():
    return ConversionFactory(status=ConversionStatus.PENDING)


def test_postback_of_the_conversions_affiliate_matches(conversion):
    postback = PostbackFactory(affiliate=conversion.affiliate)
    assert matching_postbacks(conversion, "pending") == [postback]


def test_postback_of_another_affiliate_does_not_match(conversion):
    PostbackFactory(affiliate=AffiliateFactory())
    assert matching_postbacks(conversion, "pending") == []


def test_inactive_postback_does_not_match(conversion):
    PostbackFactory(affiliate=conversion.affiliate, active=False)
    assert matching_postbacks(conversion, "pending") == []


def test_postback_for_other_status_does_not_match(conversion):
    PostbackFactory(affiliate=conversion.affiliate, statuses=["approved"])
    assert matching_postbacks(conversion, "pending") == []
    assert len(matching_postbacks(conversion, "approved")) == 1


def test_postback_for_other_conversion_type_does_not_match(conversion):
    PostbackFactory(affiliate=conversion.affiliate, conversion_types=[conversion_type("lead")])
    assert matching_postbacks(conversion, "pending") == []


def test_global_scope_covers_offers_created_later_but_not_excluded_ones(conversion):
    excluded = OfferFactory()
    postback = PostbackFactory(
        affiliate=conversion.affiliate, scope=Scope.GLOBAL, offers=[excluded]
    )
    later_offer_conversion = ConversionFactory(
        click__affiliate=conversion.affiliate, click__offer=OfferFactory()
    )
    assert matching_postbacks(later_offer_conversion, "pending") == [postback]
    excluded_conversion = ConversionFactory(
        click__affiliate=conversion.affiliate, click__offer=excluded
    )
    assert matching_postbacks(excluded_conversion, "pending") == []


def test_offer_scope_covers_only_listed_offers(conversion):
    postback = PostbackFactory(
        affiliate=conversion.affiliate, scope=Scope.OFFERS, offers=[conversion.offer]
    )
    assert matching_postbacks(conversion, "pending") == [postback]
    other = ConversionFactory(click__affiliate=conversion.affiliate, click__offer=OfferFactory())
    assert matching_postbacks(other, "pending") == []


def test_same_event_twice_creates_one_delivery(conversion):
    PostbackFactory(affiliate=conversion.affiliate)
    first = create_deliveries(conversion, "pending")
    second = create_deliveries(conversion, "pending")
    assert len(first) == 1
    assert second == first  # the same row, still waiting: enqueueing it again is harmless
    assert Delivery.objects.count() == 1


def _new_conversion(affiliate, offer, *, status="pending", transaction_id="T-1"):
    data = services.ConversionInput(
        affiliate=affiliate,
        offer=offer,
        conversion_type=conversion_type("sale"),
        transaction_id=transaction_id,
        currency="USD",
        status=status,
    )
    return services.create_conversion(data, source=StatusChangeSource.API)


def test_creating_a_conversion_writes_its_delivery_in_the_same_transaction(
    django_capture_on_commit_callbacks, broker_calls
):
    postback = PostbackFactory()
    with django_capture_on_commit_callbacks(execute=True):
        conversion, created = _new_conversion(postback.affiliate, OfferFactory())
    delivery = Delivery.objects.get()
    assert created and delivery.conversion == conversion and delivery.status == "pending"
    assert broker_calls == [delivery.pk]  # enqueued only after commit


def test_repeated_create_of_the_same_conversion_fires_once(
    django_capture_on_commit_callbacks, broker_calls
):
    postback = PostbackFactory()
    offer = OfferFactory()
    with django_capture_on_commit_callbacks(execute=True):
        _new_conversion(postback.affiliate, offer)
        _, created = _new_conversion(postback.affiliate, offer)
    assert not created
    assert Delivery.objects.count() == 1
    assert len(broker_calls) == 1


def test_status_change_to_approved_fires_once(django_capture_on_commit_callbacks, broker_calls):
    postback = PostbackFactory(statuses=["approved"])
    conversion, _ = _new_conversion(postback.affiliate, OfferFactory())
    assert Delivery.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        services.update_conversion(conversion, source="api", status="approved")
        services.update_conversion(conversion, source="api", status="approved")  # a re-save
    assert Delivery.objects.filter(status="approved").count() == 1
    assert len(broker_calls) == 1


def test_nothing_is_enqueued_when_the_transaction_rolls_back(
    django_capture_on_commit_callbacks, broker_calls
):
    from django.db import transaction

    postback = PostbackFactory()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _new_conversion(postback.affiliate, OfferFactory())
        raise RuntimeError("the request failed after the write")
    assert Delivery.objects.count() == 0
    assert broker_calls == []
