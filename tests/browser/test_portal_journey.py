"""The affiliate portal in a browser (issue 15): an affiliate logs in, copies a tracking link,
creates a postback with the assistant and sees it wait for approval; a manager approves it in
the admin; the affiliate's test send reaches the local sink and shows in their log; another
affiliate's postback is a 404. And every page of the portal fits a phone and a desktop."""

import pytest
from playwright.sync_api import expect

from conversions.models import Conversion
from demo.sink import Sink
from postbacks.delivery.testsend import send_test
from postbacks.models import Postback
from tests.browser.conftest import ARTIFACTS, assert_fits
from tests.browser.test_admin_in_browser import log_in, manager  # noqa: F401
from tests.factories import (
    PORTAL_PASSWORD,
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    portal_user,
)

pytestmark = pytest.mark.django_db(transaction=True)

PHONE, DESKTOP = 375, 1280


@pytest.fixture
def sink(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the sink listens on loopback
    with Sink() as server:
        yield server


def portal_log_in(page, base_url, username, password=PORTAL_PASSWORD):
    page.goto(f"{base_url}/portal/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    expect(page.locator("h2#links")).to_be_visible()


def test_affiliate_journey_from_tracking_link_to_an_approved_postback_in_the_log(
    page,
    browser,
    shot,
    live_server,
    sink,
    manager,  # noqa: F811
):
    base = live_server.url
    affiliate = AffiliateFactory(name="Acme Partners")
    offer = OfferFactory(name="Spring Shop")
    user = portal_user(affiliate, username="ana@acme.example")
    theirs = PostbackFactory(name="Rival tracker", affiliate=AffiliateFactory(name="Rival"))

    # Logs in and copies the tracking link of an offer.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    portal_log_in(page, base, user.username)
    shot("portal-journey-01-overview")
    copy = page.locator(f"button[data-copy=link-{offer.pk}]")
    copy.click()
    expect(copy).to_have_text("Copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == page.locator(f"#link-{offer.pk}").input_value()
    assert f"/t/{offer.pk}/{affiliate.pk}/?affS1=" in link

    # Creates a postback with the assistant from the URL their tracker gave them.
    page.click("nav >> text=Postbacks")
    page.click("text=Set one up with the assistant")
    page.fill("#id_url", f"{sink.url}/pb?clickid={{clickid}}&payout={{payout}}")
    page.click("#assistant-start button[type=submit]")
    expect(page.locator("#assistant-request")).to_contain_text(
        f"GET {sink.url}/pb?clickid={{affS1}}&payout={{payout}}"
    )
    shot("portal-journey-02-assistant")
    page.fill("#assistant-save input[name=name]", "Acme tracker")
    page.click("#assistant-save button[name=create]")
    expect(page.locator(".messages")).to_contain_text("waiting for your manager's approval")
    expect(page.locator("main")).to_contain_text("Acme tracker")
    shot("portal-journey-03-waiting-for-approval")
    assert not Postback.objects.filter(affiliate=affiliate).exists()

    # A manager approves it in the admin.
    admin = browser.new_context(viewport={"width": DESKTOP, "height": 1000}).new_page()
    log_in(admin, base)
    admin.goto(f"{base}/admin/portal/postbackproposal/")
    admin.click("#result_list a:has-text('Acme tracker')")
    expect(admin.locator("#pb-diff")).to_contain_text(f"{sink.url}/pb?clickid={{affS1}}")
    shot_admin(admin, "portal-journey-04-manager-approves")
    admin.click("#pb-approve input[type=submit]")
    expect(admin.locator(".messagelist")).to_contain_text("Approved")
    admin.context.close()
    assert Postback.objects.get(affiliate=affiliate, name="Acme tracker").active

    # The affiliate's test send reaches the sink and shows in their log.
    page.click("nav >> text=Postbacks")
    page.click("#portal-postbacks tr:has-text('Acme tracker') >> text=Test send")
    shot("portal-journey-05-test-send")
    page.click("main form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Test postback sent: success (HTTP 200)")
    [received] = sink.wait_for(1)
    assert received.query == {"clickid": "AFF-CLICK-123", "payout": "12.50"}
    expect(page.locator(".attempt")).to_contain_text(f"GET {sink.url}/pb?clickid=AFF-CLICK-123")
    shot("portal-journey-06-delivery")
    page.click("text=← Postback log")
    expect(page.locator("table")).to_contain_text("Acme tracker")
    shot("portal-journey-07-log")

    # Another affiliate's postback, by id: not found.
    response = page.goto(f"{base}/portal/postbacks/{theirs.pk}/")
    assert response.status == 404
    response = page.goto(f"{base}/portal/postbacks/{theirs.pk}/test/")
    assert response.status == 404


def shot_admin(admin_page, name):
    """shot() for a second browser context (the manager's)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    admin_page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert_fits(admin_page)


def test_every_portal_page_fits_a_phone_and_a_desktop(page, shot, live_server, settings, sink):
    base = live_server.url
    affiliate = AffiliateFactory(
        name="Acme Partners with a rather long name", click_id_token="{clickid}"
    )
    for name in ("Spring Shop", "Summer Casino with a long offer name"):
        OfferFactory(name=name)
    user = portal_user(affiliate, username="ana.long-address@partners.acme.example")
    postback = PostbackFactory(
        affiliate=affiliate,
        name="Acme tracker",
        url=f"{sink.url}/pb?clickid={{affS1}}&payout={{payout}}&token=s3cret&note=" + "x" * 120,
    )
    for n in range(3):
        ConversionFactory(
            click=ClickFactory(affiliate=affiliate), transaction_id=f"order-{n:08d}-long-id"
        )
    sent = send_test(postback, Conversion.objects.first())

    pages = {
        "overview": "/portal/",
        "conversions": "/portal/conversions/",
        "log": "/portal/log/",
        "delivery": f"/portal/log/{sent.uid}/",
        "test-send": f"/portal/postbacks/{postback.pk}/test/",
        "account": "/portal/account/",
        "password-change": "/portal/password/",
    }
    for width in (PHONE, DESKTOP):
        page.set_viewport_size({"width": width, "height": 900})
        page.context.clear_cookies()
        page.goto(f"{base}/portal/login/")
        shot(f"portal-look-login-{width}")
        page.goto(f"{base}/portal/password/reset/")
        shot(f"portal-look-password-reset-{width}")
        portal_log_in(page, base, user.username)
        for name, path in pages.items():
            page.goto(f"{base}{path}")
            expect(page.locator("main h1")).to_be_visible()
            shot(f"portal-look-{name}-{width}")
