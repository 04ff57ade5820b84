"""The few seconds' memory of hot-path configuration (trackdesk/memo.py): a save in this process
applies at once, a change that sends no signal within HOT_CONFIG_CACHE_SECONDS, and the busiest
requests read less."""

import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from affiliates.models import Affiliate, Offer
from conversions.models import ConversionType, PayoutRule, PayoutRuleKind
from tests.factories import AffiliateFactory, ClickFactory, OfferFactory, conversion_type

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversions/"


def click_url(offer, affiliate) -> str:
    return reverse("track-click", args=[offer.pk, affiliate.pk])


def test_a_remembered_tracking_link_costs_one_insert(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()
    assert client.get(click_url(offer, affiliate)).status_code == 302

    with CaptureQueriesContext(connection) as queries:
        response = client.get(click_url(offer, affiliate) + "?affS1=x")

    assert response.status_code == 302
    [query] = queries.captured_queries
    assert 'INSERT INTO "conversions_click"' in query["sql"]


def test_deactivating_an_offer_by_saving_it_stops_its_link_at_once(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()
    assert client.get(click_url(offer, affiliate)).status_code == 302

    offer.active = False
    offer.save()

    assert client.get(click_url(offer, affiliate)).status_code == 404


def test_deactivating_an_affiliate_by_saving_it_stops_its_links_at_once(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()
    assert client.get(click_url(offer, affiliate)).status_code == 302

    affiliate.active = False
    affiliate.save()

    assert client.get(click_url(offer, affiliate)).status_code == 404


def test_a_change_without_a_signal_applies_once_the_memory_expires(client, settings):
    settings.HOT_CONFIG_CACHE_SECONDS = 0.3
    offer, affiliate = OfferFactory(), AffiliateFactory()
    assert client.get(click_url(offer, affiliate)).status_code == 302

    Offer.objects.filter(pk=offer.pk).update(active=False)  # as another process would
    assert client.get(click_url(offer, affiliate)).status_code == 302  # still remembered
    time.sleep(0.4)

    assert client.get(click_url(offer, affiliate)).status_code == 404


def test_zero_seconds_reads_the_database_on_every_click(client, settings):
    settings.HOT_CONFIG_CACHE_SECONDS = 0
    offer, affiliate = OfferFactory(), AffiliateFactory()
    assert client.get(click_url(offer, affiliate)).status_code == 302

    Offer.objects.filter(pk=offer.pk).update(active=False)

    assert client.get(click_url(offer, affiliate)).status_code == 404


def test_an_unknown_link_stays_404_and_a_new_offer_is_found_once_saved(client):
    affiliate = AffiliateFactory()
    assert client.get(f"/t/999999/{affiliate.pk}/").status_code == 404

    offer = OfferFactory()  # a save: what was remembered is forgotten

    assert client.get(click_url(offer, affiliate)).status_code == 302


def post(api_client, click, transaction_id, code="sale"):
    body = {"cid": click.cid, "conversion_type": code, "transaction_id": transaction_id}
    return api_client.post(URL, body, format="json")


def test_a_renamed_conversion_type_is_known_by_its_new_code_at_once(api_client):
    click = ClickFactory()
    lead = conversion_type("lead")
    assert post(api_client, click, "t1", "lead").status_code == 201

    lead.code = "signup"
    lead.save()

    assert post(api_client, click, "t2", "signup").json()["conversion_type"] == "signup"
    answer = post(api_client, click, "t3", "lead")
    assert answer.status_code == 400
    assert "No conversion type with code 'lead'" in answer.json()["conversion_type"][0]


def test_a_payout_rule_saved_applies_to_the_next_conversion(api_client):
    click = ClickFactory()
    sale = conversion_type("sale")
    assert post(api_client, click, "before").json()["payout"] is None  # no rule: remembered

    rule = PayoutRule.objects.create(
        offer=click.offer,
        conversion_type=sale,
        kind=PayoutRuleKind.FIXED,
        amount=Decimal("7.50"),
        currency=click.offer.default_currency,
    )
    assert Decimal(post(api_client, click, "with").json()["payout"]) == Decimal("7.50")

    rule.active = False
    rule.save()
    assert post(api_client, click, "after").json()["payout"] is None


def sql_of_a_second_post(api_client, click) -> str:
    """The SQL of a conversion POST after a first one with the same click filled the memory."""
    post(api_client, click, "first")
    with CaptureQueriesContext(connection) as queries:
        assert post(api_client, click, "second").status_code == 201
    return " ".join(q["sql"] for q in queries.captured_queries)


def test_conversion_types_are_read_once_while_remembered(api_client):
    sql = sql_of_a_second_post(api_client, ClickFactory())

    for model in (ConversionType, PayoutRule):
        assert f'FROM "{model._meta.db_table}"' not in sql


def test_a_conversion_by_cid_reads_only_the_click_while_its_owners_are_remembered(api_client):
    sql = sql_of_a_second_post(api_client, ClickFactory())

    for model in (Offer, Affiliate):
        assert f'"{model._meta.db_table}"' not in sql
    assert 'FROM "conversions_click"' in sql


def test_an_offer_deactivated_by_saving_it_refuses_conversions_at_once(api_client):
    click = ClickFactory()
    assert post(api_client, click, "before").status_code == 201

    click.offer.active = False
    click.offer.save()

    response = post(api_client, click, "after")
    assert response.status_code == 400
    assert "inactive" in str(response.json()["cid"])


def test_an_affiliate_deactivated_elsewhere_refuses_conversions_once_remembered_expires(
    api_client, settings
):
    settings.HOT_CONFIG_CACHE_SECONDS = 0.3
    click = ClickFactory()
    assert post(api_client, click, "before").status_code == 201

    Affiliate.objects.filter(pk=click.affiliate_id).update(active=False)  # no signal
    time.sleep(0.4)

    assert post(api_client, click, "after").status_code == 400


# --- API tokens (trackdesk/authentication.py) ---------------------------------------------------

LIST = "/api/v1/conversions/"


def test_a_remembered_token_costs_no_query_for_its_user_or_permissions(api_client):
    assert api_client.get(LIST).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert api_client.get(LIST).status_code == 200

    sql = " ".join(q["sql"] for q in queries.captured_queries)
    for table in ("authtoken_token", "auth_user", "auth_permission"):
        assert f'"{table}"' not in sql


def test_a_deleted_token_is_refused_at_once(api_client):
    assert api_client.get(LIST).status_code == 200

    Token.objects.get().delete()

    assert api_client.get(LIST).status_code == 401


def test_a_deactivated_user_is_refused_at_once(api_client, api_user):
    assert api_client.get(LIST).status_code == 200

    api_user.is_active = False
    api_user.save()

    assert api_client.get(LIST).status_code == 401


def test_a_permission_taken_away_applies_at_once(api_client, api_user):
    assert api_client.get(LIST).status_code == 200

    api_user.user_permissions.remove(Permission.objects.get(codename="view_conversion"))

    assert api_client.get(LIST).status_code == 403


def test_a_role_taken_away_applies_at_once(api_client, api_user):
    role = Group.objects.create(name="readers")
    role.permissions.add(Permission.objects.get(codename="view_conversion"))
    api_user.user_permissions.clear()
    api_user.groups.add(role)
    assert api_client.get(LIST).status_code == 200

    role.permissions.clear()

    assert api_client.get(LIST).status_code == 403


def test_a_token_revoked_elsewhere_is_refused_once_the_memory_expires(api_client, settings):
    settings.HOT_CONFIG_CACHE_SECONDS = 0.3
    assert api_client.get(LIST).status_code == 200

    User.objects.update(is_active=False)  # as another process would: no signal here
    assert api_client.get(LIST).status_code == 200  # still remembered
    time.sleep(0.4)

    assert api_client.get(LIST).status_code == 401


def test_a_request_changing_its_user_leaves_the_remembered_one_alone(api_user):
    from trackdesk.authentication import TokenAuthentication

    key = Token.objects.create(user=api_user).key
    first, _ = TokenAuthentication().authenticate_credentials(key)
    first.username = "changed by a request"

    again, token = TokenAuthentication().authenticate_credentials(key)
    assert again.username == "service" and token.key == key
    assert again.has_perm("conversions.view_conversion")
