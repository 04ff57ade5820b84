"""No value can poison a row: amounts and rates are refused beyond what both databases store
exactly, stored exactly within it, and a row stored before the limits breaks nothing."""

import io
from concurrent.futures import Future
from datetime import date
from decimal import Decimal

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import RequestFactory

from conversions.models import Conversion, ExchangeRate
from postbacks.delivery import batch
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from postbacks.rendering import RenderError, render_request
from postbacks.transport.policy import HttpResult
from tests.factories import ClickFactory, ConversionFactory, PostbackFactory, conversion_type

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversions/"
RATES_URL = "/api/v1/exchange-rates/"
# 18 digits fit the column numeric(18, 6), but SQLite keeps 15: it stored 1000000000000.
TOO_MANY_DIGITS = ["999999999999.999999", "1234567890.123456"]
LARGEST = "999999999999.999"  # 15 significant digits, 12 before the point
FULL_SCALE = "123456789.123456"  # 15 significant digits, 6 after the point
DIGITS_MESSAGE = "no more than 15 significant digits"
on_sqlite = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="PostgreSQL stores numeric exactly and refuses values beyond the column",
)


def new_conversion(client, **amounts):
    click = ClickFactory()
    conversion_type("sale")
    data = {"cid": click.cid, "conversion_type": "sale", **amounts}
    return client.post(URL, data, format="json")


# --- refused on every path, with the field named ---------------------------------------------


@pytest.mark.parametrize("value", TOO_MANY_DIGITS)
def test_api_refuses_an_amount_that_would_not_be_stored_exactly(api_client, value):
    response = new_conversion(api_client, payout=value)
    assert response.status_code == 400
    assert DIGITS_MESSAGE in response.json()["payout"][0]
    assert not Conversion.objects.exists()


def test_api_refuses_it_as_a_json_number_too(api_client):
    click = ClickFactory()
    conversion_type("sale")
    body = f'{{"cid": "{click.cid}", "conversion_type": "sale", "sale_amount": 1234567890.123456}}'
    response = api_client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert DIGITS_MESSAGE in response.json()["sale_amount"][0]


def test_bulk_reports_the_item_and_stores_the_others(api_client):
    click = ClickFactory()
    conversion_type("sale")
    item = {"cid": click.cid, "conversion_type": "sale"}
    items = [
        {**item, "transaction_id": "bad", "revenue": "999999999999.999999"},
        {**item, "transaction_id": "good", "revenue": "10.5"},
    ]
    response = api_client.post(f"{URL}bulk/", {"conversions": items}, format="json")
    assert response.status_code == 200
    bad, good = response.json()["results"]
    assert bad["result"] == "error" and DIGITS_MESSAGE in bad["errors"]["revenue"][0]
    assert good["result"] == "created"
    assert list(Conversion.objects.values_list("transaction_id", flat=True)) == ["good"]


def test_changing_amounts_refuses_them_and_keeps_the_stored_ones(api_client):
    conversion = ConversionFactory(payout=Decimal("12.5"))
    response = api_client.patch(
        f"{URL}{conversion.pk}/", {"payout": "999999999999.999999"}, format="json"
    )
    assert response.status_code == 400
    assert DIGITS_MESSAGE in response.json()["payout"][0]
    conversion.refresh_from_db()
    assert conversion.payout == Decimal("12.5")


def test_pixel_refuses_it_under_the_parameter_name(client):
    click = ClickFactory()
    conversion_type("sale")
    response = client.get(
        "/tracking/conversion/v1",
        {
            "cid": click.cid,
            "token": click.offer.pixel_secret,
            "conversionTypeCode": "sale",
            "payout.value": "999999999999.999999",
        },
    )
    assert response.status_code == 400
    assert DIGITS_MESSAGE in response.json()["payout.value"][0]
    assert not Conversion.objects.exists()


def _admin_form(model, data):
    request = RequestFactory().get("/")
    request.user = type("Superuser", (), {"is_superuser": True, "has_perm": lambda *a: True})()
    return admin.site._registry[model].get_form(request)(data=data)


def test_admin_conversion_form_refuses_it():
    click = ClickFactory()
    form = _admin_form(
        Conversion,
        {
            "affiliate": click.affiliate.pk,
            "offer": click.offer.pk,
            "conversion_type": conversion_type("sale").pk,
            "transaction_id": "t-1",
            "status": "pending",
            "currency": "USD",
            "payout": "1234567890.123456",
        },
    )
    assert not form.is_valid()
    assert DIGITS_MESSAGE in form.errors["payout"][0]


def test_admin_walkthrough_refuses_it(admin_client):
    postback = PostbackFactory(conversion_types=[conversion_type("sale")], statuses=["approved"])
    click = ClickFactory(affiliate=postback.affiliate)
    url = f"/admin/postbacks/postback/{postback.pk}/walkthrough/"
    step = {"action": "conversion", "click": click.pk, "status": "approved"}
    step.update(conversion_type=conversion_type("sale").pk, payout="999999999999.999999")
    response = admin_client.post(url, step, follow=True)
    assert DIGITS_MESSAGE in response.text
    assert not Conversion.objects.exists()


@pytest.mark.parametrize("rate", ["99999999999999.9999999999", "1234567.123456789"])
def test_rates_api_and_admin_refuse_a_rate_that_would_not_be_stored_exactly(api_client, rate):
    data = {"base": "EUR", "quote": "USD", "rate": rate, "valid_on": "2026-11-24"}
    response = api_client.post(RATES_URL, data, format="json")
    assert response.status_code == 400
    assert DIGITS_MESSAGE in response.json()["rate"][0]
    form = _admin_form(ExchangeRate, data)
    assert not form.is_valid()
    assert DIGITS_MESSAGE in form.errors["rate"][0]
    assert not ExchangeRate.objects.exists()


def test_rate_import_refuses_a_rate_that_would_not_be_stored_exactly(tmp_path):
    path = tmp_path / "eurofxref.csv"
    path.write_text("Date, USD, JPY\n24 November 2026, 1.1642, 1234567.123456789\n")
    with pytest.raises(CommandError, match=rf"Line 2: '1234567.123456789': .*{DIGITS_MESSAGE}"):
        call_command("import_ecb_rates", str(path), stdout=io.StringIO())
    assert not ExchangeRate.objects.exists()


# --- stored exactly on both databases --------------------------------------------------------


def test_largest_amount_and_full_scale_round_trip_exactly(api_client):
    response = new_conversion(api_client, payout=LARGEST, revenue=FULL_SCALE, sale_amount="1E-6")
    assert response.status_code == 201
    stored = Conversion.objects.get()
    assert (stored.payout, stored.revenue, stored.sale_amount) == (
        Decimal(LARGEST),
        Decimal(FULL_SCALE),
        Decimal("0.000001"),
    )
    shown = api_client.get(f"{URL}{stored.pk}/").json()
    assert (shown["payout"], shown["revenue"], shown["sale_amount"]) == (
        "999999999999.999000",
        "123456789.123456",
        "0.000001",
    )


@pytest.mark.parametrize(
    "rate", ["99999999999999", "99999.9999999999", "0.0000000001", "12345678.1234567"]
)
def test_largest_rate_and_full_scale_round_trip_exactly(api_client, rate):
    data = {"base": "EUR", "quote": "USD", "rate": rate, "valid_on": "2026-11-24"}
    assert api_client.post(RATES_URL, data, format="json").status_code == 201
    assert ExchangeRate.objects.get().rate == Decimal(rate)


# --- amounts too large to convert ------------------------------------------------------------


def _extreme_rates():
    for quote, rate in (("GBP", "99999999999999"), ("USD", "0.0000000001")):
        ExchangeRate.objects.create(
            base="EUR", quote=quote, rate=Decimal(rate), valid_on=date(2026, 1, 1)
        )


def test_an_amount_too_large_to_convert_is_a_render_error():
    _extreme_rates()
    conversion = ConversionFactory(payout=Decimal(LARGEST), currency="USD")
    postback = PostbackFactory(affiliate=conversion.affiliate, currency="GBP")
    with pytest.raises(RenderError, match="too large to convert to GBP"):
        render_request(postback, conversion, status="pending")


class FakeSender:
    def __init__(self):
        self.urls = []

    def submit(self, method, url, headers, body=""):
        self.urls.append(url)
        future = Future()
        future.set_result(HttpResult(status=200, body="ok"))
        return future

    def close(self):
        pass


def _deliveries(conversion, healthy_conversion, postback):
    return [
        Delivery.objects.create(postback=postback, conversion=c, status="pending")
        for c in (conversion, healthy_conversion)
    ]


def test_a_delivery_that_cannot_convert_fails_with_its_reason_and_the_batch_carries_on():
    _extreme_rates()
    huge = ConversionFactory(payout=Decimal(LARGEST), currency="USD")
    fine = ConversionFactory(click__affiliate=huge.affiliate, payout=Decimal("1"), currency="GBP")
    postback = PostbackFactory(affiliate=huge.affiliate, currency="GBP")
    failed, sent = _deliveries(huge, fine, postback)
    sender = FakeSender()
    batch.drain(sender=sender)
    assert len(sender.urls) == 1 and "payout=1.00" in sender.urls[0]
    failed.refresh_from_db()
    sent.refresh_from_db()
    assert sent.state == DeliveryState.SUCCESS
    assert failed.state == DeliveryState.FAILED
    assert "too large to convert" in failed.last_error
    assert DeliveryAttempt.objects.count() == 2


# --- a row stored before the limits ----------------------------------------------------------


def _poison(conversion):
    """What the API stored for 999999999999.999999 before the limits: SQLite kept 1E+12."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversions_conversion SET payout = %s WHERE id = %s",
            ["999999999999.999999", conversion.pk.hex],
        )


@on_sqlite
def test_a_row_stored_before_the_limits_reads_as_stored(api_client, admin_client):
    conversion = ConversionFactory()
    _poison(conversion)
    conversion.refresh_from_db()
    assert conversion.payout == Decimal("1000000000000")
    assert api_client.get(URL).json()["results"][0]["payout"] == "1000000000000.000000"
    assert api_client.get(f"{URL}{conversion.pk}/").status_code == 200
    assert admin_client.get("/admin/conversions/conversion/").status_code == 200
    page = admin_client.get(f"/admin/conversions/conversion/{conversion.pk}/change/")
    assert page.status_code == 200


@on_sqlite
def test_a_rate_stored_before_the_limits_reads_as_stored(api_client, admin_client):
    rate = ExchangeRate.objects.create(
        base="EUR", quote="USD", rate=Decimal("1"), valid_on=date(2026, 1, 1)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversions_exchangerate SET rate = %s", ["99999999999999.9999999999"]
        )
    rate.refresh_from_db()
    assert rate.rate == Decimal("100000000000000")
    assert api_client.get(RATES_URL).status_code == 200
    assert admin_client.get("/admin/conversions/exchangerate/").status_code == 200


@on_sqlite
def test_a_row_stored_before_the_limits_fails_its_delivery_and_the_batch_carries_on():
    poisoned = ConversionFactory()
    healthy = ConversionFactory(click__affiliate=poisoned.affiliate)
    _poison(poisoned)
    postback = PostbackFactory(affiliate=poisoned.affiliate)
    failed, sent = _deliveries(poisoned, healthy, postback)
    sender = FakeSender()
    batch.drain(sender=sender)
    assert len(sender.urls) == 1 and "payout=12.50" in sender.urls[0]
    failed.refresh_from_db()
    sent.refresh_from_db()
    assert sent.state == DeliveryState.SUCCESS
    assert failed.state == DeliveryState.FAILED
    assert "payout 1000000000000.000000 is not a valid amount" in failed.last_error
