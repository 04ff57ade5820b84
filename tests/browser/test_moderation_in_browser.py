"""An affiliate adds a postback in the portal (picker, live preview) and changes a live one; both
wait for approval; a manager approves in the admin's queue; the affiliate sees the result.
The affiliate's pages at 375 px and 1280 px, the manager's at 1280 px."""

import pytest
from playwright.sync_api import expect

from postbacks.models import Postback
from tests.browser.conftest import WIDTH
from tests.browser.test_admin_in_browser import PASSWORD, manager  # noqa: F401
from tests.factories import PORTAL_PASSWORD, AffiliateFactory, PostbackFactory, portal_user

pytestmark = pytest.mark.django_db(transaction=True)

OLD_URL = "https://old.example.com/pb?clickid={affS1}"
NEW_URL = "https://new.example.com/pb?clickid={affS1}&payout={payout}"


def portal_log_in(page, base_url, username):
    page.goto(f"{base_url}/portal/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PORTAL_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("nav[aria-label=Portal]")).to_be_visible()


def admin_log_in(page, base_url):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", "maria")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def test_affiliate_proposes_and_manager_approves(
    page,
    shot,
    live_server,
    manager,  # noqa: F811
):
    affiliate = AffiliateFactory(name="Ann's network")
    live = PostbackFactory(affiliate=affiliate, name="Live one", url=OLD_URL)
    user = portal_user(affiliate, username="ann@example.com")
    base = live_server.url

    portal_log_in(page, base, user.username)
    page.goto(f"{base}/portal/postbacks/add/")
    page.fill("#id_name", "Ann's tracker")
    page.check("input[name=conversion_types] >> nth=0")
    page.check("input[name=statuses][value=approved]")
    page.fill("#id_url", "https://new.example.com/pb?clickid=")
    page.click(".pb-chip[data-token='{affS1}']")  # the picker inserts at the cursor
    expect(page.locator("#id_url")).to_have_value("https://new.example.com/pb?clickid={affS1}")
    expect(page.locator("#pb-request")).to_contain_text("GET https://new.example.com/pb?clickid=")
    shot("P2-01-portal-add-postback-1280")
    page.click("#postback_form button[type=submit]")
    expect(page.locator(".proposal").first).to_contain_text("Waiting for approval")
    assert not Postback.objects.filter(name="Ann's tracker").exists()

    # A change to the live one's URL waits too; its page says what applies at once.
    page.goto(f"{base}/portal/postbacks/{live.pk}/")
    page.fill("#id_url", NEW_URL)
    page.click("#postback_form button[type=submit]")
    expect(page.locator("#pending-change")).to_contain_text("keeps firing")
    page.goto(f"{base}/portal/postbacks/")
    expect(page.locator("#portal-postbacks")).to_contain_text("change waiting for approval")
    shot("P2-02-portal-postbacks-1280")
    page.set_viewport_size({"width": 375, "height": 800})
    shot("P2-03-portal-postbacks-375")
    page.goto(f"{base}/portal/postbacks/{live.pk}/")
    shot("P2-04-portal-postback-pending-375")
    page.set_viewport_size({"width": WIDTH, "height": 1000})

    # The manager's queue: pending first, live and proposed side by side, Approve.
    page.context.clear_cookies()
    admin_log_in(page, base)
    page.goto(f"{base}/admin/portal/postbackproposal/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.click("#result_list tbody a:has-text('Change to')")
    expect(page.locator("#pb-diff tr.changed")).to_contain_text("new.example.com")
    shot("P2-05-admin-approval-diff-1280")
    page.click("#pb-approve input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("Approved")
    page.click("#result_list tbody a:has-text('New postback')")
    page.fill("#pb-reason", "Please add the payout parameter.")
    page.click("#pb-reject input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("Rejected")
    shot("P2-06-admin-queue-empty-1280")
    live.refresh_from_db()
    assert live.url == NEW_URL

    # The affiliate sees both decisions, with the manager's reason.
    page.context.clear_cookies()
    portal_log_in(page, base, user.username)
    page.goto(f"{base}/portal/changes/")
    expect(page.locator("body")).to_contain_text("Please add the payout parameter.")
    expect(page.locator(".proposal .badge.approved")).to_have_count(1)
    shot("P2-07-portal-changes-1280")
