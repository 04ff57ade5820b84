"""A manager who has never seen the app adds and tests a postback in a real browser."""

import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from demo.sink import Sink
from postbacks.models import Delivery, DeliveryState
from tests.factories import AffiliateFactory, ConversionFactory, OfferFactory, PostbackFactory

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-browser-test-password"


@pytest.fixture
def manager(django_user_model):
    from django.core.management import call_command

    django_user_model.objects.create_user("maria", password=PASSWORD)
    call_command("assign_role", "maria", "managers", stdout=io.StringIO())


@pytest.fixture
def sink(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the sink listens on loopback
    with Sink() as server:
        yield server


@pytest.fixture
def traffic():
    """Some real deliveries, so the dashboard has numbers and a failing endpoint."""
    failing = PostbackFactory(name="Old tracker", url="https://old.example.net/pb?c={affS1}")
    for state, ms in [(DeliveryState.SUCCESS, 120), (DeliveryState.FAILED, 3000)]:
        when = timezone.now() - timedelta(minutes=90 if state == "success" else 30)
        Delivery.objects.create(
            postback=failing,
            conversion=ConversionFactory(affiliate=failing.affiliate),
            status="approved",
            state=state,
            attempts=1,
            last_duration_ms=ms,
            created=when,
            finished_at=when,
        )


def log_in(page, base_url):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", "maria")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#pb-dashboard-link")).to_be_visible()


def choose_affiliate(page, name):
    page.click(".field-affiliate .select2-selection")
    page.fill(".select2-search__field", name)
    page.click(f".select2-results__option:has-text('{name}')")


def test_manager_adds_previews_saves_and_test_sends_a_postback(
    page, shot, live_server, manager, sink, traffic
):
    AffiliateFactory(name="Acme Partners", click_id_token="{clickid}")
    OfferFactory(name="Spring Shop")
    base = live_server.url

    log_in(page, base)
    shot("01-admin-index")

    # Add a postback with the picker; the preview follows every change.
    page.goto(f"{base}/admin/postbacks/postback/add/")
    page.fill("#id_name", "Acme S2S")
    choose_affiliate(page, "Acme Partners")
    page.select_option("#id_conversion_types_from", label="Sale")
    page.click("#id_conversion_types_add")
    page.check("input[name=statuses][value=approved]")
    revenue = page.locator('.pb-chip[data-token="{revenue}"]')
    expect(revenue).to_be_disabled()
    expect(page.locator(".pb-gated-note")).to_contain_text("tracking settings")

    url_field = page.locator("#id_url")
    url_field.click()
    url_field.type(f"{sink.url}/pb?clickid=")
    page.click('.pb-chip[data-token="{affS1}"]')
    url_field.type("&payout=")
    page.click('.pb-chip[data-token="{payout}"]')
    expect(url_field).to_have_value(f"{sink.url}/pb?clickid={{affS1}}&payout={{payout}}")
    preview = page.locator("#pb-request")
    expect(preview).to_contain_text("clickid=AFF-CLICK-123&payout=12.50")

    url_field.type("&x={bogus}")
    expect(page.locator("#pb-request mark.pb-unknown")).to_have_text("{bogus}")
    expect(page.locator("#pb-problems")).to_contain_text("Unknown placeholder {bogus}")
    shot("02-postback-form-preview")

    # A chip goes in where the cursor is, also mid-text, and into the body template once that
    # field had the focus.
    url_field.fill(f"{sink.url}/pb?sub=&payout={{payout}}")
    url_field.evaluate("f => { const i = f.value.indexOf('sub=') + 4; f.setSelectionRange(i, i); }")
    page.click('.pb-chip[data-token="{affS2}"]')
    expect(url_field).to_have_value(f"{sink.url}/pb?sub={{affS2}}&payout={{payout}}")
    body_field = page.locator("#id_body_template")
    page.check("input[name=method][value=POST]")
    body_field.click()
    body_field.type("click=")
    page.click('.pb-chip[data-token="{affS1}"]')
    expect(body_field).to_have_value("click={affS1}")
    expect(url_field).to_have_value(f"{sink.url}/pb?sub={{affS2}}&payout={{payout}}")
    body_field.fill("")
    page.check("input[name=method][value=GET]")

    url_field.fill(f"{sink.url}/pb?clickid={{affS1}}&payout={{payout}}")
    expect(page.locator("#pb-request mark.pb-unknown")).to_have_count(0)

    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    # Send a test postback to the local sink and see its response inline.
    page.click("#pb-test-send")
    response = page.locator(".pb-test-response")
    expect(response).to_contain_text("HTTP 200")
    expect(response).to_contain_text("OK")
    expect(page.locator(".pb-test-request")).to_contain_text("clickid=AFF-CLICK-123")
    shot("03-test-send-response")
    [received] = sink.wait_for(1)
    assert received.query == {"clickid": "AFF-CLICK-123", "payout": "12.50"}

    # The postback log, filtered to test sends.
    page.goto(f"{base}/admin/postbacks/delivery/")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    page.click("#changelist-filter a[href*='is_test__exact=1']")
    expect(page).to_have_url(re.compile(r"is_test__exact=1"))
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Acme S2S")
    shot("04-postback-log-filtered")

    # The dashboard, opened from the admin index.
    page.goto(f"{base}/admin/")
    page.click("#pb-dashboard-link a:has-text('Delivery dashboard')")
    expect(page.locator("h1")).to_have_text("Delivery dashboard")
    expect(page.locator("#pb-failing")).to_contain_text("old.example.net")
    expect(page.locator("#pb-by-postback")).to_contain_text("50.0%")
    expect(page.locator("#pb-chart .pb-chart-col span")).to_have_count(2)
    shot("05-dashboard")


def test_manager_walks_through_click_conversion_and_delivery(
    page, shot, live_server, manager, broker_calls
):
    affiliate = AffiliateFactory(name="Walk Partners", click_id_token="{clickid}")
    OfferFactory(name="Walk Shop")
    postback = PostbackFactory(affiliate=affiliate, statuses=["approved"])
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/postbacks/postback/{postback.pk}/walkthrough/")
    expect(page.locator("#pb-tracking-url")).to_have_value(re.compile(r"\?affS1=\{clickid\}$"))
    page.click("#pb-step-click button")
    expect(page.locator("#pb-step-click")).to_contain_text("with the affiliate's click ID")
    page.select_option("#pb-step-conversion select[name=status]", "approved")
    page.click("#pb-step-conversion button")
    expect(page.locator("#pb-steps li[data-done=yes]")).to_have_count(4)
    expect(page.locator("#pb-step-delivery .pb-recent")).to_contain_text("Pending")
    shot("06-walkthrough")
    assert Delivery.objects.filter(postback=postback, is_test=False).count() == 1
