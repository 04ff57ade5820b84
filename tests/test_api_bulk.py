"""Bulk ingest: up to 1,000 conversions per call, one result per item, each item on its own."""

from decimal import Decimal

import pytest
from django.db import IntegrityError

from conversions import services
from conversions.models import Conversion, ConversionStatusChange
from postbacks.models import Delivery
from tests.factories import AffiliateFactory, ClickFactory, OfferFactory, PostbackFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversions/bulk/"


def post(client, items):
    return client.post(URL, {"conversions": items}, format="json")


def item(click, n, **extra):
    return {"cid": click.cid, "conversion_type": "sale", "transaction_id": f"t-{n}", **extra}


def test_creates_every_valid_item_with_history_and_deliveries(
    api_client, broker_calls, django_capture_on_commit_callbacks, settings
):
    settings.POSTBACK_CONCURRENT_DISPATCH = True
    click = ClickFactory()
    PostbackFactory(affiliate=click.affiliate, statuses=["pending"])
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api_client, [item(click, n, payout="1.10") for n in range(5)])

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["existing"], body["errors"]) == (5, 0, 0)
    assert [r["result"] for r in body["results"]] == ["created"] * 5
    assert [r["index"] for r in body["results"]] == list(range(5))
    stored = Conversion.objects.get(pk=body["results"][2]["id"])
    assert stored.transaction_id == "t-2" and stored.payout == Decimal("1.10")
    assert stored.affiliate == click.affiliate and stored.currency == "USD"
    assert ConversionStatusChange.objects.filter(to_status="pending", from_status="").count() == 5
    assert Delivery.objects.count() == 5  # one postback fires once per conversion
    assert len(broker_calls) == 1  # one task drains the whole batch


def test_bad_items_get_field_errors_and_the_others_are_stored(api_client):
    click = ClickFactory()
    response = post(
        api_client,
        [
            item(click, 1),
            {"cid": "no-such-click", "conversion_type": "sale"},
            item(click, 2, conversion_type="nope"),
            item(click, 3, payout="-1"),
            item(click, 4, currency="XXQ"),
            item(click, 5),
        ],
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["errors"]) == (2, 4)
    results = body["results"]
    assert [r["result"] for r in results] == [
        "created",
        "error",
        "error",
        "error",
        "error",
        "created",
    ]
    assert "No click with cid" in results[1]["errors"]["cid"][0]
    assert "No conversion type" in results[2]["errors"]["conversion_type"][0]
    assert "payout" in results[3]["errors"]
    assert "currency" in results[4]["errors"]
    assert set(Conversion.objects.values_list("transaction_id", flat=True)) == {"t-1", "t-5"}


def test_affiliate_and_offer_ids_are_checked(api_client):
    affiliate, offer = AffiliateFactory(), OfferFactory()
    inactive = OfferFactory(active=False)
    response = post(
        api_client,
        [
            {"affiliate": affiliate.pk, "offer": offer.pk, "conversion_type": "sale"},
            {"affiliate": affiliate.pk, "offer": inactive.pk, "conversion_type": "sale"},
            {"affiliate": affiliate.pk, "offer": 999999, "conversion_type": "sale"},
            {"affiliate": affiliate.pk, "conversion_type": "sale"},
        ],
    )
    results = response.json()["results"]
    assert [r["result"] for r in results] == ["created", "error", "error", "error"]
    assert "No active offer with id" in results[1]["errors"]["offer"][0]
    assert "No active offer with id 999999" in results[2]["errors"]["offer"][0]
    assert "offer" in results[3]["errors"]


def test_known_and_repeated_transactions_are_existing_not_duplicated(api_client):
    click = ClickFactory()
    first = post(api_client, [item(click, 1)]).json()["results"][0]

    response = post(api_client, [item(click, 1), item(click, 2), item(click, 2)])

    results = response.json()["results"]
    assert [r["result"] for r in results] == ["existing", "created", "existing"]
    assert results[0]["id"] == first["id"]
    assert results[1]["id"] == results[2]["id"]
    assert Conversion.objects.count() == 2
    assert ConversionStatusChange.objects.count() == 2


def test_repeated_call_fires_no_second_postback(api_client):
    click = ClickFactory()
    PostbackFactory(affiliate=click.affiliate, statuses=["pending"])
    post(api_client, [item(click, n) for n in range(3)])
    post(api_client, [item(click, n) for n in range(3)])
    assert Delivery.objects.count() == 3


def test_only_matching_postbacks_fire(api_client):
    click = ClickFactory()
    approved_only = PostbackFactory(affiliate=click.affiliate, statuses=["approved"])
    PostbackFactory(statuses=["pending"])  # another affiliate's
    both = PostbackFactory(affiliate=click.affiliate, statuses=["pending", "approved"])
    post(api_client, [item(click, 1), item(click, 2, status="approved")])
    assert sorted(Delivery.objects.values_list("postback_id", "conversion__transaction_id")) == [
        (approved_only.pk, "t-2"),
        (both.pk, "t-1"),
        (both.pk, "t-2"),
    ]


def test_a_concurrent_insert_falls_back_to_one_item_at_a_time(api_client, monkeypatch):
    """Another request stored one of the items between our check and our insert."""
    click = ClickFactory()
    real_bulk_create = Conversion.objects.bulk_create

    def racing_bulk_create(objs, *args, **kwargs):
        monkeypatch.setattr(Conversion.objects, "bulk_create", real_bulk_create)
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(Conversion.objects, "bulk_create", racing_bulk_create)
    response = post(api_client, [item(click, 1), item(click, 2)])
    assert [r["result"] for r in response.json()["results"]] == ["created", "created"]
    assert Conversion.objects.count() == 2


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"conversions": []}, "conversions"),
        ({"conversions": "x"}, "conversions"),
        ({}, "conversions"),
        ({"conversions": [{}] * 1001}, "conversions"),
        ({"conversions": [1, 2]}, "conversions"),
    ],
)
def test_a_bad_envelope_is_400_and_stores_nothing(api_client, payload, message):
    response = api_client.post(URL, payload, format="json")
    assert response.status_code == 400
    assert message in response.json()
    assert Conversion.objects.count() == 0


def test_a_full_batch_is_accepted(api_client, django_assert_max_num_queries):
    click = ClickFactory()
    items = [item(click, n) for n in range(1000)]
    with django_assert_max_num_queries(40):  # a fixed number of queries, not one per item
        response = post(api_client, items)
    assert response.json()["created"] == 1000


def test_needs_a_token(anon_client):
    assert anon_client.post(URL, {"conversions": []}, format="json").status_code == 401


def test_service_keeps_order_and_reports_created(db):
    click = ClickFactory()

    def data(txn):
        return services.ConversionInput(
            affiliate=click.affiliate,
            offer=click.offer,
            click=click,
            conversion_type=services.ConversionType.objects.get(code="sale"),
            transaction_id=txn,
            currency="EUR",
        )

    results = services.create_conversions_bulk([data("a"), data("b"), data("a")], source="api")
    assert [(c.transaction_id, created) for c, created in results] == [
        ("a", True),
        ("b", True),
        ("a", False),
    ]


def test_bulk_endpoint_is_in_the_openapi_schema(api_client):
    schema = api_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    operation = schema.json()["paths"]["/api/v1/conversions/bulk/"]["post"]
    assert {"200", "400"} <= set(operation["responses"])
