"""The admin as managers and support staff use it: every page opens, lists stay cheap, and
edits go through the same services as the API."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from conversions import services
from conversions.models import Conversion, ConversionStatus, StatusChangeSource
from postbacks.assistant.clickfield import remember_click_field
from postbacks.models import (
    Alert,
    AlertKind,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    EndpointHealth,
    Postback,
    TrackingSettings,
)

from .factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
    postback_form_data,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return client


def make_delivery(postback=None, conversion=None, **fields):
    postback = postback or PostbackFactory()
    conversion = conversion or ConversionFactory(click=ClickFactory(affiliate=postback.affiliate))
    return Delivery.objects.create(
        postback=postback, conversion=conversion, status=conversion.status, **fields
    )


def some_of_everything():
    """At least one row of every model, so list and change pages render real rows."""
    delivery = make_delivery(state=DeliveryState.FAILED, last_status_code=503, attempts=1)
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        method="GET",
        url="https://tracker.example.com/postback?clickid=abc",
        response_status=503,
        response_body="down for maintenance",
        duration_ms=41,
    )
    services.announce(delivery.conversion, from_status="", source=StatusChangeSource.API)
    from conversions.models import ExchangeRate

    ExchangeRate.objects.create(
        base="EUR", quote="USD", rate=Decimal("1.08"), valid_on="2026-11-20"
    )
    TrackingSettings.load()
    EndpointHealth.objects.create(
        host="tracker.example.com:443", consecutive_failures=3, last_error="HTTP 503"
    )
    Alert.objects.create(
        kind=AlertKind.PAUSED,
        subject=f"postback:{delivery.postback_id}",
        postback=delivery.postback,
        endpoint="tracker.example.com:443",
        summary="Paused automatically.",
        last_error="HTTP 503",
    )
    Group.objects.get_or_create(name="Support")
    Token.objects.create(user=User.objects.create_user("shop-service"))
    return delivery


def admin_url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


@pytest.mark.parametrize("model, model_admin", REGISTERED, ids=lambda v: getattr(v, "__name__", ""))
def test_every_change_list_opens_for_a_superuser(superuser_client, model, model_admin):
    some_of_everything()

    response = superuser_client.get(admin_url(model, "changelist"), follow=True)

    assert response.status_code == 200


@pytest.mark.parametrize("model, model_admin", REGISTERED, ids=lambda v: getattr(v, "__name__", ""))
def test_every_add_page_opens_unless_rows_only_come_from_the_system(
    superuser_client, rf, django_user_model, model, model_admin
):
    request = rf.get("/")
    request.user = django_user_model.objects.get(username="boss")

    response = superuser_client.get(admin_url(model, "add"))

    expected = 200 if model_admin.has_add_permission(request) else 403
    assert response.status_code == expected


OURS = [
    (m, a) for m, a in REGISTERED if m._meta.app_label in {"affiliates", "conversions", "postbacks"}
]


@pytest.mark.parametrize("model, model_admin", OURS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_change_page_opens_for_an_existing_row(superuser_client, model, model_admin):
    some_of_everything()
    obj = model.objects.first()

    response = superuser_client.get(admin_url(model, "change", obj.pk))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "model, grow",
    [
        (Conversion, lambda: ConversionFactory()),
        (Delivery, lambda: make_delivery()),
        (Postback, lambda: PostbackFactory()),
        (ClickFactory._meta.model, lambda: ClickFactory()),
    ],
    ids=["conversions", "deliveries", "postbacks", "clicks"],
)
def test_change_lists_run_the_same_queries_for_1_or_20_rows(superuser_client, model, grow):
    grow()
    url = admin_url(model, "changelist")
    with CaptureQueriesContext(connection) as one_row:
        assert superuser_client.get(url).status_code == 200
    for _ in range(19):
        grow()
    with CaptureQueriesContext(connection) as twenty_rows:
        assert superuser_client.get(url).status_code == 200

    assert len(twenty_rows) == len(one_row)


def test_affiliate_page_shows_a_copyable_tracking_link_with_the_click_id_token(superuser_client):
    affiliate = AffiliateFactory(click_id_token="{aff_sub}")
    offer = OfferFactory(name="Summer sale")

    page = superuser_client.get(admin_url(affiliate.__class__, "change", affiliate.pk)).content

    assert f"/t/{offer.pk}/{affiliate.pk}/?affS1={{aff_sub}}".encode() in page
    assert b"Summer sale" in page


def test_affiliate_tracking_links_are_absolute_on_the_admin_host(superuser_client, settings):
    settings.PUBLIC_BASE_URL = ""
    settings.ALLOWED_HOSTS = ["admin.example.org"]
    affiliate, offer = AffiliateFactory(click_id_token="{aff_sub}"), OfferFactory()

    page = superuser_client.get(
        admin_url(affiliate.__class__, "change", affiliate.pk), HTTP_HOST="admin.example.org"
    ).content.decode()

    link = f"http://admin.example.org/t/{offer.pk}/{affiliate.pk}/?affS1={{aff_sub}}"
    assert f'value="{link}"' in page


def test_affiliate_tracking_links_start_with_the_public_base_url(superuser_client, settings):
    settings.PUBLIC_BASE_URL = "https://go.example.net/"
    affiliate, offer = AffiliateFactory(click_id_token="#s2#"), OfferFactory()

    page = superuser_client.get(admin_url(affiliate.__class__, "change", affiliate.pk)).text

    assert f'value="https://go.example.net/t/{offer.pk}/{affiliate.pk}/?affS1=#s2#"' in page
    assert "http://testserver/t/" not in page


def test_affiliate_without_a_token_gets_the_placeholder_text_in_its_links(superuser_client):
    affiliate, offer = AffiliateFactory(click_id_token=""), OfferFactory()

    page = superuser_client.get(admin_url(affiliate.__class__, "change", affiliate.pk)).text

    link = f"http://testserver/t/{offer.pk}/{affiliate.pk}/?affS1={{your click id token}}"
    assert f'value="{link}"' in page
    assert "No click ID token is set" in page


def test_affiliate_links_carry_the_token_in_the_field_their_postback_returns(superuser_client):
    affiliate, offer = AffiliateFactory(click_id_token="{clickid}"), OfferFactory()
    PostbackFactory(affiliate=affiliate, url="https://t.example.com/pb?subid={affS3}&p={payout}")
    remember_click_field(affiliate)  # what the admin, the API and the assistant do on save

    page = superuser_client.get(admin_url(affiliate.__class__, "change", affiliate.pk)).text

    assert f'value="http://testserver/t/{offer.pk}/{affiliate.pk}/?affS3={{clickid}}"' in page
    assert "Their click ID travels in affS3" in page


def test_tracking_settings_open_as_one_page_and_save(superuser_client):
    response = superuser_client.get(admin_url(TrackingSettings, "changelist"))
    assert response.status_code == 302

    page = superuser_client.post(
        response.url, {"allow_revenue_parameters": "on", "_save": "Save"}, follow=True
    )

    assert page.status_code == 200
    assert TrackingSettings.load().allow_revenue_parameters is True
    assert TrackingSettings.objects.count() == 1


def test_add_postback_through_the_form(superuser_client):
    affiliate = AffiliateFactory()

    response = superuser_client.post(admin_url(Postback, "add"), postback_form_data(affiliate))

    assert response.status_code == 302, response.context["adminform"].form.errors
    postback = Postback.objects.get()
    assert postback.statuses == ["approved"]
    assert list(postback.conversion_types.values_list("code", flat=True)) == ["sale"]


def test_revenue_placeholder_is_refused_with_where_to_turn_it_on(superuser_client):
    affiliate = AffiliateFactory()
    data = postback_form_data(affiliate, url="https://tracker.example.com/pb?rev={revenue}")

    response = superuser_client.post(admin_url(Postback, "add"), data)

    assert response.status_code == 200
    errors = str(response.context["adminform"].form.errors)
    assert "Allow revenue and sale amount parameters" in errors
    assert not Postback.objects.exists()


def test_unknown_placeholder_is_refused_with_the_valid_names(superuser_client):
    data = postback_form_data(AffiliateFactory(), url="https://tracker.example.com/pb?c={clickId}")

    response = superuser_client.post(admin_url(Postback, "add"), data)

    errors = str(response.context["adminform"].form.errors)
    assert "clickId" in errors and "affS1" in errors
    assert not Postback.objects.exists()


def test_status_change_in_the_admin_fires_postbacks_like_the_api(
    superuser_client, broker_calls, django_capture_on_commit_callbacks
):
    postback = PostbackFactory(statuses=["approved"])
    conversion, _ = services.create_conversion(
        services.ConversionInput(
            affiliate=postback.affiliate,
            offer=OfferFactory(),
            conversion_type=conversion_type("sale"),
            transaction_id="order-1",
            payout=Decimal("5"),
            currency="USD",
        ),
        source=StatusChangeSource.API,
    )
    assert not Delivery.objects.exists()  # pending does not match this postback
    url = admin_url(Conversion, "change", conversion.pk)
    data = {**current_form_data(superuser_client, url), "status": ConversionStatus.APPROVED}

    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(url, management_forms(superuser_client, url, data))

    assert response.status_code == 302
    delivery = Delivery.objects.get()
    assert (delivery.postback, delivery.status) == (postback, ConversionStatus.APPROVED)
    assert broker_calls == [delivery.pk]
    change = conversion.status_changes.order_by("created").last()
    assert (change.to_status, change.source) == ("approved", StatusChangeSource.ADMIN)

    # Saving again without a status change sends nothing more.
    superuser_client.post(url, management_forms(superuser_client, url, data))
    assert Delivery.objects.count() == 1


def current_form_data(client, url):
    """The change form's fields with their current values, as a browser would post them back."""
    form = client.get(url).context["adminform"].form
    values = {name: form[name].value() for name in form.fields}
    return {name: "" if value is None else value for name, value in values.items()} | {
        "_save": "Save"
    }


def management_forms(client, url, data):
    """The inline formsets' management fields as the page renders them."""
    context = client.get(url).context
    for formset in context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
    return data


def test_conversion_and_postback_pages_link_to_their_deliveries(superuser_client):
    delivery = make_delivery()
    log = reverse("admin:postbacks_delivery_changelist")

    conversion_page = superuser_client.get(admin_url(Conversion, "change", delivery.conversion_id))
    postback_page = superuser_client.get(admin_url(Postback, "change", delivery.postback_id))

    assert f"{log}?conversion__id__exact={delivery.conversion_id}" in conversion_page.text
    assert f"{log}?postback__id__exact={delivery.postback_id}" in postback_page.text


def test_retry_now_queues_failed_deliveries_and_leaves_successful_ones(
    superuser_client, broker_calls, django_capture_on_commit_callbacks
):
    failed = make_delivery(state=DeliveryState.FAILED)
    done = make_delivery(state=DeliveryState.SUCCESS)

    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(
            admin_url(Delivery, "changelist"),
            {"action": "retry_now", "_selected_action": [failed.pk, done.pk]},
            follow=True,
        )

    assert (
        "Queued 1 delivery for a retry now. 1 successful or test deliveries left alone."
        in response.text
    )
    failed.refresh_from_db()
    assert failed.state == DeliveryState.RETRYING
    assert broker_calls == [failed.pk]


def test_log_is_read_only(superuser_client):
    delivery = make_delivery(state=DeliveryState.FAILED)

    response = superuser_client.post(
        admin_url(Delivery, "change", delivery.pk), {"state": DeliveryState.SUCCESS}
    )

    assert response.status_code == 403
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
