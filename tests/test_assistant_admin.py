"""The admin's Postback assistant page: analyse, then one click creates an inactive postback."""

import html
import re

import pytest
from django.urls import reverse

from postbacks.models import Postback
from tests.factories import AffiliateFactory, OfferFactory, conversion_type

ASSISTANT = "admin:postbacks_postback_assistant"
REDTRACK_URL = "https://acme.rdtk.io/postback?clickid=REPLACE&sum=OPTIONAL&status=OPTIONAL"


@pytest.fixture
def affiliate(db):
    conversion_type("sale")
    conversion_type("lead")
    return AffiliateFactory()


def _create(admin_client, affiliate, url=REDTRACK_URL, **extra):
    data = {
        "affiliate": affiliate.pk,
        "platform": "",
        "url": url,
        "click_field": "affS1",
        "name": "RedTrack for Acme",
        "conversion_types": ["sale", "lead"],
        "statuses": ["approved", "rejected"],
        "create": "1",
        **extra,
    }
    return admin_client.post(reverse(ASSISTANT), data)


def test_postbacks_list_links_to_the_assistant(admin_client, db):
    response = admin_client.get(reverse("admin:postbacks_postback_changelist"))

    assert response.status_code == 200
    assert reverse(ASSISTANT).encode() in response.content


def test_assistant_page_opens_for_a_superuser(admin_client, db):
    response = admin_client.get(reverse(ASSISTANT))

    assert response.status_code == 200
    assert b"Analyse" in response.content


def test_analysis_shows_each_mapping_and_the_proposal(admin_client, affiliate):
    OfferFactory(name="Spring sale")
    query = {"affiliate": affiliate.pk, "url": REDTRACK_URL, "click_field": "affS1"}
    response = admin_client.get(reverse(ASSISTANT), query)

    content = response.content.decode()
    assert response.status_code == 200
    assert "RedTrack" in content
    assert "the platform&#x27;s click id" in content
    assert "clickid={affS1}&amp;sum={payout}&amp;status={status}" in content
    assert "?affS1={clickid}" in content
    assert "Create postback (inactive)" in content


def test_unmapped_parameters_are_flagged_and_creation_waits(admin_client, affiliate):
    query = {"affiliate": affiliate.pk, "url": "https://t.example.com/pb?clickid=1&zone={zone}"}
    response = admin_client.get(reverse(ASSISTANT), query)

    content = response.content.decode()
    assert "could not map" in content
    assert "Create postback (inactive)" not in content


def test_one_click_creates_an_inactive_postback_and_opens_it(admin_client, affiliate):
    response = _create(admin_client, affiliate)

    postback = Postback.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:postbacks_postback_change", args=[postback.pk])
    assert postback.active is False
    assert postback.affiliate == affiliate
    assert (
        postback.url == "https://acme.rdtk.io/postback?clickid={affS1}&sum={payout}&status={status}"
    )
    assert postback.statuses == ["approved", "rejected"]
    assert postback.status_map["rejected"] == "declined"
    assert {t.code for t in postback.conversion_types.all()} == {"sale", "lead"}


def test_creating_saves_the_platforms_token_on_an_affiliate_without_one(admin_client, affiliate):
    _create(admin_client, affiliate)

    affiliate.refresh_from_db()
    assert affiliate.click_id_token == "{clickid}"


def test_creating_keeps_an_affiliates_own_token(admin_client, affiliate):
    affiliate.click_id_token = "{aff_sub}"
    affiliate.save()
    _create(admin_client, affiliate)

    affiliate.refresh_from_db()
    assert affiliate.click_id_token == "{aff_sub}"


def test_a_url_with_problems_creates_nothing(admin_client, affiliate):
    response = _create(admin_client, affiliate, url="https://t.example.com/pb?zone={zone}")

    assert response.status_code == 200
    assert not Postback.objects.exists()


def test_creation_goes_through_postback_validation(admin_client, affiliate):
    response = _create(admin_client, affiliate, statuses=[])

    assert response.status_code == 200
    assert not Postback.objects.exists()


def test_choosing_a_platform_without_a_url_creates_its_shape(admin_client, affiliate):
    _create(admin_client, affiliate, url="", platform="voluum")

    postback = Postback.objects.get()
    assert postback.url.startswith(
        "https://acme.voluumtrk.com/postback?cid={affS1}&payout={payout}"
    )


def test_staff_without_add_permission_cannot_open_it(client, django_user_model, db):
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(staff)

    assert client.get(reverse(ASSISTANT)).status_code == 403


def test_the_rendered_create_form_carries_the_analysis_inputs(admin_client, affiliate):
    """The manager's three clicks: analyse, then submit the form the page shows."""
    page = admin_client.get(reverse(ASSISTANT), {"affiliate": affiliate.pk, "url": REDTRACK_URL})
    hidden_input = r'<input type="hidden" name="(\w+)" value="([^"]*)">'
    found = re.findall(hidden_input, page.content.decode())
    hidden = {name: html.unescape(value) for name, value in found}
    assert hidden["url"] == REDTRACK_URL

    response = admin_client.post(
        reverse(ASSISTANT),
        {
            **hidden,
            "name": "From the page",
            "conversion_types": ["sale"],
            "statuses": ["approved"],
            "create": "1",
        },
    )

    assert response.status_code == 302
    assert Postback.objects.get().name == "From the page"
