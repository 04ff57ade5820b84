"""Secrets in the delivery log and in log lines: masked on display, stored rows kept intact."""

import logging

import pytest

from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from trackdesk.masking import MASK, MaskSecretsFilter, mask_headers, mask_text

from .factories import ConversionFactory, PostbackFactory

SENT = "https://tracker.example.com/pb?clickid=abc123&token=S3cr3t&api_key=K3y&amount=10"


def test_secret_named_query_values_are_masked():
    assert mask_text(SENT) == (
        f"https://tracker.example.com/pb?clickid=abc123&token={MASK}&api_key={MASK}&amount=10"
    )


@pytest.mark.parametrize(
    "text",
    [
        "/p?apiKey=v1&sig=v2&signature=v3&password=v4&pass=v5",
        "/p?access_token=v1&client_secret=v2&X-Auth-Token=v3&auth=v4&accesstoken=v5",
    ],
)
def test_secret_name_spellings_are_recognised(text):
    masked = mask_text(text)
    assert not any(f"v{i}" in masked for i in range(1, 6)), masked


def test_ordinary_parameters_and_empty_secrets_are_left_alone():
    text = "/p?clickid=1&monkey=2&design=3&keyword=4&sub_id=5&token="
    assert mask_text(text) == text


def test_form_bodies_json_bodies_and_error_texts_are_masked():
    assert mask_text("clickid=1&secret=x") == f"clickid=1&secret={MASK}"
    assert mask_text('{"token": "x", "clickid": "1"}') == f'{{"token": "{MASK}", "clickid": "1"}}'
    error = "Max retries exceeded with url: /pb?auth=Zm9v (Caused by ...)"
    assert "Zm9v" not in mask_text(error)


@pytest.mark.parametrize(
    ("body", "masked"),
    [
        ('{"key": 55555}', f'{{"key": "{MASK}"}}'),
        ('{"apiKey":-1.5e3,"n":5}', f'{{"apiKey":"{MASK}","n":5}}'),
        ('{"token": true, "ok": false}', f'{{"token": "{MASK}", "ok": false}}'),
        ('{"secret": [1, "a]b"], "id": 7}', f'{{"secret": "{MASK}", "id": 7}}'),
        ('{"auth": {"user": "u", "n": 1}}', f'{{"auth": "{MASK}"}}'),
    ],
)
def test_non_string_json_values_under_secret_names_are_masked(body, masked):
    assert mask_text(body) == masked


def test_null_under_a_secret_name_is_left_alone():
    assert mask_text('{"password": null}') == '{"password": null}'


def test_secret_headers_are_masked():
    headers = {"X-Api-Key": "k", "Authorization": "Bearer t", "Content-Type": "text/plain"}
    assert mask_headers(headers) == {
        "X-Api-Key": MASK,
        "Authorization": MASK,
        "Content-Type": "text/plain",
    }


@pytest.fixture
def logged_delivery(db):
    delivery = Delivery.objects.create(
        postback=PostbackFactory(),
        conversion=ConversionFactory(),
        status="approved",
        state=DeliveryState.FAILED,
        last_error="HTTP 500 from /pb?token=S3cr3t",
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, number=1, method="GET", url=SENT, error="timeout on ?sig=S1g"
    )
    return delivery


def test_admin_log_view_masks_secrets_but_the_row_keeps_them(admin_client, logged_delivery):
    page = admin_client.get(f"/admin/postbacks/delivery/{logged_delivery.pk}/change/")
    content = page.content.decode()
    assert page.status_code == 200
    assert "clickid=abc123&amp;token=********" in content
    for secret in ("S3cr3t", "K3y", "S1g"):
        assert secret not in content
    assert DeliveryAttempt.objects.get().url == SENT


def test_deliveries_api_masks_secrets(api_client, logged_delivery):
    body = api_client.get(f"/api/v1/deliveries/{logged_delivery.pk}/").content.decode()
    assert "clickid=abc123" in body
    for secret in ("S3cr3t", "K3y", "S1g"):
        assert secret not in body


def test_masking_can_be_turned_off_for_support(api_client, logged_delivery, settings):
    settings.POSTBACK_MASK_SECRETS = False
    body = api_client.get(f"/api/v1/deliveries/{logged_delivery.pk}/").json()
    assert body["attempt_log"][0]["url"] == SENT


def test_log_filter_masks_the_pixel_token_in_request_lines():
    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        __file__,
        1,
        '"%s" %s %s',
        ("GET /tracking/conversion/v1?cid=abc&token=PixelSecret HTTP/1.1", "201", "90"),
        None,
    )
    assert MaskSecretsFilter().filter(record)
    assert record.getMessage() == (
        f'"GET /tracking/conversion/v1?cid=abc&token={MASK} HTTP/1.1" 201 90'
    )


def test_console_log_and_request_lines_go_through_the_mask():
    handlers = logging.getLogger().handlers + logging.getLogger("django.server").handlers
    console = [handler for handler in handlers if handler.name == "console"]
    assert len(console) == 2
    for handler in console:
        assert any(isinstance(f, MaskSecretsFilter) for f in handler.filters), handler
