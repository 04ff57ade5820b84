"""The postback log's list page as support uses it: one name, the columns that identify a
delivery, and a search by the start of any id in any case that an index serves."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from conversions.models import Click, Conversion, ConversionStatusChange
from postbacks.admin import log_list
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from trackdesk.prefix import StartsWithLower

from .factories import AffiliateFactory, ClickFactory, ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db

LOG = "admin:postbacks_delivery_changelist"


@pytest.fixture
def superuser_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client


def make_delivery(transaction_id=None, aff_s1="aff-click", affiliate=None, **fields):
    affiliate = affiliate or AffiliateFactory()
    postback = PostbackFactory(affiliate=affiliate, url="https://Tracker.Example.com/pb?c=1")
    click = ClickFactory(affiliate=affiliate, aff_s1=aff_s1)
    ids = {"transaction_id": transaction_id} if transaction_id else {}
    conversion = ConversionFactory(affiliate=affiliate, click=click, **ids)
    return Delivery.objects.create(
        postback=postback, conversion=conversion, status=conversion.status, **fields
    )


def listed(client, **params) -> list:
    page = client.get(reverse(LOG), params)
    assert page.status_code == 200
    return list(page.context["cl"].result_list)


def test_log_is_called_postback_log_in_title_breadcrumbs_and_index(superuser_client):
    page = superuser_client.get(reverse(LOG))
    index = superuser_client.get(reverse("admin:index"))

    assert "<h1>Postback log</h1>" in page.text
    assert "&rsaquo; Postback log" in page.text
    assert "tracking log" not in page.text.lower()
    assert ">Postback log</a>" in index.text


def test_a_row_shows_transaction_click_id_endpoint_attempts_and_next_try(superuser_client):
    delivery = make_delivery(
        "AUD-TX-1", aff_s1="their-click-9", state=DeliveryState.RETRYING, attempts=2
    )
    delivery.last_status_code = 503
    delivery.save()

    page = superuser_client.get(reverse(LOG)).text

    assert "AUD-TX-1" in page
    assert "their-click-9" in page
    assert "tracker.example.com" in page
    assert "2 of 8" in page
    assert timezone.localtime(delivery.next_attempt_at).strftime("%Y-%m-%d %H:%M:%S") in page
    assert "503" in page
    assert str(delivery.conversion_id) not in page  # no UUID column


def test_attempts_count_against_the_retry_schedule(superuser_client, settings):
    settings.POSTBACK_RETRY_SCHEDULE = (60, 300)
    make_delivery(attempts=1)
    assert "1 of 3" in superuser_client.get(reverse(LOG)).text


def test_click_id_column_reads_the_affiliates_click_field(superuser_client):
    delivery = make_delivery(aff_s1="not-this")
    affiliate = delivery.postback.affiliate
    type(affiliate).objects.filter(pk=affiliate.pk).update(click_field="affS3")
    delivery.conversion.click.aff_s3 = "sub3-value"
    delivery.conversion.click.save()

    page = superuser_client.get(reverse(LOG)).text

    assert "sub3-value" in page and "not-this" not in page


def test_finished_delivery_has_no_next_try(superuser_client):
    later = timezone.now() + timedelta(hours=1)
    delivery = make_delivery(state=DeliveryState.SUCCESS, attempts=1, next_attempt_at=later)
    page = superuser_client.get(reverse(LOG)).text
    assert timezone.localtime(delivery.next_attempt_at).strftime("%Y-%m-%d %H:%M:%S") not in page


def test_state_says_when_a_delivery_waits_for_a_rate(superuser_client):
    make_delivery(waiting_for_rate="EUR→GBP")
    assert "waiting for a rate (EUR→GBP)" in superuser_client.get(reverse(LOG)).text


def test_state_says_when_a_delivery_waits_for_an_earlier_status(superuser_client):
    first = make_delivery(state=DeliveryState.RETRYING)
    conversion = first.conversion
    earlier = ConversionStatusChange.objects.create(
        conversion=conversion, to_status="pending", source="api"
    )
    later = ConversionStatusChange.objects.create(
        conversion=conversion, from_status="pending", to_status="approved", source="api"
    )
    Delivery.objects.filter(pk=first.pk).update(status_change=earlier)
    Delivery.objects.create(
        postback=first.postback, conversion=conversion, status="approved", status_change=later
    )

    page = superuser_client.get(reverse(LOG)).text

    assert page.count("waiting for an earlier status") == 1


@pytest.mark.parametrize(
    "term",
    ["aud-tx", "AUD-TX-1", "Aud-Tx-1", "THEIR-CL", "their-click-7", "url:their-click"],
)
def test_search_matches_the_start_of_transaction_or_click_id_in_any_case(superuser_client, term):
    wanted = make_delivery("AUD-TX-1", aff_s1="THEIR-CLICK-7")
    DeliveryAttempt.objects.create(
        delivery=wanted, number=1, url="https://t.example.com/pb?c=THEIR-CLICK-7"
    )
    make_delivery("OTHER-1", aff_s1="other-click")
    assert listed(superuser_client, q=term) == [wanted]


def test_search_matches_the_start_of_our_click_id(superuser_client):
    wanted = make_delivery()
    make_delivery()
    assert listed(superuser_client, q=wanted.conversion.click.cid[:10].swapcase()) == [wanted]


@pytest.mark.parametrize("which", ["conversion", "delivery"])
def test_search_matches_a_whole_conversion_or_delivery_id(superuser_client, which):
    wanted = make_delivery()
    make_delivery()
    key = wanted.conversion_id if which == "conversion" else wanted.uid
    assert listed(superuser_client, q=f"  {key} ") == [wanted]


def test_search_matches_the_affiliates_own_click_field(superuser_client):
    wanted = make_delivery()
    affiliate = wanted.postback.affiliate
    type(affiliate).objects.filter(pk=affiliate.pk).update(click_field="affS2")
    wanted.conversion.click.aff_s2 = "Sub2-Click"
    wanted.conversion.click.save()
    make_delivery()
    assert listed(superuser_client, q="sub2-c") == [wanted]


def test_search_does_not_match_the_middle_of_an_id(superuser_client):
    make_delivery("AUD-TX-1", aff_s1="THEIR-CLICK-7")
    assert listed(superuser_client, q="tx-1") == []


def test_search_takes_wildcards_literally(superuser_client):
    make_delivery("AUD-TX-1")
    assert listed(superuser_client, q="aud_tx") == []
    assert listed(superuser_client, q="%tx") == []


def test_search_matching_too_many_conversions_says_so(superuser_client, monkeypatch):
    monkeypatch.setattr(log_list, "MAX_CONVERSIONS", 2)
    for n in range(3):
        make_delivery(f"MANY-{n}")
    page = superuser_client.get(reverse(LOG), {"q": "many"})
    assert len(page.context["cl"].result_list) == 2
    assert "More than 2 conversions match" in page.text


@pytest.mark.parametrize(
    "status_class, expected", [("5xx", [503]), ("2xx", [200]), ("none", [None])]
)
def test_log_filters_by_http_status_class(superuser_client, status_class, expected):
    for code in (200, 503, None):
        make_delivery(last_status_code=code)
    found = listed(superuser_client, http=status_class)
    assert [d.last_status_code for d in found] == expected


@pytest.mark.parametrize(
    "model, field, index",
    [
        (Conversion, "transaction_id", "conversion_transaction_prefix"),
        (Click, "cid", "click_cid_prefix"),
        (Click, "aff_s1", "click_aff_s1_prefix"),
    ],
)
def test_prefix_search_reads_its_index(model, field, index):
    query = model.objects.filter(StartsWithLower(field, "Aud-Tx")).values("pk")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")  # an empty table: ask for the index
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert index in plan
