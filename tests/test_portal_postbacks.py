"""The affiliate's postback pages: the admin's form, picker, preview and checks, their own
rows only, offers they can run, deactivation, and the assistant proposing a postback."""

import pytest
from django.test import Client

from portal.models import PostbackProposal
from postbacks.models import AuditSource, Postback
from tests.factories import (
    AffiliateFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
    portal_user,
)

pytestmark = pytest.mark.django_db

URL = "https://tracker.example.com/pb?clickid={affS1}&payout={payout}"


@pytest.fixture
def affiliate():
    return AffiliateFactory(name="Ann's network")


@pytest.fixture
def portal(affiliate):
    client = Client()
    client.force_login(portal_user(affiliate))
    return client


def form_data(**overrides) -> dict:
    return {
        "name": "My tracker",
        "active": "on",
        "scope": "global",
        "conversion_types": [conversion_type("sale").pk],
        "statuses": ["approved"],
        "currency": "",
        "method": "GET",
        "url": URL,
        "body_format": "form",
        "body_template": "",
        "headers": "",
    } | overrides


def test_the_list_shows_own_postbacks_with_host_and_a_pending_change(portal, affiliate):
    mine = PostbackFactory(affiliate=affiliate, name="Mine", url="https://trk.mine.example/pb")
    PostbackFactory(name="Someone else's")
    PostbackProposal.objects.create(affiliate=affiliate, postback=mine, values={})
    page = portal.get("/portal/postbacks/").content.decode()
    assert "Mine" in page and "trk.mine.example" in page
    assert "change waiting for approval" in page
    assert "Someone else" not in page


def test_the_form_has_the_picker_and_the_portals_own_live_preview(portal):
    page = portal.get("/portal/postbacks/add/").content.decode()
    assert 'class="pb-chip" data-token="{affS1}"' in page
    assert 'data-endpoint="/portal/postbacks/preview/"' in page
    assert "postbacks/postback_form.js" in page
    assert "/admin/" not in page  # no link into the back office
    assert '<input type="hidden" name="affiliate"' in page  # fixed to their own, not a choice


def test_the_preview_renders_with_their_own_conversions_only(portal, affiliate):
    mine = ConversionFactory(affiliate=affiliate, click__affiliate=affiliate, click__aff_s1="c-1")
    other = ConversionFactory()
    answer = portal.post(
        "/portal/postbacks/preview/",
        {"url": URL, "method": "GET", "affiliate": other.affiliate_id},
    ).json()
    assert [c["id"] for c in answer["conversions"]] == [str(mine.pk)]
    answer = portal.post(
        "/portal/postbacks/preview/",
        {"url": URL, "method": "GET", "preview_conversion": str(mine.pk)},
    ).json()
    assert "".join(s["text"] for s in answer["url"]).startswith(
        "https://tracker.example.com/pb?clickid=c-1"
    )


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://169.254.169.254/latest/meta-data", "non-public address"),
        ("https://tracker.example.com:99999/pb", "port must be a number"),
        ("https://tracker.example.com/pb?c={nope}", "Unknown placeholder"),
    ],
)
def test_the_admins_checks_refuse_bad_urls(portal, settings, url, message):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    response = portal.post("/portal/postbacks/add/", form_data(url=url))
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["url"])
    assert not PostbackProposal.objects.exists()


def test_offers_are_limited_to_the_ones_they_can_run(portal):
    running = OfferFactory(name="Running")
    stopped = OfferFactory(name="Stopped", active=False)
    page = portal.get("/portal/postbacks/add/")
    assert list(page.context["form"].fields["offers"].queryset) == [running]
    response = portal.post("/portal/postbacks/add/", form_data(scope="offers", offers=[stopped.pk]))
    assert "offers" in response.context["form"].errors
    portal.post("/portal/postbacks/add/", form_data(scope="offers", offers=[running.pk]))
    assert PostbackProposal.objects.get().values["offers"] == [running.pk]


def test_another_affiliates_postback_is_not_found(portal):
    other = PostbackFactory()
    for url in (f"/portal/postbacks/{other.pk}/", f"/portal/postbacks/{other.pk}/deactivate/"):
        assert portal.get(url).status_code == 404
        assert portal.post(url, form_data()).status_code == 404
    other.refresh_from_db()
    assert other.active and other.name != "My tracker"


def test_deactivating_applies_at_once_and_is_audited(portal, affiliate):
    postback = PostbackFactory(affiliate=affiliate)
    assert (
        "Deactivate" in portal.get(f"/portal/postbacks/{postback.pk}/deactivate/").content.decode()
    )
    portal.post(f"/portal/postbacks/{postback.pk}/deactivate/")
    postback.refresh_from_db()
    assert not postback.active
    entry = postback.audit_log.get()
    assert entry.source == AuditSource.PORTAL
    assert entry.changes == [{"field": "active", "old": True, "new": False}]


def test_a_new_postback_waits_for_approval_and_shows_on_the_changes_page(portal, affiliate):
    response = portal.post("/portal/postbacks/add/", form_data(name="Voluum"))
    assert response.url == "/portal/changes/"
    assert not Postback.objects.exists()
    page = portal.get("/portal/changes/").content.decode()
    assert "New postback “Voluum”" in page and "Waiting for approval" in page
    assert "waiting for approval" in portal.get("/portal/postbacks/").content.decode()


def test_the_edit_form_shows_the_pending_version_and_what_applies_at_once(portal, affiliate):
    postback = PostbackFactory(affiliate=affiliate, url=URL, statuses=["approved"])
    portal.post(
        f"/portal/postbacks/{postback.pk}/",
        form_data(name=postback.name, url=URL + "&v=2"),
    )
    page = portal.get(f"/portal/postbacks/{postback.pk}/")
    assert page.context["form"]["url"].value() == URL + "&v=2"
    text = page.content.decode()
    assert "The live version keeps firing meanwhile" in text
    assert "Name, active, scope, offers, conversion types and statuses apply at once" in text


def test_the_assistant_proposes_a_postback_instead_of_creating_one(portal, affiliate):
    start = {"platform": "", "url": "https://trk.example.com/postback?clickid=REPLACE", "keep": ""}
    page = portal.get("/portal/assistant/", start)
    assert page.context["analysis"].ok
    save = page.context["save"]
    data = {
        **start,
        "name": "From the assistant",
        "conversion_types": save.initial["conversion_types"] or ["sale"],
        "statuses": save.initial["statuses"] or ["approved"],
    }
    response = portal.post("/portal/assistant/", data)
    assert response.status_code == 302 and response.url == "/portal/changes/"
    proposal = PostbackProposal.objects.get()
    assert proposal.is_new and proposal.affiliate == affiliate
    assert proposal.values["url"].startswith("https://trk.example.com/postback?clickid=")
    assert not Postback.objects.exists()

    portal.post("/portal/assistant/", data)  # again: it is waiting already, not proposed twice
    assert PostbackProposal.objects.count() == 1
    assert "already" in portal.get("/portal/assistant/", start).content.decode()
