"""An affiliate manager finds an auto-pause alert on the admin's home page and acknowledges it."""

import io
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from postbacks.delivery import breaker
from postbacks.delivery.tasks import check_alerts
from postbacks.models import Alert, EndpointHealth
from tests.factories import AffiliateFactory, PostbackFactory

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-browser-test-password"


@pytest.fixture
def maria(django_user_model):
    user = django_user_model.objects.create_user(
        "maria", email="maria@example.com", password=PASSWORD
    )
    call_command("assign_role", "maria", "managers", stdout=io.StringIO())
    return user


@pytest.fixture
def paused(settings, maria):
    """Maria's affiliate's postback, paused by the breaker after five days of failures."""
    settings.POSTBACK_AUTO_PAUSE_AFTER = 5
    affiliate = AffiliateFactory(name="Acme Partners", manager=maria)
    postback = PostbackFactory(
        name="Acme S2S",
        affiliate=affiliate,
        url="https://old.example.net/pb?clickid={affS1}&token=SECRET123",
    )
    health = EndpointHealth.objects.create(
        host="old.example.net:443",
        consecutive_failures=140,
        first_failure_at=timezone.now() - timedelta(days=5, hours=1),
        last_failure_at=timezone.now(),
        last_error="HTTP 503 from https://old.example.net/pb?clickid=c1&token=SECRET123",
    )
    breaker.auto_pause(health)
    check_alerts()
    return postback


def test_manager_sees_the_alert_on_the_home_page_and_acknowledges_it(
    page, shot, live_server, maria, paused
):
    assert [m.to for m in mail.outbox] == [["maria@example.com"]]
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "maria")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    banner = page.locator("#pb-alerts")
    expect(banner).to_contain_text("Postback paused")
    expect(banner).to_contain_text("Acme S2S")
    expect(banner).to_contain_text("old.example.net:443")
    expect(banner).to_contain_text("token=********")
    expect(banner).not_to_contain_text("SECRET123")
    shot("alerts-01-banner-on-index")

    banner.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".messagelist")).to_contain_text("Alert acknowledged")
    expect(page.locator("#pb-alerts")).to_have_count(0)
    shot("alerts-02-acknowledged")

    alert = Alert.objects.get()
    assert alert.acknowledged_by == maria and alert.acknowledged_at is not None
