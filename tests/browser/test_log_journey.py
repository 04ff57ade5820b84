"""Support finds a delivery in the postback log by a lower-case prefix of its transaction id,
opens it, and exports the filtered log as CSV, in a real browser at 1280 px."""

import csv
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from postbacks.models import Delivery, DeliveryState
from tests.factories import AffiliateFactory, ClickFactory, ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-browser-test-password"


@pytest.fixture
def support(django_user_model):
    from django.core.management import call_command

    django_user_model.objects.create_user("sam", password=PASSWORD)
    call_command("assign_role", "sam", "support", stdout=io.StringIO())


@pytest.fixture
def log_rows():
    """A failed delivery support is asked about, and others that must not match."""
    affiliate = AffiliateFactory(name="Aud Partners")
    postback = PostbackFactory(
        affiliate=affiliate,
        name="Aud S2S with a long name",
        url="https://postbacks.audience-tracker.example.com/pb?c={affS1}",
    )
    wanted = None
    for n, tx in enumerate(["AUD-TX-1042", "AUD-TX-2001", "SHOP-77"]):
        conversion = ConversionFactory(
            affiliate=affiliate,
            transaction_id=tx,
            click=ClickFactory(affiliate=affiliate, aff_s1=f"their-click-id-{n}-0123456789"),
        )
        delivery = Delivery.objects.create(
            postback=postback,
            conversion=conversion,
            status="approved",
            state=DeliveryState.FAILED,
            attempts=8,
            last_status_code=503,
            last_error="HTTP 503 from https://x.example.com/pb?token=SECRET123",
        )
        wanted = wanted or delivery
    return wanted


def test_support_finds_a_delivery_by_prefix_and_exports_the_filtered_log(
    page, shot, live_server, support, log_rows
):
    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    page.click("text=Postback log")
    expect(page.locator("h1")).to_have_text("Postback log")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)

    page.fill("#searchbar", "aud-tx-10")
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text("AUD-TX-1042")
    expect(row).to_contain_text("their-click-id-0-0123456789")
    expect(row).to_contain_text("postbacks.audience-tracker.example.com")
    expect(row).to_contain_text("8 of 8")
    expect(row).to_contain_text("503")
    shot("a-01-postback-log-search")
    # Every column is on screen: the list itself does not scroll sideways either.
    widths = page.evaluate(
        "() => { const r = document.querySelector('.results');"
        " return {content: r.scrollWidth, box: r.clientWidth}; }"
    )
    assert widths["content"] <= widths["box"], widths

    with page.expect_download() as download_info:
        page.click("#pb-export-csv")
    text = Path(download_info.value.path()).read_text(encoding="utf-8")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["transaction_id"] for r in table] == ["AUD-TX-1042"]
    assert table[0]["affiliate_click_id"] == "their-click-id-0-0123456789"
    assert "SECRET123" not in text

    row.locator("a", has_text="AUD-TX-1042").click()
    expect(page).to_have_url(re.compile(rf"/admin/postbacks/delivery/{log_rows.pk}/change/"))
    shot("a-02-delivery-from-log")
