"""The postback form in the admin: placeholder picker, live preview, test send, inline log."""

import re

import pytest
from django.utils.html import escape

from postbacks.models import Delivery, DeliveryState, Postback, TrackingSettings
from postbacks.placeholders import CATALOG
from tests.factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    postback_form_data,
)
from tests.test_delivery import FakeSeam

pytestmark = pytest.mark.django_db

PREVIEW = "/admin/postbacks/postback/preview/"
ADD = "/admin/postbacks/postback/add/"


def preview(client, **fields):
    data = {"method": "GET", "statuses": ["approved"], "scope": "global", **fields}
    response = client.post(PREVIEW, data)
    assert response.status_code == 200, response.content
    return response.json()


def text(segments) -> str:
    return "".join(s["text"] for s in segments)


def chip(html: str, token: str) -> str:
    return re.search(r'<button[^>]*data-token="' + re.escape(token) + '"[^>]*>', html)[0]


def test_form_offers_every_catalog_placeholder_as_a_chip(admin_client):
    html = admin_client.get("/admin/postbacks/postback/add/").content.decode()
    for placeholder in CATALOG:
        assert escape(placeholder.description) in chip(html, placeholder.token) or placeholder.gated
    assert "postbacks/postback_form.js" in html


def test_revenue_chips_are_disabled_with_the_reason_while_the_setting_is_off(admin_client):
    html = admin_client.get("/admin/postbacks/postback/add/").content.decode()
    assert "disabled" in chip(html, "{revenue}") and "Tracking settings" in chip(html, "{revenue}")
    assert "disabled" in chip(html, "{saleAmount}")
    assert "disabled" not in chip(html, "{payout}")

    TrackingSettings.objects.update_or_create(pk=1, defaults={"allow_revenue_parameters": True})
    html = admin_client.get("/admin/postbacks/postback/add/").content.decode()
    assert "disabled" not in chip(html, "{revenue}")


def test_preview_renders_the_sample_and_marks_unknown_placeholders(admin_client):
    answer = preview(admin_client, url="https://t.example.com/pb?c={affS1}&x={bogus}&p={payout}")
    assert answer["method"] == "GET"
    assert text(answer["url"]) == "https://t.example.com/pb?c=AFF-CLICK-123&x={bogus}&p=12.50"
    assert [s["text"] for s in answer["url"] if s["unknown"]] == ["{bogus}"]
    assert answer["unknown"] == ["{bogus}"]
    assert any("Unknown placeholder {bogus}" in message for message in answer["errors"])


def test_preview_renders_a_chosen_conversion_of_the_affiliate(admin_client):
    conversion = ConversionFactory(click__aff_s1="their-click-9", status="approved")
    other = ConversionFactory(click__aff_s1="someone-else")
    fields = {"url": "https://t.example.com/pb?c={affS1}", "affiliate": conversion.affiliate_id}

    answer = preview(admin_client, **fields, preview_conversion=str(conversion.pk))
    assert text(answer["url"]) == "https://t.example.com/pb?c=their-click-9"
    assert [c["id"] for c in answer["conversions"]] == [str(conversion.pk)]

    # Another affiliate's conversion is not offered and falls back to the sample.
    answer = preview(admin_client, **fields, preview_conversion=str(other.pk))
    assert text(answer["url"]) == "https://t.example.com/pb?c=AFF-CLICK-123"


def test_preview_shows_a_json_body_and_the_gated_placeholder_message(admin_client):
    answer = preview(
        admin_client,
        method="POST",
        url="https://t.example.com/pb",
        body_format="json",
        body_template='{"click": "{affS1}", "payout": {payout}, "revenue": {revenue}}',
    )
    assert text(answer["body"]) == '{"click": "AFF-CLICK-123", "payout": 12.50, "revenue": null}'
    assert any("{revenue} needs" in message for message in answer["errors"])


def test_preview_explains_a_url_it_cannot_render(admin_client):
    answer = preview(admin_client, url="ftp://t.example.com/{affS1}")
    assert "must start with http" in answer["error"]


def test_test_send_view_shows_request_and_response(admin_client, monkeypatch):
    monkeypatch.setattr("postbacks.transport.requests_sender.send", FakeSeam())
    postback = PostbackFactory(url="https://t.example.com/pb?c={affS1}")

    response = admin_client.post(
        f"/admin/postbacks/postback/{postback.pk}/test-send/",
        {"conversion": ""},
        HTTP_ACCEPT="application/json",
    )

    answer = response.json()
    assert answer["state"] == DeliveryState.SUCCESS
    assert answer["request"]["url"] == "https://t.example.com/pb?c=AFF-CLICK-123"
    assert answer["response"]["status"] == 200 and answer["response"]["body"] == "ok"
    test = Delivery.objects.get(is_test=True)
    assert answer["delivery_url"] == f"/admin/postbacks/delivery/{test.pk}/change/"


def test_test_send_refuses_a_conversion_of_another_affiliate(admin_client, monkeypatch):
    monkeypatch.setattr("postbacks.transport.requests_sender.send", FakeSeam())
    postback = PostbackFactory()
    response = admin_client.post(
        f"/admin/postbacks/postback/{postback.pk}/test-send/",
        {"conversion": str(ConversionFactory().pk)},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400 and "No conversion" in response.json()["error"]
    assert not Delivery.objects.exists()


def test_test_send_refuses_a_value_that_is_not_a_conversion_id(admin_client):
    postback = PostbackFactory()
    response = admin_client.post(
        f"/admin/postbacks/postback/{postback.pk}/test-send/", {"conversion": "order-1"}
    )
    assert response.status_code == 400 and response.text == "'order-1' is not a conversion ID."
    assert not Delivery.objects.exists()


def test_preview_answers_malformed_input_with_the_fields_at_fault(admin_client):
    response = admin_client.post(
        PREVIEW, {"method": "GET", "statuses": ["shipped"], "preview_conversion": "x"}
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"statuses", "preview_conversion"}


def test_test_send_action_on_the_list_uses_the_sample(admin_client, monkeypatch):
    monkeypatch.setattr("postbacks.transport.requests_sender.send", FakeSeam())
    postback = PostbackFactory()
    response = admin_client.post(
        "/admin/postbacks/postback/",
        {"action": "send_test_with_sample", "_selected_action": [postback.pk]},
        follow=True,
    )
    assert "test postback success (HTTP 200)" in response.content.decode()
    assert Delivery.objects.get().is_test


def test_postback_and_conversion_pages_list_their_latest_deliveries(admin_client):
    click = ClickFactory()
    postback = PostbackFactory(affiliate=click.affiliate)
    conversions = [ConversionFactory(click=click) for _ in range(22)]
    deliveries = [
        Delivery.objects.create(postback=postback, conversion=c, status="approved")
        for c in conversions
    ]

    page = admin_client.get(f"/admin/postbacks/postback/{postback.pk}/change/").content.decode()
    assert page.count("/admin/postbacks/delivery/") >= 20
    assert f"/admin/postbacks/delivery/{deliveries[-1].pk}/change/" in page  # newest shown
    assert f"/admin/postbacks/delivery/{deliveries[0].pk}/change/" not in page  # beyond 20
    assert "all in the postback log" in page and f"postback__id__exact={postback.pk}" in page

    # The conversion page links the deliveries of its status changes (a real change here:
    # its history lists, per change, what each postback did).
    from conversions import services
    from conversions.models import StatusChangeSource

    conversion, _ = services.create_conversion(
        services.ConversionInput(
            affiliate=click.affiliate,
            offer=click.offer,
            conversion_type=conversions[0].conversion_type,
            transaction_id="page-links-1",
            currency="USD",
            status=postback.statuses[0],
        ),
        source=StatusChangeSource.API,
    )
    delivery = conversion.deliveries.get()
    page = admin_client.get(
        f"/admin/conversions/conversion/{conversion.pk}/change/"
    ).content.decode()
    assert f"/admin/postbacks/delivery/{delivery.pk}/change/" in page
    assert f"/admin/postbacks/postback/{postback.pk}/change/" in page


# --- The form's fields: errors once, scope labels, status rows, body fields -------------------


def field_errors(html: str) -> dict[str, list[str]]:
    """{field: [messages]} from the error lists the admin renders next to each field."""
    found = re.findall(r'<ul class="errorlist" id="id_(\w+)_error">(.*?)</ul>', html, re.S)
    return {name: re.findall(r"<li>(.*?)</li>", items) for name, items in found}


def change_url(postback) -> str:
    return f"/admin/postbacks/postback/{postback.pk}/change/"


def test_an_empty_save_shows_each_error_once_next_to_its_field(admin_client):
    html = admin_client.post(ADD, {"scope": "global", "method": "GET"}).content.decode()

    errors = field_errors(html)
    assert errors["statuses"] == ["Pick at least one conversion status."]
    assert errors["url"] == ["Enter the postback URL."]
    assert errors["conversion_types"] == ["Pick at least one conversion type."]
    assert html.count("Pick at least one conversion status.") == 1
    assert html.count("Enter the postback URL.") == 1
    assert "errornote" in html and 'class="errorlist nonfield"' not in html


def test_a_bad_url_shows_one_error_on_the_url(admin_client):
    data = postback_form_data(AffiliateFactory(), url="ftp://tracker.example.com/pb")
    html = admin_client.post(ADD, data).content.decode()
    assert field_errors(html) == {"url": ["The URL must start with http:// or https://."]}


def test_the_offers_box_is_labelled_for_the_scope(admin_client):
    assert '<label for="id_offers">Excluded offers:</label>' in admin_client.get(ADD).text

    data = postback_form_data(AffiliateFactory(), scope="offers")
    html = admin_client.post(ADD, data).content.decode()
    assert '<label for="id_offers">Included offers:</label>' in html
    assert field_errors(html)["offers"] == ["Offer scope needs at least one offer."]

    postback = PostbackFactory(scope="offers", offers=[OfferFactory()])
    html = admin_client.get(change_url(postback)).content.decode()
    assert '<label for="id_offers">Included offers:</label>' in html
    assert "fires for these offers only" in html
    # Both wordings travel with the page for the switch in the browser.
    assert "Excluded offers" in html and "data-scope-texts" in html


def test_status_values_are_saved_per_picked_status(admin_client):
    data = postback_form_data(
        AffiliateFactory(),
        statuses=["approved", "rejected"],
        status_value_approved="1",
        status_value_rejected=" 2 ",
        status_value_pending="never sent: pending is not picked",
    )
    response = admin_client.post(ADD, data)
    assert response.status_code == 302, field_errors(response.content.decode())
    assert Postback.objects.get().status_map == {"approved": "1", "rejected": "2"}


def test_status_value_rows_show_for_picked_statuses_only(admin_client):
    postback = PostbackFactory(statuses=["approved"], status_map={"approved": "A"})
    html = admin_client.get(change_url(postback)).content.decode()

    approved = re.search(r'<input[^>]*name="status_value_approved"[^>]*>', html)[0]
    assert 'type="text"' in approved and 'value="A"' in approved
    pending = re.search(r'<input[^>]*name="status_value_pending"[^>]*>', html)[0]
    assert 'type="hidden"' in pending
    assert "form-row hidden field-status_value_pending" in html
    assert "form-row field-status_value_approved" in html
    assert 'name="status_map"' not in html  # no raw JSON box


def test_a_too_long_status_value_is_an_error_on_its_row(admin_client):
    data = postback_form_data(AffiliateFactory(), status_value_approved="x" * 65)
    html = admin_client.post(ADD, data).content.decode()
    assert field_errors(html) == {"status_value_approved": ["At most 64 characters."]}


def test_body_format_has_no_blank_choice_and_defaults_to_form(admin_client):
    html = admin_client.get(ADD).content.decode()
    assert re.findall(r'name="body_format" value="(\w*)"', html) == ["form", "json"]
    assert "---------" not in re.search(r'id="id_body_format".*?</div>\s*</div>', html, re.S)[0]

    data = postback_form_data(AffiliateFactory())
    del data["body_format"]  # a GET form: the browser sends no body fields
    assert admin_client.post(ADD, data).status_code == 302
    assert Postback.objects.get().body_format == "form"


def test_paused_reason_shows_only_while_paused(admin_client):
    assert "Paused reason" not in admin_client.get(ADD).text
    running = PostbackFactory()
    assert "Paused reason" not in admin_client.get(change_url(running)).text
    paused = PostbackFactory(active=False, paused_reason="Paused automatically: 410 Gone")
    assert "Paused automatically: 410 Gone" in admin_client.get(change_url(paused)).text


def test_preview_sends_the_status_value_rows(admin_client):
    answer = preview(
        admin_client,
        url="https://t.example.com/pb?s={status}",
        statuses=["approved"],
        status_value_approved="1",
    )
    assert text(answer["url"]) == "https://t.example.com/pb?s=1"


def test_preview_lists_conversions_with_amounts_in_their_currencys_precision(admin_client):
    conversion = ConversionFactory(payout="1250.000000", currency="JPY")
    answer = preview(
        admin_client, url="https://t.example.com/pb", affiliate=conversion.affiliate_id
    )
    assert answer["conversions"][0]["label"].endswith("payout 1,250 JPY")


def test_conversion_amounts_show_in_the_currencys_precision(admin_client, support_client):
    usd = ConversionFactory(payout="4.200000", currency="USD")
    ConversionFactory(payout="1250.000000", currency="JPY")
    html = admin_client.get("/admin/conversions/conversion/").content.decode()
    assert ">4.20<" in html and ">1,250<" in html and "4.200000" not in html

    html = admin_client.get(f"/admin/conversions/conversion/{usd.pk}/change/").text
    assert 'value="4.20"' in html  # the input starts in the currency's precision

    html = support_client.get(f"/admin/conversions/conversion/{usd.pk}/change/").text
    assert "4.20 USD" in html and "4.200000" not in html


def test_view_only_users_open_a_postback_with_its_status_values(support_client):
    postback = PostbackFactory(statuses=["approved"], status_map={"approved": "A1"})
    response = support_client.get(change_url(postback))
    assert response.status_code == 200
    assert "A1" in response.text and 'name="status_value_approved"' not in response.text
