"""A manager fills the postback form for GET and POST, switches the scope, fills the status
values, saves with an error, fixes it and finds everything kept (issue 12)."""

import pytest
from playwright.sync_api import expect

from postbacks.models import Postback
from tests.browser.test_admin_in_browser import choose_affiliate, log_in, manager  # noqa: F401
from tests.factories import AffiliateFactory, OfferFactory, conversion_type

pytestmark = pytest.mark.django_db(transaction=True)

BAD_URL = "ftp://tracker.example.com/pb?c={affS1}"
GOOD_URL = "https://tracker.example.com/pb?c={affS1}&s={status}"
BAD_URL_MESSAGE = "The URL must start with http:// or https://."


def row(page, field):
    return page.locator(f".form-row.field-{field}")


def test_manager_fills_the_form_for_get_and_post_and_fixes_an_error(
    page,
    shot,
    live_server,
    manager,  # noqa: F811
):
    AffiliateFactory(name="Acme Partners")
    OfferFactory(name="Spring Shop")
    conversion_type("sale")  # seeded by a migration; an earlier live-server test flushed it
    log_in(page, live_server.url)

    # An empty save: each error once, next to its field (not again in the preview).
    page.goto(f"{live_server.url}/admin/postbacks/postback/add/")
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-statuses .errorlist li")).to_have_count(1)
    expect(page.get_by_text("Pick at least one conversion status.")).to_have_count(1)
    expect(page.locator(".field-url .errorlist li")).to_have_text("Enter the postback URL.")
    expect(page.locator("#pb-request")).to_contain_text("errors marked in the form")
    expect(page.get_by_text("Enter the postback URL.")).to_have_count(1)
    shot("C-00-postback-form-empty-save")

    page.goto(f"{live_server.url}/admin/postbacks/postback/add/")
    page.fill("#id_name", "Acme S2S")
    choose_affiliate(page, "Acme Partners")
    page.select_option("#id_conversion_types_from", label="Sale")
    page.click("#id_conversion_types_add")
    expect(page.locator(".field-paused_reason")).to_have_count(0)

    # GET: no body fields; POST: they appear.
    expect(row(page, "body_template")).to_be_hidden()
    expect(row(page, "body_format")).to_be_hidden()
    page.check("input[name=method][value=POST]")
    expect(row(page, "body_template")).to_be_visible()
    expect(page.locator("input[name=body_format]:checked")).to_have_value("form")
    page.check("input[name=method][value=GET]")
    expect(row(page, "body_template")).to_be_hidden()
    page.check("input[name=method][value=POST]")

    # The offers box says what it means for the scope.
    offers_label = page.locator(".field-offers label[for=id_offers]")
    expect(offers_label).to_have_text("Excluded offers:")
    expect(page.locator("#id_offers_to_title label")).to_contain_text("Excluded offers")
    page.check("input[name=scope][value=offers]")
    expect(offers_label).to_have_text("Included offers:")
    expect(page.locator("#id_offers_helptext")).to_contain_text("for these offers only")
    expect(page.locator("#id_offers_to_title label")).to_contain_text("Included offers")
    page.select_option("#id_offers_from", label="Spring Shop")
    page.click("#id_offers_add")

    # One value row per ticked status.
    expect(row(page, "status_value_approved")).to_be_hidden()
    page.check("input[name=statuses][value=approved]")
    page.check("input[name=statuses][value=rejected]")
    expect(row(page, "status_value_approved")).to_be_visible()
    expect(row(page, "status_value_pending")).to_be_hidden()
    page.fill("#id_status_value_approved", "1")
    page.fill("#id_status_value_rejected", "2")

    page.fill("#id_url", BAD_URL)
    expect(page.locator("#pb-problems")).to_contain_text("must start with http")
    expect(page.locator("#pb-request")).to_have_text(
        "No preview until the problems below are fixed."
    )
    shot("C-01-postback-form-post-offers")

    # Save with a bad URL: one error, next to the URL field, and not again in the preview.
    page.click("input[name=_continue]")
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".errorlist li")).to_have_count(1)
    expect(page.locator(".field-url .errorlist li")).to_have_text(BAD_URL_MESSAGE)
    expect(page.locator("#pb-request")).to_have_text(
        "No preview until the errors marked in the form are fixed."
    )
    expect(page.locator("#pb-problems li")).to_have_count(0)
    expect(page.get_by_text("must start with http")).to_have_count(1)
    # What was typed is still there, arranged for POST and offer scope.
    expect(row(page, "body_template")).to_be_visible()
    expect(offers_label).to_have_text("Included offers:")
    expect(page.locator("#id_status_value_rejected")).to_have_value("2")
    shot("C-02-postback-form-error")

    page.fill("#id_url", GOOD_URL)
    expect(page.locator("#pb-request")).to_contain_text("s=1")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    postback = Postback.objects.get()
    assert postback.method == "POST" and postback.scope == "offers"
    assert postback.status_map == {"approved": "1", "rejected": "2"}
    assert postback.body_format == "form"

    page.goto(f"{live_server.url}/admin/postbacks/postback/{postback.pk}/change/")
    expect(page.locator("#id_url")).to_have_value(GOOD_URL)
    expect(page.locator("input[name=method][value=POST]")).to_be_checked()
    expect(row(page, "body_template")).to_be_visible()
    expect(offers_label).to_have_text("Included offers:")
    expect(page.locator("#id_offers_to option")).to_have_text(["Spring Shop"])
    expect(page.locator("#id_status_value_approved")).to_have_value("1")
    expect(row(page, "status_value_pending")).to_be_hidden()
    expect(page.locator(".field-paused_reason")).to_have_count(0)
    shot("C-03-postback-form-saved")
