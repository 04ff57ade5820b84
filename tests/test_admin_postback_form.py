"""The postback form in the admin: placeholder picker, live preview, test send, inline log."""

import re

import pytest
from django.utils.html import escape

from postbacks.models import Delivery, DeliveryState, TrackingSettings
from postbacks.placeholders import CATALOG
from tests.factories import ClickFactory, ConversionFactory, PostbackFactory
from tests.test_delivery import FakeSeam

pytestmark = pytest.mark.django_db

PREVIEW = "/admin/postbacks/postback/preview/"


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
    assert "all in the tracking log" in page and f"postback__id__exact={postback.pk}" in page

    conversion = conversions[0]
    page = admin_client.get(
        f"/admin/conversions/conversion/{conversion.pk}/change/"
    ).content.decode()
    assert f"/admin/postbacks/delivery/{deliveries[0].pk}/change/" in page
    assert f"/admin/postbacks/postback/{postback.pk}/change/" in page
