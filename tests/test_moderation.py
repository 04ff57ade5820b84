"""Affiliates' postbacks under approval: the live version keeps firing until a manager approves,
the queue in the admin decides once, and every change to a postback is audited."""

import pytest
from django.test import Client

from conversions import services
from conversions.models import StatusChangeSource
from portal import moderation
from portal.models import PostbackProposal, ProposalState
from postbacks.delivery import single
from postbacks.models import AuditSource, Delivery, Postback, PostbackAudit
from postbacks.transport.policy import HttpResult
from tests.factories import (
    AffiliateFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
    portal_user,
)

pytestmark = pytest.mark.django_db

OLD_URL = "https://old.example.com/pb?clickid={affS1}&payout={payout}"
NEW_URL = "https://new.example.com/pb?clickid={affS1}&payout={payout}"


class Seam:
    """The requests sender's send, recording the URLs it was asked to call."""

    def __init__(self):
        self.urls = []

    def __call__(self, method, url, *, headers, body=""):
        self.urls.append(url)
        return HttpResult(status=200, body="ok")


@pytest.fixture
def seam(monkeypatch):
    fake = Seam()
    monkeypatch.setattr("postbacks.transport.requests_sender.send", fake)
    return fake


@pytest.fixture
def affiliate():
    return AffiliateFactory()


@pytest.fixture
def portal(affiliate):
    client = Client()
    client.force_login(portal_user(affiliate, username="ann@example.com"))
    return client


@pytest.fixture
def live(affiliate):
    return PostbackFactory(affiliate=affiliate, url=OLD_URL, statuses=["approved"])


def form_data(postback=None, **overrides) -> dict:
    """What the portal's postback form posts, from `postback`'s settings or new ones."""
    data = {
        "name": postback.name if postback else "My tracker",
        "active": "on",
        "scope": "global",
        "conversion_types": [conversion_type("sale").pk],
        "statuses": postback.statuses if postback else ["approved"],
        "currency": "",
        "method": "GET",
        "url": postback.url if postback else NEW_URL,
        "body_format": "form",
        "body_template": "",
        "headers": "",
    }
    return data | overrides


def convert(affiliate, transaction_id: str):
    """A real conversion through the conversion service: its delivery, sent at the seam."""
    data = services.ConversionInput(
        affiliate=affiliate,
        offer=OfferFactory(),
        conversion_type=conversion_type("sale"),
        transaction_id=transaction_id,
        currency="USD",
        status="approved",
    )
    conversion, _ = services.create_conversion(data, source=StatusChangeSource.API)
    deliveries = list(Delivery.objects.filter(conversion=conversion))
    for delivery in deliveries:
        single.attempt_delivery(delivery.pk)
    return deliveries


def approve_in_admin(manager_client, proposal):
    return manager_client.post(f"/admin/portal/postbackproposal/{proposal.pk}/approve/")


def test_the_live_url_keeps_firing_while_a_change_waits_and_the_new_one_after_approval(
    portal, live, affiliate, manager_client, seam
):
    response = portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL))
    assert response.status_code == 302
    live.refresh_from_db()
    assert live.url == OLD_URL
    proposal = PostbackProposal.objects.get(postback=live, state=ProposalState.PENDING)

    convert(affiliate, "T-1")
    assert seam.urls[-1].startswith("https://old.example.com/pb")

    assert approve_in_admin(manager_client, proposal).status_code == 302
    live.refresh_from_db()
    assert live.url == NEW_URL
    convert(affiliate, "T-2")
    assert seam.urls[-1].startswith("https://new.example.com/pb")


def test_a_new_postback_does_not_exist_or_fire_until_approved(
    portal, affiliate, manager_client, seam
):
    portal.post("/portal/postbacks/add/", form_data(name="Fresh"))
    assert not Postback.objects.filter(affiliate=affiliate).exists()
    proposal = PostbackProposal.objects.get(is_new=True)
    assert convert(affiliate, "T-1") == []

    approve_in_admin(manager_client, proposal)
    postback = Postback.objects.get(affiliate=affiliate)
    assert (postback.name, postback.url, postback.active) == ("Fresh", NEW_URL, True)
    assert list(postback.conversion_types.values_list("code", flat=True)) == ["sale"]
    convert(affiliate, "T-2")
    assert seam.urls[-1].startswith("https://new.example.com/pb")
    entry = postback.audit_log.get()
    assert (entry.source, entry.actor, entry.created) == (AuditSource.APPROVAL, "manager", True)
    assert "ann@example.com" in entry.note


def test_name_and_statuses_apply_at_once_without_approval(portal, live):
    portal.post(
        f"/portal/postbacks/{live.pk}/",
        form_data(live, name="Renamed", statuses=["approved", "rejected"]),
    )
    live.refresh_from_db()
    assert (live.name, live.statuses) == ("Renamed", ["approved", "rejected"])
    assert not PostbackProposal.objects.exists()
    entry = live.audit_log.get()
    assert entry.source == AuditSource.PORTAL and entry.actor == "ann@example.com"
    assert {change["field"] for change in entry.changes} == {"name", "statuses"}


def test_with_approval_off_a_url_change_applies_at_once_and_is_audited(portal, live, settings):
    settings.PORTAL_POSTBACKS_NEED_APPROVAL = False
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL))
    live.refresh_from_db()
    assert live.url == NEW_URL
    assert not PostbackProposal.objects.exists()
    (change,) = live.audit_log.get().changes
    assert change == {"field": "url", "old": OLD_URL, "new": NEW_URL}


def test_a_rejection_needs_a_reason_which_the_affiliate_sees(portal, live, manager_client):
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL))
    proposal = PostbackProposal.objects.get()
    url = f"/admin/portal/postbackproposal/{proposal.pk}/reject/"
    manager_client.post(url, {"reason": "  "})
    assert PostbackProposal.objects.get().state == ProposalState.PENDING

    manager_client.post(url, {"reason": "Use HTTPS on port 443 only, please."})
    assert PostbackProposal.objects.get().state == ProposalState.REJECTED
    live.refresh_from_db()
    assert live.url == OLD_URL
    assert "Use HTTPS on port 443 only, please." in portal.get("/portal/changes/").content.decode()
    page = portal.get(f"/portal/postbacks/{live.pk}/").content.decode()
    assert "Use HTTPS on port 443 only, please." in page


def test_approving_twice_applies_once(portal, live, manager_client):
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL))
    proposal = PostbackProposal.objects.get()
    approve_in_admin(manager_client, proposal)
    approve_in_admin(manager_client, proposal)
    assert live.audit_log.filter(source=AuditSource.APPROVAL).count() == 1
    with pytest.raises(moderation.ModerationError, match="decided already: approved"):
        moderation.approve(proposal, None)


def test_a_change_proposed_before_the_live_request_changed_cannot_be_approved(
    portal, live, manager_client
):
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL))
    proposal = PostbackProposal.objects.get()
    Postback.objects.filter(pk=live.pk).update(url=OLD_URL + "&by=manager")

    response = approve_in_admin(manager_client, proposal)
    assert response.status_code == 302
    proposal.refresh_from_db()
    live.refresh_from_db()
    assert proposal.state == ProposalState.PENDING
    assert live.url == OLD_URL + "&by=manager"
    messages = [m.message for m in response.wsgi_request._messages]
    assert "changed after this was proposed" in messages[0]


def test_approval_runs_the_postback_validation_again(portal, live, settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url="http://10.1.2.3/pb"))
    proposal = PostbackProposal.objects.get()
    settings.POSTBACK_ALLOWED_NETWORKS = []  # the operator closed the private network since
    with pytest.raises(moderation.ModerationError, match="non-public address"):
        moderation.approve(proposal, None)
    assert PostbackProposal.objects.get().state == ProposalState.PENDING


def test_a_second_change_replaces_the_pending_one_and_reverting_withdraws_it(portal, live):
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL))
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL + "&v=2"))
    states = dict(PostbackProposal.objects.values_list("values__url", "state"))
    assert states == {NEW_URL: "withdrawn", NEW_URL + "&v=2": "pending"}
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=OLD_URL))
    assert not PostbackProposal.objects.filter(state=ProposalState.PENDING).exists()


def test_the_queue_shows_pending_changes_first_with_the_live_and_proposed_side_by_side(
    portal, live, manager_client
):
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=NEW_URL))
    proposal = PostbackProposal.objects.get()
    PostbackProposal.objects.create(affiliate=live.affiliate, state="rejected", values={})
    listing = manager_client.get("/admin/portal/postbackproposal/")
    assert [row.pk for row in listing.context["cl"].result_list] == [proposal.pk]

    page = manager_client.get(f"/admin/portal/postbackproposal/{proposal.pk}/change/")
    url_row = next(row for row in page.context["diff_rows"] if row["label"] == "URL template")
    assert (url_row["live"], url_row["proposed"], url_row["changed"]) == (OLD_URL, NEW_URL, True)
    assert page.context["may_decide"]
    assert 'id="pb-approve"' in page.content.decode()


def test_support_staff_see_the_queue_with_secrets_masked_but_cannot_decide(
    portal, live, support_client
):
    secret_url = "https://new.example.com/pb?clickid={affS1}&api_key=s3cr3t"
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live, url=secret_url))
    proposal = PostbackProposal.objects.get()
    page = support_client.get(f"/admin/portal/postbackproposal/{proposal.pk}/change/")
    assert "s3cr3t" not in page.content.decode()
    assert not page.context["may_decide"]
    response = support_client.post(f"/admin/portal/postbackproposal/{proposal.pk}/approve/")
    assert response.status_code == 403
    assert PostbackProposal.objects.get().state == ProposalState.PENDING


# --- The audit trail ------------------------------------------------------------------------


def test_an_admin_save_is_audited_with_who_and_what(manager_client, live):
    data = {
        "name": live.name,
        "affiliate": live.affiliate.pk,
        "active": "on",
        "scope": "global",
        "conversion_types": [conversion_type("sale").pk],
        "statuses": ["approved"],
        "currency": "",
        "method": "GET",
        "url": OLD_URL,
        "body_format": "form",
        "body_template": "",
        "headers": "X-Api-Key: topsecret",
        "_save": "Save",
    }
    response = manager_client.post(f"/admin/postbacks/postback/{live.pk}/change/", data)
    assert response.status_code == 302
    entry = PostbackAudit.objects.get(postback=live)
    assert (entry.actor, entry.source) == ("manager", AuditSource.ADMIN)
    assert entry.changes == [
        {"field": "headers", "old": [], "new": [{"name": "X-Api-Key", "value": "********"}]}
    ]
    page = manager_client.get(f"/admin/postbacks/postback/{live.pk}/change/").content.decode()
    assert "Changes (newest first)" in page and "topsecret" not in page.split("pb-audit")[1]


def test_an_api_update_is_audited_as_the_token_user(api_client, live):
    response = api_client.patch(f"/api/v1/postbacks/{live.pk}/", {"name": "Via API"}, format="json")
    assert response.status_code == 200
    entry = PostbackAudit.objects.get(postback=live)
    assert (entry.actor, entry.source) == ("service", AuditSource.API)
    assert entry.changes == [{"field": "name", "old": live.name, "new": "Via API"}]


def test_a_save_that_changes_nothing_writes_no_audit_row(portal, live):
    portal.post(f"/portal/postbacks/{live.pk}/", form_data(live))
    assert not PostbackAudit.objects.exists()
