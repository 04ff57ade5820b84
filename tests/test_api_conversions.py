"""The conversion API: create (idempotent), change status, list with filters, read."""

import io
import os
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.pagination import PageNumberPagination

from conversions import services
from conversions.api import DecimalJSONParser
from conversions.models import Conversion, ConversionStatusChange, ConversionType
from conversions.serializers import parse_status
from postbacks.models import Delivery
from tests.factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversions/"


def detail_url(conversion) -> str:
    return f"{URL}{conversion.pk}/"


def post(client, **data):
    return client.post(URL, data, format="json")


def create_via_service(click=None, **overrides) -> Conversion:
    click = click or ClickFactory()
    values = {
        "affiliate": click.affiliate,
        "offer": click.offer,
        "click": click,
        "conversion_type": conversion_type("sale"),
        "transaction_id": "order-1",
        "currency": "USD",
        **overrides,
    }
    return services.create_conversion(services.ConversionInput(**values), source="api")[0]


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_list_and_create_without_token_are_401(anon_client, method):
    response = getattr(anon_client, method)(URL)

    assert response.status_code == 401


def test_detail_and_patch_without_token_are_401(anon_client):
    conversion = ConversionFactory()

    assert anon_client.get(detail_url(conversion)).status_code == 401
    assert anon_client.patch(detail_url(conversion), {}, format="json").status_code == 401


def test_bad_token_is_401(anon_client):
    anon_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = anon_client.get(URL)

    assert response.status_code == 401


# --- create ---------------------------------------------------------------------------------


def test_create_by_cid_takes_affiliate_and_offer_from_the_click(api_client):
    click = ClickFactory()

    response = post(
        api_client,
        cid=click.cid,
        conversion_type="sale",
        transaction_id="order-1",
        payout="12.50",
        sale_amount=100,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["affiliate"] == click.affiliate.pk
    assert body["offer"] == click.offer.pk
    assert body["cid"] == click.cid
    assert body["conversion_type"] == "sale"
    assert body["status"] == "pending"
    assert body["transaction_id"] == "order-1"
    assert Decimal(body["payout"]) == Decimal("12.50")
    assert Decimal(body["sale_amount"]) == Decimal("100")
    assert body["revenue"] is None
    assert body["currency"] == "USD"
    assert body["status_history"] == [
        {
            "from_status": "",
            "to_status": "pending",
            "source": "api",
            "created": body["status_history"][0]["created"],
        }
    ]
    assert Conversion.objects.get().click == click


def test_create_by_affiliate_and_offer_has_no_click(api_client):
    affiliate, offer = AffiliateFactory(), OfferFactory(default_currency="EUR")

    response = post(
        api_client,
        affiliate=affiliate.pk,
        offer=offer.pk,
        conversion_type="lead",
        status="approved",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["affiliate"], body["offer"], body["cid"]) == (affiliate.pk, offer.pk, None)
    assert body["status"] == "approved"
    assert body["currency"] == "EUR"


def test_create_returns_every_documented_field(api_client):
    click = ClickFactory()
    extras = {f"adv_s{i}": f"a{i}" for i in range(1, 6)}

    response = post(
        api_client,
        cid=click.cid,
        conversion_type="sale",
        external_cid="ext-9",
        customer_id="cust-7",
        revenue="3.25",
        **extras,
    )

    body = response.json()
    assert {"id", "created", "updated"} <= body.keys()
    assert body["external_cid"] == "ext-9"
    assert body["customer_id"] == "cust-7"
    assert body["revenue"] == "3.250000"
    assert {k: body[k] for k in extras} == extras


def test_cid_with_matching_affiliate_and_offer_is_accepted(api_client):
    click = ClickFactory()

    response = post(
        api_client,
        cid=click.cid,
        affiliate=click.affiliate.pk,
        offer=click.offer.pk,
        conversion_type="sale",
    )

    assert response.status_code == 201


def test_missing_transaction_id_gets_a_generated_one(api_client):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="sale")

    transaction_id = response.json()["transaction_id"]
    assert len(transaction_id) == 32
    int(transaction_id, 16)


def test_currency_in_lower_case_is_stored_upper_case(api_client):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="sale", currency="gbp")

    assert response.json()["currency"] == "GBP"


def test_amounts_as_json_numbers_are_accepted(api_client):
    response = api_client.post(
        URL,
        f'{{"cid": "{ClickFactory().cid}", "conversion_type": "sale", '
        '"payout": 0.1, "revenue": 7}',
        content_type="application/json",
    )

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert (conversion.payout, conversion.revenue) == (Decimal("0.1"), Decimal("7"))


def test_json_numbers_are_parsed_as_decimal_never_float():
    body = io.BytesIO(b'{"payout": 123456789012.123456, "n": 3}')

    data = DecimalJSONParser().parse(body, parser_context={})

    assert data == {"payout": Decimal("123456789012.123456"), "n": 3}
    assert isinstance(data["payout"], Decimal)


def test_amounts_are_rendered_as_strings(api_client):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="sale", payout=5)

    assert response.json()["payout"] == "5.000000"


# --- idempotency ----------------------------------------------------------------------------


def test_retry_with_same_transaction_id_returns_200_and_the_existing_row(api_client):
    click = ClickFactory()
    first = post(api_client, cid=click.cid, conversion_type="sale", transaction_id="order-1")

    again = post(
        api_client,
        cid=click.cid,
        conversion_type="sale",
        transaction_id="order-1",
        status="approved",
        payout="99",
    )

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "pending"
    assert again.json()["payout"] is None
    assert Conversion.objects.count() == 1
    assert ConversionStatusChange.objects.count() == 1


def test_same_transaction_id_on_another_offer_is_a_new_conversion(api_client):
    post(api_client, cid=ClickFactory().cid, conversion_type="sale", transaction_id="order-1")

    response = post(
        api_client, cid=ClickFactory().cid, conversion_type="sale", transaction_id="order-1"
    )

    assert response.status_code == 201
    assert Conversion.objects.count() == 2


# RACE_ROUNDS and RACE_THREADS raise the race for the figure in docs/security-and-reliability.md.
RACE_ROUNDS = int(os.environ.get("RACE_ROUNDS", "1"))
RACE_THREADS = int(os.environ.get("RACE_THREADS", "4"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_number", range(RACE_ROUNDS))
def test_identical_creates_racing_on_their_own_connections_store_one_conversion(round_number):
    """Clients retrying the same call at once, each on its own database connection: the
    unique constraint picks one winner and the others get its row (no error, no second row)."""
    postback = PostbackFactory(statuses=["pending"])
    click = ClickFactory(affiliate=postback.affiliate)
    start = threading.Barrier(RACE_THREADS)
    results, errors = [], []

    def client():
        try:
            start.wait(timeout=10)
            results.append(
                services.create_conversion(
                    services.ConversionInput(
                        affiliate=click.affiliate,
                        offer=click.offer,
                        click=click,
                        conversion_type=conversion_type("sale"),
                        transaction_id=f"order-{round_number}",
                        currency="USD",
                    ),
                    source="api",
                )
            )
        except Exception as exc:  # reported below, with the others' results
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(RACE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(created for _, created in results) == [False] * (RACE_THREADS - 1) + [True]
    assert len({conversion.pk for conversion, _ in results}) == 1
    assert Conversion.objects.count() == 1
    assert ConversionStatusChange.objects.count() == 1
    assert Delivery.objects.count() == 1


def test_a_failure_after_the_insert_leaves_no_half_written_conversion(api_client, monkeypatch):
    """Conversion, history and deliveries are one transaction: if writing the deliveries
    fails, none of it is stored (and the client can retry the same call)."""
    postback = PostbackFactory(statuses=["pending"])
    click = ClickFactory(affiliate=postback.affiliate)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away while writing deliveries")

    monkeypatch.setattr("postbacks.matching.create_deliveries", broken)
    with pytest.raises(RuntimeError):
        post(api_client, cid=click.cid, conversion_type="sale", transaction_id="order-9")

    assert not Conversion.objects.exists()
    assert not ConversionStatusChange.objects.exists()
    assert not Delivery.objects.exists()
    monkeypatch.undo()
    assert (
        post(
            api_client, cid=click.cid, conversion_type="sale", transaction_id="order-9"
        ).status_code
        == 201
    )


def test_migration_seeds_trackdesk_default_types_and_the_usual_extras():
    codes = set(ConversionType.objects.values_list("code", flat=True))
    assert {"sale", "lead", "free-trial", "registration", "deposit"} <= codes


# --- create: bad input is a 400 with field errors ---------------------------------------------


def test_unknown_cid_is_400(api_client):
    response = post(api_client, cid="no-such-click", conversion_type="sale")

    assert response.status_code == 400
    assert "cid" in response.json()


def test_unknown_conversion_type_is_400(api_client):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="nope")

    assert response.status_code == 400
    assert "conversion_type" in response.json()


def test_missing_conversion_type_is_400(api_client):
    response = post(api_client, cid=ClickFactory().cid)

    assert response.status_code == 400
    assert "conversion_type" in response.json()


@pytest.mark.parametrize("currency", ["XXX", "US", "usdollar", ""])
def test_unknown_currency_is_400(api_client, currency):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="sale", currency=currency)

    assert response.status_code == 400
    assert "currency" in response.json()


@pytest.mark.parametrize("field", ["payout", "revenue", "sale_amount"])
@pytest.mark.parametrize(
    "value",
    ["-1", -0.01, "abc", "NaN", "Infinity", "1.1234567", "1" * 13, True, {"value": 1}],
    ids=str,
)
def test_negative_non_numeric_or_too_precise_amount_is_400(api_client, field, value):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="sale", **{field: value})

    assert response.status_code == 400
    assert field in response.json()
    assert not Conversion.objects.exists()


@pytest.mark.parametrize(
    "field",
    ["transaction_id", "external_cid", "customer_id", "adv_s1", "adv_s5"],
)
def test_strings_over_255_characters_are_400(api_client, field):
    response = post(
        api_client, cid=ClickFactory().cid, conversion_type="sale", **{field: "x" * 256}
    )

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("field", ["affiliate", "offer"])
def test_inactive_affiliate_or_offer_is_400(api_client, field):
    ids = {"affiliate": AffiliateFactory().pk, "offer": OfferFactory().pk}
    model = {"affiliate": AffiliateFactory, "offer": OfferFactory}[field]
    ids[field] = model(active=False).pk

    response = post(api_client, conversion_type="sale", **ids)

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("value", [999999, 2**70, "abc", 1.5, True])
def test_unknown_or_malformed_affiliate_id_is_400(api_client, value):
    response = post(api_client, affiliate=value, offer=OfferFactory().pk, conversion_type="sale")

    assert response.status_code == 400
    assert "affiliate" in response.json()


@pytest.mark.parametrize("field", ["affiliate", "offer"])
def test_click_of_inactive_affiliate_or_offer_is_400(api_client, field):
    click = ClickFactory()
    owner = getattr(click, field)
    owner.active = False
    owner.save()

    response = post(api_client, cid=click.cid, conversion_type="sale")

    assert response.status_code == 400
    assert "cid" in response.json()


@pytest.mark.parametrize("field", ["affiliate", "offer"])
def test_cid_with_conflicting_affiliate_or_offer_is_400(api_client, field):
    click = ClickFactory()
    other = {"affiliate": AffiliateFactory, "offer": OfferFactory}[field]()

    response = post(api_client, cid=click.cid, conversion_type="sale", **{field: other.pk})

    assert response.status_code == 400
    assert field in response.json()


def test_neither_cid_nor_affiliate_and_offer_is_400(api_client):
    response = post(api_client, conversion_type="sale")

    assert response.status_code == 400
    assert "cid" in response.json()


def test_affiliate_without_offer_is_400(api_client):
    response = post(api_client, affiliate=AffiliateFactory().pk, conversion_type="sale")

    assert response.status_code == 400
    assert "offer" in response.json()


def test_unknown_status_is_400(api_client):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="sale", status="paid")

    assert response.status_code == 400
    assert "status" in response.json()


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "{not json", '{"payout": NaN}'])
def test_body_that_is_not_a_json_object_is_400(api_client, body):
    response = api_client.post(URL, body, content_type="application/json")

    assert response.status_code == 400


# --- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, stored",
    [
        ("approved", "approved"),
        ("APPROVED", "approved"),
        ("CONVERSION_STATUS_APPROVED", "approved"),
        ("conversion_status_on_hold", "on_hold"),
        ("CONVERSION_STATUS_NOT_ALLOWED", "not_allowed"),
        ("Declined", "rejected"),
        (" refunded ", "refunded"),
        ("CONVERSION_STATUS_TEST", "test"),
    ],
)
def test_status_aliases_are_accepted(api_client, given, stored):
    response = post(api_client, cid=ClickFactory().cid, conversion_type="sale", status=given)

    assert response.status_code == 201
    assert response.json()["status"] == stored


@pytest.mark.parametrize("value", ["paid", "", "CONVERSION_STATUS_", 3, None])
def test_parse_status_rejects_unknown_values(value):
    assert parse_status(value) is None


# --- PATCH ----------------------------------------------------------------------------------


def test_patch_status_writes_a_history_row(api_client):
    conversion = create_via_service()

    response = api_client.patch(
        detail_url(conversion), {"status": "CONVERSION_STATUS_APPROVED"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "approved"
    assert [(h["from_status"], h["to_status"], h["source"]) for h in body["status_history"]] == [
        ("", "pending", "api"),
        ("pending", "approved", "api"),
    ]


def test_patch_amounts_without_status_keeps_status_and_history(api_client):
    conversion = create_via_service(payout=Decimal("1"))

    response = api_client.patch(
        detail_url(conversion), {"payout": "7.5", "revenue": 2}, format="json"
    )

    assert response.status_code == 200
    conversion.refresh_from_db()
    assert (conversion.payout, conversion.revenue) == (Decimal("7.5"), Decimal("2"))
    assert conversion.status == "pending"
    assert conversion.status_changes.count() == 1


def test_patch_to_the_same_status_adds_no_history(api_client):
    conversion = create_via_service()

    api_client.patch(detail_url(conversion), {"status": "pending"}, format="json")

    assert conversion.status_changes.count() == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"status": "paid"}, "status"),
        ({"payout": "-5"}, "payout"),
        ({"sale_amount": "x"}, "sale_amount"),
        ({}, "non_field_errors"),
    ],
)
def test_patch_with_bad_input_is_400_and_changes_nothing(api_client, body, field):
    conversion = create_via_service()

    response = api_client.patch(detail_url(conversion), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert conversion.status_changes.count() == 1


@pytest.mark.parametrize("method", ["put", "delete"])
def test_put_and_delete_are_not_allowed(api_client, method):
    conversion = ConversionFactory()

    response = getattr(api_client, method)(detail_url(conversion), {}, format="json")

    assert response.status_code == 405
    assert Conversion.objects.filter(pk=conversion.pk).exists()


def test_patch_unknown_conversion_is_404(api_client):
    response = api_client.patch(f"{URL}not-a-uuid/", {"status": "approved"}, format="json")

    assert response.status_code == 404


# --- list and detail ------------------------------------------------------------------------


def test_detail_returns_the_conversion(api_client):
    conversion = create_via_service()

    response = api_client.get(detail_url(conversion))

    assert response.status_code == 200
    assert response.json()["id"] == str(conversion.pk)
    assert response.json()["cid"] == conversion.click.cid


def test_unknown_detail_is_404(api_client):
    assert api_client.get(f"{URL}00000000-0000-0000-0000-000000000000/").status_code == 404


def test_list_is_paginated_newest_first(api_client, monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    start = timezone.now()
    for minutes in range(3):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            ConversionFactory(transaction_id=f"t{minutes}")

    first = api_client.get(URL).json()
    second = api_client.get(URL, {"page": 2}).json()

    assert first["count"] == 3
    assert [c["transaction_id"] for c in first["results"]] == ["t2", "t1"]
    assert [c["transaction_id"] for c in second["results"]] == ["t0"]
    assert first["next"] and second["previous"]


def ids(response) -> set[str]:
    assert response.status_code == 200, response.json()
    return {c["transaction_id"] for c in response.json()["results"]}


def test_filter_by_affiliate_and_offer(api_client):
    a, b = ConversionFactory(), ConversionFactory()

    assert ids(api_client.get(URL, {"affiliate": a.affiliate_id})) == {a.transaction_id}
    assert ids(api_client.get(URL, {"offer": b.offer_id})) == {b.transaction_id}


def test_filter_by_conversion_type_code(api_client):
    lead = ConversionFactory(conversion_type=conversion_type("lead"))
    ConversionFactory()

    assert ids(api_client.get(URL, {"conversion_type": "lead"})) == {lead.transaction_id}


@pytest.mark.parametrize("value", ["rejected", "declined", "CONVERSION_STATUS_REJECTED"])
def test_filter_by_status_accepts_aliases(api_client, value):
    rejected = ConversionFactory(status="rejected")
    ConversionFactory()

    assert ids(api_client.get(URL, {"status": value})) == {rejected.transaction_id}


def test_filter_by_created_after_and_before(api_client):
    now = timezone.now()
    for days, name in [(-2, "old"), (0, "today"), (2, "future")]:
        with time_machine.travel(now + timedelta(days=days), tick=False):
            ConversionFactory(transaction_id=name)
    window = {
        "created_after": (now - timedelta(days=1)).isoformat(),
        "created_before": (now + timedelta(days=1)).isoformat(),
    }

    assert ids(api_client.get(URL, window)) == {"today"}


@pytest.mark.parametrize(
    "params",
    [
        {"status": "paid"},
        {"affiliate": "abc"},
        {"created_after": "yesterday"},
    ],
)
def test_bad_filter_values_are_400(api_client, params):
    response = api_client.get(URL, params)

    assert response.status_code == 400
    assert params.keys() <= response.json().keys()


def test_list_queries_do_not_grow_with_rows(api_client, django_assert_num_queries):
    create_via_service(transaction_id="first")
    api_client.get(URL)  # the token's user and permissions are remembered from here on
    # count, rows, history
    with django_assert_num_queries(3) as one_row:
        api_client.get(URL)
    for n in range(5):
        create_via_service(transaction_id=f"more-{n}")

    with django_assert_num_queries(len(one_row.captured_queries)):
        response = api_client.get(URL)

    assert len(response.json()["results"]) == 6
