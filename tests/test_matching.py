"""Which postbacks fire for a conversion event, and that each fires once."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django_q.models import OrmQ

from conversions import services
from conversions.models import ConversionStatus, ConversionStatusChange, StatusChangeSource
from postbacks.delivery import queue
from postbacks.matching import create_deliveries, matching_postbacks
from postbacks.models import Delivery, Scope
from tests.factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

REAL_SEND_TO_BROKER = queue.send_to_broker  # read before the autouse fixture replaces it

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


def test_a_status_change_fires_each_postback_once(conversion):
    PostbackFactory(affiliate=conversion.affiliate)
    change = ConversionStatusChange.objects.create(
        conversion=conversion, to_status="pending", source=StatusChangeSource.API
    )
    assert len(create_deliveries(conversion, change)) == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        create_deliveries(conversion, change)  # the same change announced again
    assert Delivery.objects.get().status_change == change


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
    assert broker_calls == [delivery.pk]


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
    django_capture_on_commit_callbacks, broker_calls, orm_broker, monkeypatch
):
    if orm_broker:  # the real broker: its task row is written in the transaction, and undone
        monkeypatch.setattr(queue, "send_to_broker", REAL_SEND_TO_BROKER)
    postback = PostbackFactory()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _new_conversion(postback.affiliate, OfferFactory())
        if orm_broker:
            assert OrmQ.objects.count() == 1
        raise RuntimeError("the request failed after the write")
    assert Delivery.objects.count() == 0
    assert broker_calls == [] and not OrmQ.objects.exists()


def test_on_the_orm_broker_the_task_row_commits_with_the_deliveries(
    django_capture_on_commit_callbacks, orm_broker, monkeypatch
):
    """One write transaction per conversion: the task row is written before the commit."""
    if not orm_broker:
        pytest.skip("Redis is told after the commit")
    monkeypatch.setattr(queue, "send_to_broker", REAL_SEND_TO_BROKER)
    postback = PostbackFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        _new_conversion(postback.affiliate, OfferFactory())
    assert callbacks == [] and OrmQ.objects.count() == 1


def test_approved_rejected_approved_sends_three_postbacks(
    django_capture_on_commit_callbacks, broker_calls
):
    postback = PostbackFactory(statuses=["approved", "rejected"])
    conversion, _ = _new_conversion(postback.affiliate, OfferFactory())
    with django_capture_on_commit_callbacks(execute=True):
        for status in ("approved", "rejected", "approved"):
            services.update_conversion(conversion, source="api", status=status)
    deliveries = list(Delivery.objects.order_by("status_change_id"))
    assert [d.status for d in deliveries] == ["approved", "rejected", "approved"]
    assert [d.status_change.to_status for d in deliveries] == ["approved", "rejected", "approved"]
    assert broker_calls == [d.pk for d in deliveries]


def test_setting_the_status_a_conversion_has_sends_nothing(
    django_capture_on_commit_callbacks, broker_calls
):
    postback = PostbackFactory(statuses=["pending", "approved"])
    conversion, _ = _new_conversion(postback.affiliate, OfferFactory())
    broker_calls.clear()  # its creation's
    with django_capture_on_commit_callbacks(execute=True):
        services.update_conversion(conversion, source="api", status="pending")
        services.update_conversion(conversion, source="api", status="pending", payout=Decimal("1"))
    assert conversion.status_changes.count() == 1  # its creation
    assert Delivery.objects.count() == 1 and broker_calls == []


def test_repeated_api_calls_send_nothing_extra(
    api_client, django_capture_on_commit_callbacks, broker_calls
):
    postback = PostbackFactory(statuses=["pending", "approved"])
    click = ClickFactory(affiliate=postback.affiliate)
    body = {"cid": click.cid, "conversion_type": "sale", "transaction_id": "order-7"}
    with django_capture_on_commit_callbacks(execute=True):
        first = api_client.post("/api/v1/conversions/", body, format="json")
        assert first.status_code == 201, first.content
        assert api_client.post("/api/v1/conversions/", body, format="json").status_code == 200
        url = f"/api/v1/conversions/{first.json()['id']}/"
        for _ in range(2):
            answer = api_client.patch(url, {"status": "approved"}, format="json")
            assert answer.status_code == 200
    assert sorted(Delivery.objects.values_list("status", flat=True)) == ["approved", "pending"]
    assert len(broker_calls) == 2


def test_bulk_ingest_links_each_delivery_to_its_status_change(api_client, broker_calls):
    postback = PostbackFactory(statuses=["pending"])
    click = ClickFactory(affiliate=postback.affiliate)
    items = [
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": f"bulk-{n}"}
        for n in range(3)
    ]
    response = api_client.post("/api/v1/conversions/bulk/", {"conversions": items}, format="json")
    assert response.json()["created"] == 3
    for delivery in Delivery.objects.select_related("status_change"):
        assert delivery.status_change.conversion_id == delivery.conversion_id
        assert delivery.status_change.to_status == "pending"
