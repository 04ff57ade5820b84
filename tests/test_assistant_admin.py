"""The admin's Postback assistant page: analyse, then one click creates an inactive postback."""

import html
import re

import pytest
from django.urls import reverse

from postbacks.models import Delivery, DeliveryState, Postback
from tests.factories import AffiliateFactory, OfferFactory, conversion_type
from tests.test_delivery import FakeSeam

ASSISTANT = "admin:postbacks_postback_assistant"
REDTRACK_URL = "https://acme.rdtk.io/postback?clickid=REPLACE&sum=OPTIONAL&status=OPTIONAL"


@pytest.fixture
def affiliate(db):
    conversion_type("sale")
    conversion_type("lead")
    return AffiliateFactory()


def _create(admin_client, affiliate, url=REDTRACK_URL, follow=False, **extra):
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
    return admin_client.post(reverse(ASSISTANT), data, follow=follow)


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


def test_an_inactive_postback_from_the_assistant_can_be_test_sent(
    admin_client, affiliate, monkeypatch
):
    """Create, land on its page, find the test-send panel there, send: success."""
    seam = FakeSeam()
    monkeypatch.setattr("postbacks.transport.requests_sender.send", seam)

    page = _create(admin_client, affiliate, follow=True)

    postback = Postback.objects.get()
    assert postback.active is False
    change = reverse("admin:postbacks_postback_change", args=[postback.pk])
    assert page.redirect_chain == [(change, 302)]
    content = page.content.decode()
    # The success message links straight to the panel and to the walkthrough.
    assert f'href="{change}#pb-test-panel"' in content
    walkthrough = reverse("admin:postbacks_postback_walkthrough", args=[postback.pk])
    assert f'href="{walkthrough}"' in content
    panel = re.search(
        r'<div class="pb-test-panel" id="pb-test-panel"\s+data-endpoint="([^"]+)"', content
    )
    assert panel, "the test-send panel is on the page the assistant opens"

    response = admin_client.post(
        html.unescape(panel.group(1)), {"conversion": ""}, HTTP_ACCEPT="application/json"
    )

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["state"] == DeliveryState.SUCCESS
    assert answer["request"]["url"] == (
        "https://acme.rdtk.io/postback?clickid=AFF-CLICK-123&sum=12.50&status=approved"
    )
    assert [call["url"] for call in seam.calls] == [answer["request"]["url"]]
    test = Delivery.objects.get(is_test=True)
    assert test.postback == postback and test.state == DeliveryState.SUCCESS
    postback.refresh_from_db()
    assert postback.active is False  # a test send activates nothing


def test_assistant_tracking_links_use_the_chosen_click_field(admin_client, affiliate):
    offer = OfferFactory(name="Spring sale")
    query = {"affiliate": affiliate.pk, "url": REDTRACK_URL, "click_field": "affS3"}

    content = admin_client.get(reverse(ASSISTANT), query).content.decode()

    assert f"http://testserver/t/{offer.pk}/{affiliate.pk}/?affS3={{clickid}}" in content
    assert "clickid={affS3}&amp;sum={payout}" in content
    assert "?affS1=" not in content


def test_assistant_tracking_links_start_with_the_public_base_url(admin_client, affiliate, settings):
    settings.PUBLIC_BASE_URL = "https://go.example.net/"
    offer = OfferFactory()
    query = {"affiliate": affiliate.pk, "url": REDTRACK_URL}

    content = admin_client.get(reverse(ASSISTANT), query).content.decode()

    assert f"https://go.example.net/t/{offer.pk}/{affiliate.pk}/?affS1={{clickid}}" in content
    assert "http://testserver/t/" not in content


def test_after_creating_with_another_click_field_the_affiliate_links_use_it(
    admin_client, affiliate
):
    offer = OfferFactory()
    _create(admin_client, affiliate, click_field="affS3")

    assert Postback.objects.get().url.startswith("https://acme.rdtk.io/postback?clickid={affS3}")
    affiliate.refresh_from_db()
    assert affiliate.click_field == "affS3"
    page = admin_client.get(reverse("admin:affiliates_affiliate_change", args=[affiliate.pk]))
    content = html.unescape(page.content.decode())
    assert f"http://testserver/t/{offer.pk}/{affiliate.pk}/?affS3={{clickid}}" in content
    assert "?affS1=" not in content


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/pb?clickid=REPLACE",
        "http://169.254.169.254/pb?clickid=REPLACE",
        "https://t.example.com:8080/pb?clickid=REPLACE",
    ],
)
def test_refused_destinations_offer_no_create_button(admin_client, affiliate, settings, url):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    query = {"affiliate": affiliate.pk, "url": url}

    content = admin_client.get(reverse(ASSISTANT), query).content.decode()
    response = _create(admin_client, affiliate, url=url)

    assert "Create postback (inactive)" not in content
    assert response.status_code == 200
    assert not Postback.objects.exists()


def test_creating_the_same_proposal_twice_opens_the_existing_postback(admin_client, affiliate):
    first = _create(admin_client, affiliate)
    second = _create(admin_client, affiliate, follow=True)

    assert Postback.objects.filter(affiliate=affiliate).count() == 1
    postback = Postback.objects.get(affiliate=affiliate)
    assert first["Location"] == reverse("admin:postbacks_postback_change", args=[postback.pk])
    assert second.redirect_chain[-1][0] == first["Location"]
    assert "already has this postback" in second.content.decode()


def test_the_analysis_offers_the_existing_postback_instead_of_a_create_button(
    admin_client, affiliate
):
    _create(admin_client, affiliate)
    postback = Postback.objects.get(affiliate=affiliate)

    query = {"affiliate": affiliate.pk, "url": REDTRACK_URL, "click_field": "affS1"}
    content = admin_client.get(reverse(ASSISTANT), query).content.decode()

    assert "already has this postback" in content
    assert reverse("admin:postbacks_postback_change", args=[postback.pk]) in content
    assert 'name="create"' not in content


def test_another_affiliate_may_get_the_same_postback(admin_client, affiliate):
    _create(admin_client, affiliate)
    _create(admin_client, AffiliateFactory())

    assert Postback.objects.count() == 2


def test_keep_as_written_settles_a_value_that_could_be_either(admin_client, affiliate):
    url = "https://track.example.net/pb?clickid=REPLACE&status=APPROVED"
    refused = _create(admin_client, affiliate, url=url)
    created = _create(admin_client, affiliate, url=url, keep="status")

    assert refused.status_code == 200  # the page again, with the problem
    assert "could be a token or a fixed value" in html.unescape(refused.content.decode())
    assert created.status_code == 302
    assert (
        Postback.objects.get().url == "https://track.example.net/pb?clickid={affS1}&status=APPROVED"
    )
