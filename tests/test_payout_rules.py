"""Payout rules: an offer's payout per conversion type, given to conversions that arrive without
one (API, bulk, pixel); their own payout always wins. Edited on the offer's admin page and over
the API."""

import logging
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversions.models import Conversion, ExchangeRate, PayoutRule
from tests.factories import ClickFactory, OfferFactory, conversion_type

pytestmark = pytest.mark.django_db

RULES_URL = "/api/v1/payout-rules/"


def rule(offer, kind="fixed", amount="7.5", currency="USD", code="sale", **fields):
    return PayoutRule.objects.create(
        offer=offer,
        conversion_type=conversion_type(code),
        kind=kind,
        amount=Decimal(amount),
        currency=currency if kind == "fixed" else "",
        **fields,
    )


def post_conversion(api_client, click, **fields):
    body = {"cid": click.cid, "conversion_type": "sale", "currency": "USD", **fields}
    response = api_client.post("/api/v1/conversions/", body, format="json")
    assert response.status_code == 201, response.content
    return Conversion.objects.get(pk=response.json()["id"])


# --- applying a rule ---------------------------------------------------------------------------


def test_api_conversion_without_payout_gets_the_fixed_rule_payout(api_client):
    click = ClickFactory()
    rule(click.offer, amount="7.5")

    conversion = post_conversion(api_client, click)

    assert conversion.payout == Decimal("7.5")


def test_the_answer_of_the_create_call_shows_the_rule_payout(api_client):
    click = ClickFactory()
    rule(click.offer, amount="7.5")

    body = {"cid": click.cid, "conversion_type": "sale", "currency": "USD"}
    response = api_client.post("/api/v1/conversions/", body, format="json")

    assert Decimal(response.json()["payout"]) == Decimal("7.5")


@pytest.mark.parametrize("own", ["3.20", "0"])
def test_a_conversions_own_payout_wins_over_the_rule(api_client, own):
    click = ClickFactory()
    rule(click.offer, amount="7.5")

    conversion = post_conversion(api_client, click, payout=own)

    assert conversion.payout == Decimal(own)


def test_a_rule_applies_only_to_its_offer_and_conversion_type(api_client):
    click = ClickFactory()
    rule(click.offer, code="lead", amount="1")
    rule(OfferFactory(), code="sale", amount="2")

    conversion = post_conversion(api_client, click)

    assert conversion.payout is None


def test_an_inactive_rule_is_not_applied(api_client):
    click = ClickFactory()
    rule(click.offer, active=False)

    assert post_conversion(api_client, click).payout is None


def test_bulk_items_without_payout_get_the_rule_and_the_others_keep_theirs(api_client):
    click = ClickFactory()
    rule(click.offer, kind="percent", amount="10")
    rule(click.offer, code="lead", amount="2", currency="USD")
    items = [
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": "a", "sale_amount": "50"},
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": "b", "payout": "1.25"},
        {"cid": click.cid, "conversion_type": "lead", "transaction_id": "c"},
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": "d"},  # no sale amount
    ]

    response = api_client.post("/api/v1/conversions/bulk/", {"conversions": items}, format="json")

    assert response.json()["created"] == 4
    payouts = dict(Conversion.objects.values_list("transaction_id", "payout"))
    assert payouts == {"a": Decimal("5"), "b": Decimal("1.25"), "c": Decimal("2"), "d": None}


def test_pixel_conversion_without_payout_gets_the_percent_of_its_amount(anon_client):
    click = ClickFactory()
    rule(click.offer, kind="percent", amount="12.5")

    response = anon_client.get(
        "/tracking/conversion/v1",
        {
            "cid": click.cid,
            "token": click.offer.pixel_secret,
            "conversionTypeCode": "sale",
            "amount.value": "80.00",
        },
    )

    assert response.status_code == 201, response.content
    assert Conversion.objects.get().payout == Decimal("10.00")


def test_pixel_payout_value_wins_over_the_rule(anon_client):
    click = ClickFactory()
    rule(click.offer, amount="7.5")

    anon_client.get(
        "/tracking/conversion/v1",
        {
            "cid": click.cid,
            "token": click.offer.pixel_secret,
            "conversionTypeCode": "sale",
            "payout.value": "4.10",
        },
    )

    assert Conversion.objects.get().payout == Decimal("4.10")


@pytest.mark.parametrize(
    "sale_amount, currency, payout",
    [
        ("99.99", "USD", "12.50"),  # 12.49875, half up to the cent
        ("0.04", "USD", "0.01"),  # 0.005 rounds up, not to even
        ("1999", "JPY", "250"),  # no minor unit: 249.875 → 250
        ("9.999", "KWD", "1.250"),  # three decimals: 1.249875 → 1.250
    ],
)
def test_percent_payout_is_rounded_half_up_to_the_currencys_minor_unit(
    api_client, sale_amount, currency, payout
):
    click = ClickFactory()
    rule(click.offer, kind="percent", amount="12.5")

    conversion = post_conversion(api_client, click, sale_amount=sale_amount, currency=currency)

    assert conversion.payout == Decimal(payout)
    assert str(conversion.payout.normalize()) == str(Decimal(payout).normalize())


def test_percent_rule_without_a_sale_amount_leaves_the_payout_empty_and_logs_why(
    api_client, caplog
):
    click = ClickFactory()
    rule(click.offer, kind="percent", amount="10")

    with caplog.at_level(logging.INFO, logger="conversions.services"):
        conversion = post_conversion(api_client, click, transaction_id="order-9")

    assert conversion.payout is None
    assert "no sale amount" in caplog.text and "order-9" in caplog.text


def test_fixed_rule_in_another_currency_is_converted_with_the_stored_rate(api_client):
    click = ClickFactory()
    rule(click.offer, amount="10", currency="EUR")
    ExchangeRate.objects.create(base="EUR", quote="USD", rate="1.0837", valid_on=date(2020, 1, 1))

    conversion = post_conversion(api_client, click, currency="USD")

    assert conversion.payout == Decimal("10.84")  # 10.837, rounded half up to the cent


def test_fixed_rule_without_a_rate_leaves_the_payout_empty_and_logs_why(api_client, caplog):
    click = ClickFactory()
    rule(click.offer, amount="10", currency="EUR")

    with caplog.at_level(logging.WARNING, logger="conversions.services"):
        conversion = post_conversion(api_client, click, currency="USD", transaction_id="o-7")

    assert conversion.payout is None
    assert "No exchange rate from EUR to USD" in caplog.text and "o-7" in caplog.text


def test_fixed_rule_in_the_conversions_currency_keeps_its_sub_cent_amount(api_client):
    click = ClickFactory()
    rule(click.offer, amount="0.125", currency="USD")

    assert post_conversion(api_client, click).payout == Decimal("0.125")


def test_a_payout_too_large_to_store_is_left_empty_and_the_conversion_still_stored(
    api_client, caplog
):
    click = ClickFactory()
    rule(click.offer, amount="999999999999", currency="EUR")
    ExchangeRate.objects.create(base="EUR", quote="USD", rate="10", valid_on=date(2020, 1, 1))

    with caplog.at_level(logging.WARNING, logger="conversions.services"):
        conversion = post_conversion(api_client, click, currency="USD")

    assert conversion.payout is None
    assert "not a storable payout" in caplog.text


# --- the offer's admin page --------------------------------------------------------------------


def offer_form(offer, **rules) -> dict:
    data = {
        "name": offer.name,
        "landing_page_url": offer.landing_page_url,
        "default_currency": offer.default_currency,
        "active": "on",
        "payout_rules-TOTAL_FORMS": "1",
        "payout_rules-INITIAL_FORMS": "0",
        "payout_rules-MIN_NUM_FORMS": "0",
        "payout_rules-MAX_NUM_FORMS": "1000",
        "payout_rules-0-conversion_type": conversion_type("sale").pk,
        "payout_rules-0-active": "on",
        "_save": "Save",
    }
    data.update({f"payout_rules-0-{name}": value for name, value in rules.items()})
    return data


def test_a_manager_adds_a_payout_rule_on_the_offers_admin_page(manager_client):
    offer = OfferFactory()
    url = reverse("admin:affiliates_offer_change", args=[offer.pk])

    data = offer_form(offer, kind="fixed", amount="4.5", currency="EUR")
    response = manager_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    saved = PayoutRule.objects.get()
    assert (saved.offer, saved.kind, saved.amount, saved.currency) == (
        offer,
        "fixed",
        Decimal("4.5"),
        "EUR",
    )


def test_the_offers_admin_page_refuses_a_fixed_rule_without_currency(manager_client):
    offer = OfferFactory()
    url = reverse("admin:affiliates_offer_change", args=[offer.pk])

    response = manager_client.post(url, offer_form(offer, kind="fixed", amount="4.5"))

    assert response.status_code == 200
    assert "A fixed payout needs its currency." in response.text
    assert not PayoutRule.objects.exists()


def test_the_offers_admin_page_lists_its_rules(manager_client):
    offer = OfferFactory()
    rule(offer, kind="percent", amount="12.5")

    page = manager_client.get(reverse("admin:affiliates_offer_change", args=[offer.pk]))

    assert "payout rules" in page.text.lower() and "12.5" in page.text


def test_the_offers_admin_page_reads_the_conversion_types_once_however_many_rules(
    manager_client,
):
    offer = OfferFactory()
    url = reverse("admin:affiliates_offer_change", args=[offer.pk])
    rule(offer, code="sale")
    manager_client.get(url)  # warm: session, permissions, content types

    def queries() -> int:
        with CaptureQueriesContext(connection) as page:
            assert manager_client.get(url).status_code == 200
        return len(page.captured_queries)

    one_rule = queries()
    for code in ("lead", "deposit", "registration", "upsell"):
        rule(offer, code=code)

    assert queries() == one_rule


# --- the API -----------------------------------------------------------------------------------


def test_api_creates_lists_filters_changes_and_deletes_a_rule(api_client):
    offer, other = OfferFactory(), OfferFactory()
    rule(other)

    created = api_client.post(
        RULES_URL,
        {"offer": offer.pk, "conversion_type": "sale", "kind": "percent", "amount": "12.5"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["conversion_type"], body["kind"], Decimal(body["amount"]), body["currency"]) == (
        "sale",
        "percent",
        Decimal("12.5"),
        "",
    )
    url = f"{RULES_URL}{body['id']}/"

    listed = api_client.get(RULES_URL, {"offer": offer.pk, "conversion_type": "sale"}).json()
    assert [r["id"] for r in listed["results"]] == [body["id"]]

    changed = api_client.patch(url, {"amount": "15", "active": False}, format="json")
    assert changed.status_code == 200, changed.content
    assert PayoutRule.objects.get(pk=body["id"]).amount == Decimal("15")
    assert api_client.get(RULES_URL, {"active": "false"}).json()["count"] == 1

    assert api_client.delete(url).status_code == 204
    assert PayoutRule.objects.count() == 1


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"kind": "fixed", "amount": "5"}, "currency", "A fixed payout needs its currency."),
        ({"kind": "percent", "amount": "5", "currency": "USD"}, "currency", "leave this blank"),
        ({"kind": "percent", "amount": "100.01"}, "amount", "at most 100"),
        ({"kind": "fixed", "amount": "-1", "currency": "USD"}, "amount", "greater than or equal"),
        ({"kind": "fixed", "amount": "5", "currency": "usx"}, "currency", "ISO 4217"),
        ({"kind": "bonus", "amount": "5"}, "kind", "not a valid choice"),
        ({"kind": "fixed", "amount": "1234567890123.5", "currency": "USD"}, "amount", "digits"),
        ({"kind": "fixed", "amount": "5", "currency": "USD", "payot": 1}, "payot", "Unknown"),
    ],
)
def test_api_refuses_an_invalid_rule_with_the_field_and_why(api_client, fields, field, message):
    offer = OfferFactory()

    response = api_client.post(
        RULES_URL, {"offer": offer.pk, "conversion_type": "sale", **fields}, format="json"
    )

    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert not PayoutRule.objects.exists()


def test_api_refuses_a_second_rule_for_the_same_offer_and_type(api_client):
    existing = rule(OfferFactory())

    response = api_client.post(
        RULES_URL,
        {
            "offer": existing.offer_id,
            "conversion_type": "sale",
            "kind": "fixed",
            "amount": "1",
            "currency": "USD",
        },
        format="json",
    )

    assert response.status_code == 400
    assert f"(id {existing.pk})" in response.json()["conversion_type"][0]


def test_api_patch_is_checked_against_the_stored_rule(api_client):
    stored = rule(OfferFactory(), kind="fixed", currency="USD")

    response = api_client.patch(f"{RULES_URL}{stored.pk}/", {"kind": "percent"}, format="json")

    assert response.status_code == 400
    assert "leave this blank" in response.json()["currency"][0]


def test_manager_may_add_a_rule_over_the_api_and_support_may_only_read(
    manager_client, support_client
):
    offer = OfferFactory()
    body = {
        "offer": offer.pk,
        "conversion_type": "sale",
        "kind": "fixed",
        "amount": "2",
        "currency": "USD",
    }

    added = manager_client.post(RULES_URL, body, content_type="application/json")
    refused = support_client.post(RULES_URL, body, content_type="application/json")

    assert added.status_code == 201, added.content
    assert refused.status_code == 403
    assert support_client.get(RULES_URL).json()["count"] == 1


@pytest.mark.django_db
def test_a_rule_created_meanwhile_by_another_client_is_a_400_not_a_500():
    """Both passed validation; the second loses at the unique constraint."""
    from rest_framework.exceptions import ValidationError

    from conversions.serializers import PayoutRuleSerializer

    offer, sale = OfferFactory(), conversion_type("sale")
    data = {"offer": offer.pk, "conversion_type": "sale", "kind": "fixed", "amount": "5.00"}
    data["currency"] = "USD"
    late = PayoutRuleSerializer(data=data)
    assert late.is_valid(), late.errors
    first = PayoutRule.objects.create(
        offer=offer, conversion_type=sale, kind="fixed", amount=Decimal("4"), currency="USD"
    )

    with pytest.raises(ValidationError) as refused:  # the API answers it with a 400
        late.save()

    assert f"(id {first.pk})" in str(refused.value.detail["conversion_type"])
    assert PayoutRule.objects.count() == 1
