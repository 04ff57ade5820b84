"""The postback list, read-only pages, the delete page, "View site" and the assistant's last step
as managers, support staff and superusers meet them (issue 12, items 6 and 7)."""

import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from affiliates.models import Affiliate, Offer
from conversions.models import ConversionType
from postbacks import stats
from postbacks.models import EndpointHealth, Postback, PostbackAudit
from tests.factories import (
    AffiliateFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)
from tests.test_admin_dashboard import F, P, S, make
from trackdesk.admin import DeactivateInsteadOfDeleteMixin

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:postbacks_postback_changelist")
ASSISTANT = reverse("admin:postbacks_postback_assistant")
SECRET_URL = "https://trk.example.net/pb?clickid={affS1}&token=SECRET123&status={status}"
REDTRACK_URL = "https://acme.rdtk.io/postback?clickid=REPLACE&sum=OPTIONAL&status=OPTIONAL"
TRACKDESK_URL = (
    "https://acme.trackdesk.com/tracking/conversion/v1?cid=REPLACE&conversionTypeCode=OPTIONAL"
    "&amount.value=OPTIONAL&status=OPTIONAL"
)


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def change_url(obj):
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def delete_url(obj):
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[obj.pk])


def text(response) -> str:
    return html.unescape(response.content.decode()).replace("\xa0", " ")


def with_delivery(postback=None):
    postback = postback or PostbackFactory()
    make(postback, S, ago=timedelta(minutes=5))
    return postback


# --- "View site" ---------------------------------------------------------------------------


def test_the_admin_has_no_view_site_link_to_a_missing_page(manager_client):
    page = text(manager_client.get(reverse("admin:index")))

    assert "View site" not in page


# --- the postback list ---------------------------------------------------------------------


def test_list_shows_endpoint_state_success_rate_and_last_delivery(manager_client):
    busy = PostbackFactory(name="Busy", url=SECRET_URL)
    for state, minutes in [(S, 50), (S, 40), (S, 30), (F, 20)]:
        make(busy, state, ago=timedelta(minutes=minutes))
    make(busy, F, ago=timedelta(hours=30))  # outside the 24 hours
    PostbackFactory(name="Quiet", active=False, paused_reason="Paused automatically: 503")
    PostbackFactory(name="Off", active=False)

    page = text(manager_client.get(CHANGELIST))

    assert "trk.<wbr>example.<wbr>net" in page
    assert "SECRET123" not in page  # the full URL is on hover, masked
    assert "75.0 %</span> <small>of 4</small>" in page
    assert "3 delivered, 1 failed in the last 24 hours" in page
    assert "Failed</span> <small" in page and "20 minutes ago" in page
    assert 'class="pb-hover pb-paused" title="Paused automatically: 503">Paused' in page
    assert '<span class="pb-off">Inactive</span>' in page


def test_success_rate_adds_rolled_up_hours_to_the_live_count(log_of_a_day):
    postback, now = log_of_a_day
    live_only = stats.finished_in_window([postback.pk], "24h", now)[postback.pk]

    stats.roll_up(now)
    rolled = stats.finished_in_window([postback.pk], "24h", now)[postback.pk]

    assert (live_only.delivered, live_only.failed) == (3, 2)
    assert (rolled.delivered, rolled.failed) == (3, 2)


@pytest.fixture
def log_of_a_day():
    """Finished deliveries now, 3 hours and 10 hours ago (rolled up once the roll-up runs), and
    a day and a half ago (outside the window); test sends and open ones do not count."""
    postback = PostbackFactory()
    for hours, state in [(0, S), (3, S), (3, F), (10, S), (10, F), (36, S)]:
        make(postback, state, ago=timedelta(hours=hours, minutes=1))
    make(postback, F, ago=timedelta(hours=2), is_test=True)
    make(postback, P, ago=timedelta(hours=1), attempts=0)
    now = stats.hour_of(postback.created) + timedelta(minutes=30)
    return postback, max(now, postback.created + timedelta(minutes=1))


def test_last_delivery_is_read_for_the_whole_page_at_once():
    first, second, idle = PostbackFactory(), PostbackFactory(), PostbackFactory()
    make(first, F, ago=timedelta(hours=2))
    newest = make(first, S, ago=timedelta(minutes=1))
    test_send = make(second, S, ago=timedelta(minutes=3), is_test=True)

    found = stats.last_deliveries([first.pk, second.pk, idle.pk])

    assert found[first.pk].pk == newest.pk
    assert found[second.pk].pk == test_send.pk  # a test send is a delivery too
    assert idle.pk not in found


def test_scope_label_is_short_and_names_the_offers_on_hover(manager_client):
    offers = [OfferFactory(name=f"Offer number {n}") for n in range(6)]
    PostbackFactory(scope="offers", offers=offers)
    PostbackFactory(scope="global", offers=offers[:2])

    page = text(manager_client.get(CHANGELIST))

    assert 'title="Offer number 0, Offer number 1, Offer number 2, ' in page
    assert ">6 offers</span>" in page
    assert 'title="Except Offer number 0, Offer number 1">All but 2</span>' in page


def test_manager_deactivates_and_activates_postbacks_in_bulk(manager_client):
    postbacks = [PostbackFactory(), PostbackFactory()]
    ids = [p.pk for p in postbacks]

    manager_client.post(CHANGELIST, {"action": "deactivate", "_selected_action": ids})
    assert not Postback.objects.filter(active=True).exists()

    response = manager_client.post(
        CHANGELIST, {"action": "activate", "_selected_action": ids}, follow=True
    )
    assert Postback.objects.filter(active=True).count() == 2
    assert "Activated 2 postbacks." in text(response)
    # Each switch is in the postback's change history, by whom.
    trail = PostbackAudit.objects.filter(postback=postbacks[0]).order_by("pk")
    assert [(row.actor, row.changes[0]["field"]) for row in trail] == [
        ("manager", "active"),
        ("manager", "active"),
    ]


def test_activating_a_paused_postback_resumes_its_endpoint(manager_client):
    postback = PostbackFactory(active=False, paused_reason="Paused automatically")
    EndpointHealth.objects.create(host="tracker.example.com:443", consecutive_failures=40)

    manager_client.post(CHANGELIST, {"action": "activate", "_selected_action": [postback.pk]})

    postback.refresh_from_db()
    assert postback.active and postback.paused_reason == ""
    assert EndpointHealth.objects.get().consecutive_failures == 0


def test_support_gets_no_activate_or_deactivate_action(support_client):
    postback = PostbackFactory()

    page = text(support_client.get(CHANGELIST))
    support_client.post(CHANGELIST, {"action": "deactivate", "_selected_action": [postback.pk]})

    assert 'value="deactivate"' not in page
    postback.refresh_from_db()
    assert postback.active


def test_list_search_finds_a_postback_by_its_endpoint(manager_client):
    PostbackFactory(name="Wanted", url="https://rare-host.example.org/pb?c={affS1}")
    PostbackFactory(name="Other")

    page = text(manager_client.get(CHANGELIST, {"q": "rare-host"}))

    assert ">Wanted</a>" in page and ">Other</a>" not in page


# --- read-only pages -----------------------------------------------------------------------


def test_support_sees_a_postbacks_secrets_masked_and_statuses_in_words(support_client):
    postback = PostbackFactory(
        url=SECRET_URL,
        method="POST",
        body_format="json",
        body_template='{"click": "{affS1}", "api_key": "BODYSECRET"}',
        headers=[{"name": "X-Api-Key", "value": "HEADERSECRET"}],
        statuses=["pending", "approved"],
        status_map={"approved": "1", "pending": "2"},
    )

    page = text(support_client.get(change_url(postback)))

    assert "token=********" in page
    for secret in ("SECRET123", "BODYSECRET", "HEADERSECRET"):
        assert secret not in page
    assert "Pending, Approved" in page
    assert '["pending", "approved"]' not in page
    assert "Pending → <code>2</code>" in page and "Approved → <code>1</code>" in page


def test_the_api_masks_the_same_secrets_for_support(support_client, manager_client):
    postback = PostbackFactory(url=SECRET_URL)
    url = reverse("postback-detail", args=[postback.pk])

    shown = support_client.get(url).json()
    full = manager_client.get(url).json()

    assert shown["url"] == SECRET_URL.replace("SECRET123", "********")
    assert full["url"] == SECRET_URL


def test_a_manager_still_edits_the_real_url(manager_client):
    postback = PostbackFactory(url=SECRET_URL)

    page = text(manager_client.get(change_url(postback)))

    assert "token=SECRET123" in page


def test_support_sees_an_offers_pixel_secret_masked(support_client):
    offer = OfferFactory()

    page = text(support_client.get(change_url(offer)))

    assert offer.pixel_secret and offer.pixel_secret not in page
    assert "token=********" in page


# --- the delete page -----------------------------------------------------------------------


def test_superuser_delete_page_says_one_thing_and_deletes_nothing(superuser_client):
    postback = with_delivery()

    page = superuser_client.get(delete_url(postback))
    confirmed = superuser_client.post(delete_url(postback), {"post": "yes"})

    content = text(page)
    assert page.status_code == 200
    assert "history refers to it (1 delivery)" in content
    assert "Deactivate it instead." in content and "An inactive postback sends nothing." in content
    assert "permission" not in content
    assert confirmed.status_code == 200
    assert Postback.objects.filter(pk=postback.pk).exists()


def test_deactivate_instead_button_deactivates_and_returns_to_the_postback(superuser_client):
    postback = with_delivery()

    response = superuser_client.post(
        CHANGELIST,
        {"action": "deactivate", "_selected_action": [postback.pk], "_back_to_change": postback.pk},
    )

    assert response.status_code == 302 and response.url == change_url(postback)
    postback.refresh_from_db()
    assert postback.active is False


def test_manager_gets_the_same_page_instead_of_a_bare_403(manager_client):
    postback = PostbackFactory()  # nothing refers to it: only the permission is missing

    page = manager_client.get(delete_url(postback))

    content = text(page)
    assert page.status_code == 403
    assert "your role does not delete postbacks, so that their history is kept" in content
    assert "Deactivate it instead." in content
    assert 'name="action" value="deactivate"' in content


def test_support_sees_why_but_no_deactivate_button(support_client):
    postback = PostbackFactory()

    content = text(support_client.get(delete_url(postback)))

    assert "Deactivate it instead." in content
    assert 'value="deactivate"' not in content
    assert "An affiliate manager can deactivate it." in content


def test_an_inactive_postback_is_not_offered_deactivation_again(superuser_client):
    postback = with_delivery(PostbackFactory(active=False))

    content = text(superuser_client.get(delete_url(postback)))

    assert "It is already inactive." in content


def test_a_postback_nothing_refers_to_can_still_be_deleted_by_a_superuser(superuser_client):
    postback = PostbackFactory()

    superuser_client.post(delete_url(postback), {"post": "yes"})

    assert not Postback.objects.filter(pk=postback.pk).exists()


@pytest.mark.parametrize("kind", ["affiliate", "offer"])
def test_affiliates_and_offers_get_the_same_delete_page(superuser_client, kind):
    conversion = ConversionFactory()
    obj = conversion.affiliate if kind == "affiliate" else conversion.offer

    content = text(superuser_client.get(delete_url(obj)))

    assert "1 click" in content and "1 conversion" in content
    assert "Deactivate it instead." in content
    assert "stop counting clicks" in content
    assert "permission" not in content


def test_bulk_delete_lists_what_refers_to_each_and_offers_to_deactivate_them(superuser_client):
    used = [ConversionFactory().affiliate for _ in range(2)]
    unused = AffiliateFactory()
    ids = [a.pk for a in [*used, unused]]

    response = superuser_client.post(
        reverse("admin:affiliates_affiliate_changelist"),
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )

    content = text(response)
    assert response.status_code == 200
    assert "The selected affiliates are not deleted" in content
    assert f"<li>{used[0].name}: 1 click, 1 conversion</li>" in content
    assert "Deactivate 2 affiliates" in content  # those history refers to
    assert Affiliate.objects.count() == 3


def test_rows_found_only_by_djangos_own_check_get_the_same_page(superuser_client, monkeypatch):
    """Rows further down, or of a kind the user may not delete, stop the deletion too: the page
    says so the same way, never "your account doesn't have permission to delete ..."."""
    monkeypatch.setattr(DeactivateInsteadOfDeleteMixin, "references", lambda self, objs: {})
    postback = with_delivery()

    single = text(superuser_client.get(delete_url(postback)))
    bulk = superuser_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [postback.pk]}
    )

    for content in (single, text(bulk)):
        assert "is not deleted" in content and "Deactivate it instead." in content
        assert "permission" not in content
    assert Postback.objects.filter(pk=postback.pk).exists()


def test_reference_counts_are_capped(superuser_client, monkeypatch):
    monkeypatch.setattr("trackdesk.admin.COUNT_CAP", 2)
    offer = OfferFactory()
    for _ in range(3):
        ConversionFactory(click__offer=offer)

    content = text(superuser_client.get(delete_url(offer)))

    assert "2+ clicks" in content and "2+ conversions" in content
    assert Offer.objects.filter(pk=offer.pk).exists()


# --- the assistant's last step -------------------------------------------------------------


@pytest.fixture
def affiliate(db):
    for code in ("sale", "lead", "deposit"):
        conversion_type(code)
    return AffiliateFactory()


def analyse(client, affiliate, url=REDTRACK_URL, **extra):
    return client.get(ASSISTANT, {"affiliate": affiliate.pk, "url": url, **extra})


def create(client, affiliate, url=REDTRACK_URL, **extra):
    data = {
        "affiliate": affiliate.pk,
        "url": url,
        "name": "From the assistant",
        "conversion_types": ["sale"],
        "statuses": ["approved"],
        "scope": "global",
        "create": "1",
        **extra,
    }
    return client.post(ASSISTANT, data)


def test_last_step_is_an_admin_form_with_scope_offers_and_currency(manager_client, affiliate):
    OfferFactory(name="Spring sale")

    response = analyse(manager_client, affiliate)

    form = response.context["create"]
    assert {"name", "scope", "offers", "currency", "conversion_types", "statuses"} <= set(
        form.fields
    )
    content = text(response)
    assert "admin/css/forms.css" in content
    assert 'class="form-row field-scope"' in content
    assert "SelectFilter2.js" in content  # the admin's two-box offers selector


def test_types_default_to_those_the_platform_counts(manager_client, affiliate):
    without_type = analyse(manager_client, affiliate).context["create"]
    with_type = analyse(manager_client, affiliate, url=TRACKDESK_URL).context["create"]

    assert without_type.initial["conversion_types"] == ["sale"]
    assert with_type.initial["conversion_types"] == list(
        ConversionType.objects.order_by("pk").values_list("code", flat=True)
    )


def test_api_proposes_the_same_types(api_client, affiliate):
    answer = api_client.post(
        reverse("postback-assistant"),
        {"url": REDTRACK_URL, "affiliate": affiliate.pk},
        format="json",
    )

    assert answer.json()["postback"]["conversion_types"] == ["sale"]


def test_creating_with_offer_scope_and_a_currency_saves_them(manager_client, affiliate):
    offer = OfferFactory()

    response = create(manager_client, affiliate, scope="offers", offers=[offer.pk], currency="EUR")

    postback = Postback.objects.get()
    assert response.status_code == 302
    assert (postback.scope, postback.currency, postback.active) == ("offers", "EUR", False)
    assert list(postback.offers.all()) == [offer]


def test_offer_scope_without_offers_is_refused_next_to_the_offers_field(manager_client, affiliate):
    response = create(manager_client, affiliate, scope="offers")

    assert response.status_code == 200
    assert response.context["create"].errors["offers"]
    assert not Postback.objects.exists()


def test_a_second_run_offers_the_existing_postback_instead_of_the_form(manager_client, affiliate):
    create(manager_client, affiliate)
    postback = Postback.objects.get()

    content = text(analyse(manager_client, affiliate))

    assert 'id="assistant-existing"' in content
    assert f'href="{change_url(postback)}">Open “{postback.name}”</a>' in content
    assert 'id="assistant-create"' not in content


def test_a_second_run_uses_the_click_field_the_affiliate_already_has(manager_client, affiliate):
    create(manager_client, affiliate, click_field="affS3")
    affiliate.refresh_from_db()
    assert affiliate.click_field == "affS3"

    response = analyse(manager_client, affiliate)  # click field left blank

    assert response.context["existing"] == Postback.objects.get()


def test_creating_with_a_currency_without_rates_warns_as_the_form_does(manager_client, affiliate):
    OfferFactory(default_currency="USD")

    response = create(manager_client, affiliate, currency="JPY")

    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("No exchange rate from USD to JPY" in m for m in messages)
