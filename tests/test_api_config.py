"""The configuration API: affiliates, offers, postbacks, the delivery log and exchange rates."""

from datetime import timedelta

import pytest
from django.utils import timezone

from affiliates.models import Affiliate, Offer
from conversions.models import ExchangeRate
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState, Postback, TrackingSettings
from tests.factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
)

pytestmark = pytest.mark.django_db

POSTBACK_URL = "https://tracker.example.com/pb?clickid={affS1}&payout={payout}"


def postback_payload(affiliate, **overrides):
    payload = {
        "name": "Tracker",
        "affiliate": affiliate.pk,
        "conversion_types": ["sale"],
        "statuses": ["approved"],
        "url": POSTBACK_URL,
    }
    return {**payload, **overrides}


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/affiliates/",
        "/api/v1/offers/",
        "/api/v1/postbacks/",
        "/api/v1/deliveries/",
        "/api/v1/exchange-rates/",
    ],
)
def test_endpoints_answer_401_without_token(anon_client, url):
    assert anon_client.get(url).status_code == 401


# --- affiliates and offers --------------------------------------------------------------------


def test_affiliate_crud(api_client):
    created = api_client.post(
        "/api/v1/affiliates/",
        {"name": "Ada Media", "email": "ops@ada.example", "click_id_token": "{aff_sub}"},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "name", "email", "active", "click_id_token", "created"}
    assert body["active"] is True
    url = f"/api/v1/affiliates/{body['id']}/"

    assert api_client.get(url).json()["click_id_token"] == "{aff_sub}"
    assert api_client.patch(url, {"active": False}, format="json").json()["active"] is False
    replaced = api_client.put(url, {"name": "Ada Media Ltd"}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "Ada Media Ltd"
    assert api_client.get("/api/v1/affiliates/").json()["count"] == 1

    assert api_client.delete(url).status_code == 204
    assert not Affiliate.objects.exists()


def test_offer_crud_upper_cases_currency_and_keeps_pixel_secret_read_only(api_client):
    created = api_client.post(
        "/api/v1/offers/",
        {
            "name": "Shoes",
            "landing_page_url": "https://shop.example.com/shoes",
            "default_currency": "eur",
            "pixel_secret": "chosen-by-client",
        },
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["default_currency"] == "EUR"
    assert body["pixel_secret"] and body["pixel_secret"] != "chosen-by-client"
    url = f"/api/v1/offers/{body['id']}/"

    updated = api_client.patch(url, {"default_currency": "gbp"}, format="json")
    assert updated.json()["default_currency"] == "GBP"
    assert Offer.objects.get().default_currency == "GBP"
    assert api_client.delete(url).status_code == 204


def test_offer_defaults_to_usd(api_client):
    response = api_client.post(
        "/api/v1/offers/",
        {"name": "Shoes", "landing_page_url": "https://shop.example.com/"},
        format="json",
    )
    assert response.json()["default_currency"] == "USD"


@pytest.mark.parametrize("code", ["XXX", "US", "dollars", ""])
def test_offer_rejects_unknown_currency(api_client, code):
    response = api_client.post(
        "/api/v1/offers/",
        {
            "name": "Shoes",
            "landing_page_url": "https://shop.example.com/",
            "default_currency": code,
        },
        format="json",
    )
    assert response.status_code == 400
    assert "default_currency" in response.json()


def test_offer_rejects_bad_landing_page_url(api_client):
    response = api_client.post(
        "/api/v1/offers/", {"name": "Shoes", "landing_page_url": "not a url"}, format="json"
    )
    assert response.status_code == 400
    assert "landing_page_url" in response.json()


def test_deleting_affiliate_with_conversions_answers_409(api_client):
    conversion = ConversionFactory()
    response = api_client.delete(f"/api/v1/affiliates/{conversion.affiliate_id}/")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "clicks" in detail and "conversions" in detail and '"active": false' in detail
    assert Affiliate.objects.filter(pk=conversion.affiliate_id).exists()


def test_deleting_affiliate_with_postbacks_answers_409(api_client):
    postback = PostbackFactory()
    response = api_client.delete(f"/api/v1/affiliates/{postback.affiliate_id}/")
    assert response.status_code == 409
    assert "postbacks" in response.json()["detail"]


def test_deleting_offer_with_clicks_answers_409(api_client):
    click = ClickFactory()
    response = api_client.delete(f"/api/v1/offers/{click.offer_id}/")
    assert response.status_code == 409
    assert "clicks" in response.json()["detail"]


def test_deleting_offer_listed_in_a_postback_answers_409(api_client):
    offer = OfferFactory()
    PostbackFactory(scope="offers", offers=[offer])
    response = api_client.delete(f"/api/v1/offers/{offer.pk}/")
    assert response.status_code == 409
    assert "postbacks" in response.json()["detail"]
    assert Offer.objects.filter(pk=offer.pk).exists()


# --- postbacks --------------------------------------------------------------------------------


def test_postback_round_trips_every_field(api_client):
    affiliate = AffiliateFactory()
    excluded = OfferFactory()
    payload = {
        "name": "Tracker",
        "affiliate": affiliate.pk,
        "scope": "global",
        "offers": [excluded.pk],
        "conversion_types": ["lead", "sale"],
        "statuses": ["approved", "rejected"],
        "currency": "EUR",
        "method": "POST",
        "url": "https://tracker.example.com/pb",
        "body_format": "json",
        "body_template": '{"click": "{affS1}", "payout": "{payout}"}',
        "status_map": {"approved": "1", "rejected": "2"},
        "headers": [{"name": "X-Api-Key", "value": "k-{affS1}"}],
        "active": True,
    }
    created = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert list(body) == [
        "id",
        "name",
        "affiliate",
        "scope",
        "offers",
        "conversion_types",
        "statuses",
        "currency",
        "method",
        "url",
        "body_format",
        "body_template",
        "status_map",
        "headers",
        "active",
        "created",
        "updated",
        "warnings",
    ]
    fetched = api_client.get(f"/api/v1/postbacks/{body['id']}/").json()
    for name, value in payload.items():
        if name == "conversion_types":
            assert sorted(fetched[name]) == sorted(value)
        else:
            assert fetched[name] == value, name


def test_postback_defaults_to_global_scope_get_and_conversion_currency(api_client):
    body = api_client.post(
        "/api/v1/postbacks/", postback_payload(AffiliateFactory()), format="json"
    ).json()
    assert body["scope"] == "global"
    assert body["offers"] == []
    assert body["method"] == "GET"
    assert body["currency"] is None
    assert body["active"] is True


def test_postback_currency_null_is_stored_blank_and_read_back_as_null(api_client):
    postback = PostbackFactory(currency="EUR")
    url = f"/api/v1/postbacks/{postback.pk}/"

    response = api_client.patch(url, {"currency": None}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["currency"] is None
    postback.refresh_from_db()
    assert postback.currency == ""

    assert api_client.patch(url, {"currency": "gbp"}, format="json").json()["currency"] == "GBP"
    assert api_client.patch(url, {"currency": ""}, format="json").json()["currency"] is None


def test_postback_rejects_unknown_currency(api_client):
    response = api_client.post(
        "/api/v1/postbacks/", postback_payload(AffiliateFactory(), currency="ZZZ"), format="json"
    )
    assert response.status_code == 400
    assert "currency" in response.json()


def test_postback_status_aliases_are_normalized(api_client):
    payload = postback_payload(
        AffiliateFactory(),
        statuses=["CONVERSION_STATUS_APPROVED", "declined", "On_Hold", "approved"],
        status_map={"CONVERSION_STATUS_APPROVED": "1", "declined": "2"},
    )
    response = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["statuses"] == ["approved", "rejected", "on_hold"]
    postback = Postback.objects.get()
    assert postback.statuses == ["approved", "rejected", "on_hold"]
    assert postback.status_map == {"approved": "1", "rejected": "2"}


@pytest.mark.parametrize("statuses", [[], ["paid"], "approved"])
def test_postback_rejects_empty_or_unknown_statuses(api_client, statuses):
    payload = postback_payload(AffiliateFactory(), statuses=statuses)
    response = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert response.status_code == 400
    assert "statuses" in response.json()


@pytest.mark.parametrize("bad", ["paid", "CONVERSION_STATUS_PAID", "", 7])
def test_postback_and_conversion_apis_give_the_same_error_for_a_bad_status(api_client, bad):
    conversion = api_client.post(
        "/api/v1/conversions/",
        {"cid": ClickFactory().cid, "conversion_type": "sale", "status": bad},
        format="json",
    )
    postback = api_client.post(
        "/api/v1/postbacks/", postback_payload(AffiliateFactory(), statuses=[bad]), format="json"
    )

    assert (conversion.status_code, postback.status_code) == (400, 400)
    assert postback.json()["statuses"] == {"0": conversion.json()["status"]}


def test_postback_rejects_unknown_status_in_status_map(api_client):
    payload = postback_payload(AffiliateFactory(), status_map={"paid": "1"})
    response = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert response.status_code == 400
    assert "status_map" in response.json()


@pytest.mark.parametrize("conversion_types", [[], ["no-such-type"]])
def test_postback_rejects_empty_or_unknown_conversion_types(api_client, conversion_types):
    payload = postback_payload(AffiliateFactory(), conversion_types=conversion_types)
    response = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert response.status_code == 400
    assert "conversion_types" in response.json()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://tracker.example.com/pb?c={affS1}"}, "url"),
        ({"url": "https://tracker.example.com/pb?c={unknownName}"}, "url"),
        ({"scope": "offers", "offers": []}, "offers"),
        ({"method": "GET", "body_template": "click={affS1}"}, "body_template"),
        (
            {"method": "POST", "body_format": "json", "body_template": '{"click": {affS1}'},
            "body_template",
        ),
    ],
)
def test_invalid_postback_answers_400_with_field_error(api_client, overrides, field):
    payload = postback_payload(AffiliateFactory(), **overrides)
    response = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Postback.objects.exists()


def test_revenue_placeholder_needs_the_tracking_setting(api_client):
    affiliate = AffiliateFactory()
    payload = postback_payload(affiliate, url="https://tracker.example.com/pb?rev={revenue}")

    refused = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert refused.status_code == 400
    assert "url" in refused.json()

    TrackingSettings.objects.update_or_create(pk=1, defaults={"allow_revenue_parameters": True})
    assert api_client.post("/api/v1/postbacks/", payload, format="json").status_code == 201


def test_partial_update_is_validated_against_the_stored_values(api_client):
    postback = PostbackFactory(method="GET")
    url = f"/api/v1/postbacks/{postback.pk}/"

    # Offer scope needs offers; the stored postback has none.
    response = api_client.patch(url, {"scope": "offers"}, format="json")
    assert response.status_code == 400
    assert "offers" in response.json()

    offer = OfferFactory()
    response = api_client.patch(url, {"scope": "offers", "offers": [offer.pk]}, format="json")
    assert response.status_code == 200
    assert response.json()["offers"] == [offer.pk]
    # Changing only the name keeps the stored offers and passes.
    assert api_client.patch(url, {"name": "Renamed"}, format="json").status_code == 200
    assert list(Postback.objects.get().offers.all()) == [offer]


def test_postback_list_filters_by_affiliate_and_active(api_client):
    mine = PostbackFactory()
    PostbackFactory(affiliate=mine.affiliate, active=False)
    PostbackFactory()

    by_affiliate = api_client.get("/api/v1/postbacks/", {"affiliate": mine.affiliate_id}).json()
    assert by_affiliate["count"] == 2
    both = api_client.get(
        "/api/v1/postbacks/", {"affiliate": mine.affiliate_id, "active": "true"}
    ).json()
    assert [row["id"] for row in both["results"]] == [mine.pk]


def test_postback_list_query_count_does_not_grow_with_rows(
    api_client, django_assert_max_num_queries
):
    offers = OfferFactory.create_batch(2)
    for _ in range(5):
        PostbackFactory(offers=offers)
    # token + the user's and its groups' permissions + count + postbacks + offers + types
    with django_assert_max_num_queries(7):
        response = api_client.get("/api/v1/postbacks/")
    assert all(len(row["offers"]) == 2 for row in response.json()["results"])


def test_deleting_postback_without_deliveries_works(api_client):
    postback = PostbackFactory()
    assert api_client.delete(f"/api/v1/postbacks/{postback.pk}/").status_code == 204
    assert not Postback.objects.exists()


def test_deleting_postback_with_deliveries_answers_409_suggesting_deactivation(api_client):
    postback = PostbackFactory()
    Delivery.objects.create(postback=postback, conversion=ConversionFactory(), status="approved")
    response = api_client.delete(f"/api/v1/postbacks/{postback.pk}/")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "postback log" in detail and "Deactivate" in detail
    assert Postback.objects.filter(pk=postback.pk).exists()


# --- deliveries -------------------------------------------------------------------------------


def make_delivery(postback=None, *, attempts=0, **fields):
    delivery = Delivery.objects.create(
        postback=postback or PostbackFactory(),
        conversion=fields.pop("conversion", None) or ConversionFactory(),
        status=fields.pop("status", "approved"),
        attempts=attempts,
        **fields,
    )
    start = timezone.now() - timedelta(hours=1)
    for number in range(1, attempts + 1):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=start + timedelta(minutes=number),
            method="GET",
            url=f"https://tracker.example.com/pb?try={number}",
            response_status=500 if number < attempts else 200,
            response_body="x" * 100,
            duration_ms=40 + number,
        )
    return delivery


def test_delivery_shows_its_attempts_newest_first(api_client):
    delivery = make_delivery(
        attempts=2, state=DeliveryState.SUCCESS, last_status_code=200, last_duration_ms=42
    )
    body = api_client.get(f"/api/v1/deliveries/{delivery.pk}/").json()
    assert body["delivery_id"] == str(delivery.uid)
    assert body["postback"] == delivery.postback_id
    assert body["conversion"] == str(delivery.conversion_id)
    assert body["status"] == "approved"
    assert body["state"] == "success"
    assert body["attempts"] == 2
    assert body["last_status_code"] == 200
    assert body["last_duration_ms"] == 42
    for name in ("next_attempt_at", "last_error", "created", "finished_at"):
        assert name in body
    assert [attempt["number"] for attempt in body["attempt_log"]] == [2, 1]
    assert set(body["attempt_log"][0]) == {
        "number",
        "started_at",
        "method",
        "url",
        "response_status",
        "duration_ms",
        "error",
    }
    assert body["attempt_log"][0]["url"] == "https://tracker.example.com/pb?try=2"


def test_delivery_list_filters(api_client):
    postback = PostbackFactory()
    first = make_delivery(postback, state=DeliveryState.FAILED)
    test_send = make_delivery(postback, is_test=True)
    other = make_delivery(status="pending")

    def ids(**params):
        results = api_client.get("/api/v1/deliveries/", params).json()["results"]
        return {row["id"] for row in results}

    assert ids() == {first.pk, test_send.pk, other.pk}
    assert ids(postback=postback.pk) == {first.pk, test_send.pk}
    assert ids(conversion=other.conversion_id) == {other.pk}
    assert ids(state="failed") == {first.pk}
    assert ids(is_test="true") == {test_send.pk}
    assert ids(postback=postback.pk, is_test="false") == {first.pk}


def test_delivery_list_rejects_unknown_state(api_client):
    assert api_client.get("/api/v1/deliveries/", {"state": "lost"}).status_code == 400


def test_delivery_list_filters_by_transaction_click_affiliate_and_time(api_client):
    click = ClickFactory(aff_s1="THEIR-CLICK-1")
    wanted = make_delivery(
        PostbackFactory(affiliate=click.affiliate),
        conversion=ConversionFactory(transaction_id="AUD-TX-1", click=click),
    )
    other = make_delivery(conversion=ConversionFactory(transaction_id="AUD-TX-10"))
    Delivery.objects.filter(pk=other.pk).update(created=timezone.now() - timedelta(days=2))

    def ids(**params):
        response = api_client.get("/api/v1/deliveries/", params)
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids(transaction_id="AUD-TX-1") == {wanted.pk}
    assert ids(click_id="THEIR-CLICK-1") == {wanted.pk}
    assert ids(click_id=click.cid) == {wanted.pk}
    assert ids(click_id="their-click-1") == set()  # exact, unlike the admin's search
    assert ids(affiliate=click.affiliate_id) == {wanted.pk}
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(triggered_after=yesterday) == {wanted.pk}
    assert ids(triggered_before=yesterday) == {other.pk}
    # An offset PostgreSQL refuses (beyond ±15:59) is read in UTC, not a 500.
    assert ids(triggered_before="2020-04-07T19:09:05+18:59") == set()
    overflow = api_client.get(
        "/api/v1/deliveries/", {"triggered_after": "0001-01-01T00:00:00+01:00"}
    )
    assert overflow.status_code == 400 and "triggered_after" in overflow.json()


def test_delivery_list_click_id_reads_the_affiliates_click_field(api_client):
    click = ClickFactory(aff_s1="", aff_s3="SUB3-CLICK")
    wanted = make_delivery(
        PostbackFactory(affiliate=click.affiliate), conversion=ConversionFactory(click=click)
    )
    Affiliate.objects.filter(pk=click.affiliate_id).update(click_field="affS3")
    make_delivery()
    response = api_client.get("/api/v1/deliveries/", {"click_id": "SUB3-CLICK"})
    assert [row["id"] for row in response.json()["results"]] == [wanted.pk]


@pytest.mark.parametrize("params", [{"search": "x"}, {"transaction": "x"}, {"page_size": "5"}])
def test_delivery_list_answers_400_naming_an_unknown_parameter(api_client, params):
    make_delivery()
    response = api_client.get("/api/v1/deliveries/", params)
    assert response.status_code == 400
    [name] = params
    assert name in response.json()
    assert "transaction_id" in response.json()[name][0]  # says what it takes


def test_delivery_list_takes_its_paging_and_format_parameters(api_client):
    make_delivery()
    response = api_client.get("/api/v1/deliveries/", {"page": 1, "format": "json"})
    assert response.status_code == 200


def test_delivery_list_query_count_does_not_grow_with_rows(
    api_client, django_assert_max_num_queries
):
    postback = PostbackFactory()
    for _ in range(6):
        make_delivery(postback, attempts=3)
    # token + the user's and its groups' permissions + count + deliveries + attempts
    with django_assert_max_num_queries(6):
        response = api_client.get("/api/v1/deliveries/")
    assert len(response.json()["results"]) == 6
    assert all(len(row["attempt_log"]) == 3 for row in response.json()["results"])


def test_deliveries_are_read_only(api_client):
    delivery = make_delivery()
    assert api_client.post("/api/v1/deliveries/", {}, format="json").status_code == 405
    assert api_client.delete(f"/api/v1/deliveries/{delivery.pk}/").status_code == 405


# --- exchange rates ---------------------------------------------------------------------------

RATE = {"base": "EUR", "quote": "USD", "rate": "1.0850", "valid_on": "2025-03-14"}


def test_exchange_rate_create_then_upsert(api_client):
    created = api_client.post("/api/v1/exchange-rates/", RATE, format="json")
    assert created.status_code == 201
    assert created.json()["rate"] == "1.0850000000"

    updated = api_client.post("/api/v1/exchange-rates/", {**RATE, "rate": "1.0900"}, format="json")
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    rate = ExchangeRate.objects.get()
    assert str(rate.rate.normalize()) == "1.09"


def test_exchange_rate_codes_are_upper_cased(api_client):
    response = api_client.post(
        "/api/v1/exchange-rates/", {**RATE, "base": "eur", "quote": "gbp"}, format="json"
    )
    assert response.status_code == 201
    assert (response.json()["base"], response.json()["quote"]) == ("EUR", "GBP")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"base": "EURO"}, "base"),
        ({"quote": "ZZZ"}, "quote"),
        ({"quote": "EUR"}, "quote"),
        ({"rate": "0"}, "rate"),
        ({"rate": "-1.2"}, "rate"),
        ({"rate": "abc"}, "rate"),
        ({"valid_on": "14/03/2025"}, "valid_on"),
    ],
)
def test_exchange_rate_rejects_bad_input(api_client, overrides, field):
    response = api_client.post("/api/v1/exchange-rates/", {**RATE, **overrides}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ExchangeRate.objects.exists()


def test_exchange_rate_list_filters(api_client):
    ExchangeRate.objects.create(base="EUR", quote="USD", rate="1.08", valid_on="2025-03-13")
    ExchangeRate.objects.create(base="EUR", quote="USD", rate="1.09", valid_on="2025-03-14")
    ExchangeRate.objects.create(base="EUR", quote="GBP", rate="0.84", valid_on="2025-03-14")

    def pairs(**params):
        results = api_client.get("/api/v1/exchange-rates/", params).json()["results"]
        return {(row["quote"], row["valid_on"]) for row in results}

    assert pairs(quote="usd") == {("USD", "2025-03-13"), ("USD", "2025-03-14")}
    assert pairs(base="EUR", valid_on="2025-03-14") == {
        ("USD", "2025-03-14"),
        ("GBP", "2025-03-14"),
    }
    assert pairs(base="USD") == set()
