"""The postback list, a read-only postback, the delete page and the assistant's last step, in a
real browser at 1280 px (each `shot` asserts the page needs no horizontal scrolling)."""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from postbacks.models import Delivery, DeliveryState, Postback
from tests.factories import (
    AffiliateFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-browser-test-password"
SECRET_URL = "https://trk.acme-partners.example/pb?clickid={affS1}&token=SECRET123&status={status}"
REDTRACK_URL = "https://acme.rdtk.io/postback?clickid=REPLACE&sum=OPTIONAL&status=OPTIONAL"


@pytest.fixture
def people(django_user_model):
    for name, role in [("maria", "managers"), ("sam", "support")]:
        django_user_model.objects.create_user(name, password=PASSWORD)
        call_command("assign_role", name, role, stdout=io.StringIO())
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def postbacks():
    """Two postbacks of one affiliate: one with a day of traffic (3 delivered, 1 failed)."""
    for code in ("sale", "lead", "deposit"):
        conversion_type(code)
    affiliate = AffiliateFactory(name="Acme Partners")
    offers = [OfferFactory(name=f"Spring offer with a long name {n}") for n in range(6)]
    busy = PostbackFactory(
        name="Acme S2S",
        affiliate=affiliate,
        url=SECRET_URL,
        scope="offers",
        offers=offers,
        statuses=["pending", "approved"],
    )
    PostbackFactory(name="Acme leads", affiliate=affiliate)
    now = timezone.now()
    for n, state in enumerate([DeliveryState.SUCCESS] * 3 + [DeliveryState.FAILED]):
        when = now - timedelta(minutes=50 - n)
        Delivery.objects.create(
            postback=busy,
            conversion=ConversionFactory(affiliate=affiliate, click__affiliate=affiliate),
            status="approved",
            state=state,
            attempts=1,
            created=when,
            finished_at=when,
        )
    return busy


def log_in(page, base_url, username):
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_be_visible()


def test_manager_reads_the_postback_list_and_deactivates_in_bulk(
    page, shot, live_server, people, postbacks
):
    base = live_server.url
    log_in(page, base, "maria")
    expect(page.locator("#user-tools")).not_to_contain_text("View site")

    page.goto(f"{base}/admin/postbacks/postback/")
    busy = page.locator("#result_list tbody tr", has_text="Acme S2S")
    expect(busy.locator("td.field-endpoint")).to_have_text("trk.acme-partners.example GET")
    expect(busy.locator("td.field-scope_label")).to_have_text("6 offers")
    expect(busy.locator("td.field-state")).to_have_text("Active")
    expect(busy.locator("td.field-success_24h")).to_have_text("75.0 % of 4")
    expect(busy.locator("td.field-last_delivery")).to_contain_text("Failed")
    # The scope's offers are on hover, not wrapped onto six lines.
    label = busy.locator("td.field-scope_label span")
    expect(label).to_have_attribute("title", re.compile(r"^Spring offer with a long name 0, "))
    assert label.evaluate("span => span.getClientRects().length") == 1  # one line
    # Every column shows: the table needs no scrolling of its own either.
    assert page.evaluate(
        "() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth <= r.clientWidth; }"
    )
    shot("D-01-postback-list")

    page.check("#result_list tbody tr input.action-select >> nth=0")
    page.check("#result_list tbody tr input.action-select >> nth=1")
    page.select_option("select[name=action]", "deactivate")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Deactivated 2 postbacks.")
    expect(page.locator("td.field-state", has_text="Inactive")).to_have_count(2)
    assert not Postback.objects.filter(active=True).exists()


def test_support_sees_a_postback_read_only_with_its_secret_masked(
    page, shot, live_server, people, postbacks
):
    base = live_server.url
    log_in(page, base, "sam")

    page.goto(f"{base}/admin/postbacks/postback/{postbacks.pk}/change/")
    content = page.locator("#content-main")
    expect(content.locator(".field-masked_url")).to_contain_text("token=********")
    expect(content).not_to_contain_text("SECRET123")
    expect(content.locator(".field-statuses_shown")).to_contain_text("Pending, Approved")
    expect(content).not_to_contain_text('["pending", "approved"]')
    shot("D-02-postback-read-only")

    page.goto(f"{base}/admin/postbacks/postback/")
    expect(page.locator("select[name=action] option[value=deactivate]")).to_have_count(0)


def test_delete_page_says_deactivate_instead_and_does_it(
    page, shot, live_server, people, postbacks
):
    base = live_server.url
    log_in(page, base, "root")

    page.goto(f"{base}/admin/postbacks/postback/{postbacks.pk}/delete/")
    refusal = page.locator("#deactivate-instead")
    expect(refusal).to_contain_text("4 deliveries")
    expect(refusal).to_contain_text("Deactivate it instead.")
    expect(page.locator("#content")).not_to_contain_text("doesn't have permission")
    shot("D-03-delete-refused")

    page.click("#deactivate-instead input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("Deactivated 1 postback.")
    expect(page).to_have_url(f"{base}/admin/postbacks/postback/{postbacks.pk}/change/")
    postbacks.refresh_from_db()
    assert postbacks.active is False


def test_assistant_creates_once_then_offers_the_existing_postback(
    page, shot, live_server, people, postbacks
):
    base = live_server.url
    affiliate = postbacks.affiliate
    log_in(page, base, "maria")

    def analyse():
        page.goto(f"{base}/admin/postbacks/postback/assistant/")
        page.select_option("#id_affiliate", str(affiliate.pk))
        page.fill("#id_url", REDTRACK_URL)
        page.click("input[value=Analyse]")

    analyse()
    form = page.locator("#assistant-create")
    expect(form.locator(".field-scope")).to_be_visible()
    expect(form.locator("#id_offers_from")).to_be_visible()  # the admin's two-box selector
    expect(form.locator(".field-currency select")).to_have_value("")
    # RedTrack's URL here sends no conversion type: only sale is proposed, not all types.
    expect(form.locator("input[name=conversion_types]:checked")).to_have_count(1)
    expect(form.locator("input[name=conversion_types][value=sale]")).to_be_checked()
    expect(form.locator(".field-offers label[for=id_offers]")).to_have_text("Excluded offers:")
    form.locator("input[name=scope][value=offers]").check()
    expect(form.locator(".field-offers label[for=id_offers]")).to_have_text("Included offers:")
    page.select_option("#id_offers_from", label="Spring offer with a long name 2")
    page.click("#id_offers_add")
    form.locator(".field-currency select").select_option("EUR")
    shot("D-04-assistant-last-step")

    form.locator("input[name=create]").click()
    expect(page.locator(".messagelist")).to_contain_text("Created the postback")
    created = Postback.objects.get(url__startswith="https://acme.rdtk.io/")
    assert (created.scope, created.currency, created.active) == ("offers", "EUR", False)
    assert [offer.name for offer in created.offers.all()] == ["Spring offer with a long name 2"]

    analyse()
    existing = page.locator("#assistant-existing")
    expect(existing).to_contain_text("already has this postback")
    expect(page.locator("input[name=create]")).to_have_count(0)
    shot("D-05-assistant-existing")
    existing.locator("a.button").click()
    expect(page).to_have_url(f"{base}/admin/postbacks/postback/{created.pk}/change/")
    assert Postback.objects.filter(url=created.url).count() == 1
