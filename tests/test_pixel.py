"""The advertiser's conversion pixel: GET /tracking/conversion/v1 guarded by the offer's token."""

from decimal import Decimal

import pytest

from conversions.models import Conversion, ConversionStatusChange
from tests.factories import ClickFactory

pytestmark = pytest.mark.django_db

URL = "/tracking/conversion/v1"


def fire(client, click, **params):
    query = {
        "cid": click.cid,
        "token": click.offer.pixel_secret,
        "conversionTypeCode": "sale",
        **params,
    }
    return client.get(URL, query)


def test_pixel_creates_a_conversion_from_the_click(anon_client):
    click = ClickFactory()

    response = fire(
        anon_client,
        click,
        **{"amount.value": "100.50", "transactionId": "order-1", "currency": "eur"},
    )

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert (conversion.click, conversion.affiliate, conversion.offer) == (
        click,
        click.affiliate,
        click.offer,
    )
    assert conversion.sale_amount == Decimal("100.50")
    assert conversion.payout is None
    assert conversion.currency == "EUR"
    assert conversion.transaction_id == "order-1"
    assert response.json()["id"] == str(conversion.pk)


def test_pixel_maps_every_optional_parameter(anon_client):
    params = {
        "status": "CONVERSION_STATUS_APPROVED",
        "externalId": "order-7",
        "payout.value": "4.5",
        "externalCid": "ext-1",
        "customerId": "cust-1",
        **{f"customParams.advS{i}": f"adv-{i}" for i in range(1, 6)},
    }

    fire(anon_client, ClickFactory(), **params)

    conversion = Conversion.objects.get()
    assert conversion.status == "approved"
    assert conversion.transaction_id == "order-7"
    assert conversion.payout == Decimal("4.5")
    assert (conversion.external_cid, conversion.customer_id) == ("ext-1", "cust-1")
    assert [conversion.adv_s1, conversion.adv_s5] == ["adv-1", "adv-5"]


def test_pixel_records_history_with_source_pixel(anon_client):
    fire(anon_client, ClickFactory())

    change = ConversionStatusChange.objects.get()
    assert (change.from_status, change.to_status, change.source) == ("", "pending", "pixel")


def test_repeated_pixel_returns_200_and_the_same_conversion(anon_client):
    click = ClickFactory()
    first = fire(anon_client, click, transactionId="order-1")

    again = fire(anon_client, click, transactionId="order-1", status="approved")

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "pending"
    assert Conversion.objects.count() == 1


def test_transaction_id_wins_over_external_id(anon_client):
    fire(anon_client, ClickFactory(), transactionId="txn", externalId="ext")

    assert Conversion.objects.get().transaction_id == "txn"


def test_empty_parameters_count_as_missing(anon_client):
    response = fire(
        anon_client, ClickFactory(), **{"amount.value": "", "status": "", "currency": ""}
    )

    assert response.status_code == 201
    conversion = Conversion.objects.get()
    assert (conversion.sale_amount, conversion.status, conversion.currency) == (
        None,
        "pending",
        "USD",
    )


@pytest.mark.parametrize("token", ["wrong", "", "ünïcode-tøken", "nul\x00byte"])
def test_bad_token_is_403_and_records_nothing(anon_client, token):
    response = fire(anon_client, ClickFactory(), token=token)

    assert response.status_code == 403
    assert not Conversion.objects.exists()


def test_missing_token_is_403(anon_client):
    click = ClickFactory()

    response = anon_client.get(URL, {"cid": click.cid, "conversionTypeCode": "sale"})

    assert response.status_code == 403


def test_token_of_another_offer_does_not_record_on_this_offer(anon_client):
    other = ClickFactory()

    response = fire(anon_client, ClickFactory(), token=other.offer.pixel_secret)

    assert response.status_code == 400
    assert response.json() == {"cid": ["No click with this cid for this offer."]}
    assert not Conversion.objects.exists()


def test_without_a_valid_token_known_and_unknown_cids_look_the_same(anon_client):
    """Nobody without a token can tell from the answer whether a cid exists."""
    known = anon_client.get(
        URL, {"cid": ClickFactory().cid, "token": "guess", "conversionTypeCode": "sale"}
    )
    unknown = anon_client.get(
        URL, {"cid": "no-such-click", "token": "guess", "conversionTypeCode": "sale"}
    )

    assert known.status_code == unknown.status_code == 403
    assert known.json() == unknown.json()


@pytest.mark.parametrize("amount", ["-1", "abc", "1,50", "NaN", "1.1234567"])
def test_bad_amount_is_400_named_by_its_parameter(anon_client, amount):
    response = fire(anon_client, ClickFactory(), **{"amount.value": amount})

    assert response.status_code == 400
    assert "amount.value" in response.json()
    assert not Conversion.objects.exists()


@pytest.mark.parametrize("cid", ["no-such-click", "", "x" * 40])
def test_unknown_cid_is_400(anon_client, cid):
    token = ClickFactory().offer.pixel_secret
    response = anon_client.get(URL, {"cid": cid, "token": token, "conversionTypeCode": "sale"})

    assert response.status_code == 400
    assert "cid" in response.json()


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"conversionTypeCode": "nope"}, "conversionTypeCode"),
        ({"status": "paid"}, "status"),
        ({"currency": "XYZ"}, "currency"),
        ({"customParams.advS3": "x" * 256}, "customParams.advS3"),
    ],
)
def test_other_bad_parameters_are_400_named_by_parameter(anon_client, params, parameter):
    response = fire(anon_client, ClickFactory(), **params)

    assert response.status_code == 400
    assert parameter in response.json()


def test_inactive_offer_is_400(anon_client):
    click = ClickFactory(offer__active=False)

    response = fire(anon_client, click)

    assert response.status_code == 400
    assert "cid" in response.json()


def test_pixel_needs_no_api_token_and_is_not_cached(anon_client):
    response = fire(anon_client, ClickFactory())

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]


def test_post_to_pixel_is_not_allowed(anon_client):
    assert anon_client.post(URL, {}, format="json").status_code == 405
