"""Custom request headers per postback (an API key a tracker requires): validated, rendered,
sent by both senders, masked wherever someone without the right to change the postback looks."""

import logging

import pytest
from django.core.exceptions import ValidationError

from demo.sink import Sink
from postbacks.admin.forms import parse_header_lines
from postbacks.delivery import batch
from postbacks.delivery.single import attempt_delivery, build_attempt
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState, Postback
from postbacks.preview import live_preview
from postbacks.rendering import RenderError, render_request
from postbacks.validation import validate_postback_config
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    PostbackFactory,
    postback_form_data,
    postback_values,
)
from trackdesk.masking import MASK, MaskSecretsFilter

pytestmark = pytest.mark.django_db

API_KEY = "k3y-s3cr3t-value"


def header(name, value):
    return {"name": name, "value": value}


def header_errors(*headers) -> list[str]:
    try:
        validate_postback_config(postback_values(headers=list(headers)), allow_revenue=False)
    except ValidationError as exc:
        return exc.message_dict.get("headers", [])
    return []


# --- validation -------------------------------------------------------------------------------


def test_an_api_key_header_with_a_placeholder_is_valid():
    assert header_errors(header("X-Api-Key", API_KEY), header("X-Click", "{affS1}")) == []


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "keep-alive",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Content-Type",
        "User-Agent",
        "X-Postback-Id",
        "X-Postback-Attempt",
        "webhook-signature",
        "Webhook-Id",
    ],
)
def test_headers_the_connection_or_trackdesk_sets_are_refused(name):
    assert "cannot be set on a postback" in header_errors(header(name, "x"))[0]


@pytest.mark.parametrize("name", ["X Api Key", "X-Api-Key:", "Ключ", "", "X" * 65])
def test_a_name_that_is_not_a_token_is_refused(name):
    assert header_errors(header(name, "x"))


def test_the_same_name_twice_is_refused_whatever_its_case():
    errors = header_errors(header("X-Api-Key", "a"), header("x-api-key", "b"))
    assert errors == ["The header x-api-key is listed twice; keep one."]


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\x00b", "caf\u00e9", ""])
def test_a_value_with_line_breaks_control_or_non_ascii_characters_or_none_is_refused(value):
    assert header_errors(header("X-Api-Key", value))


def test_values_longer_than_1024_characters_are_refused():
    assert header_errors(header("X-Api-Key", "a" * 1024)) == []
    assert "longer than 1024" in header_errors(header("X-Api-Key", "a" * 1025))[0]


def test_at_most_20_headers():
    assert header_errors(*(header(f"X-H{i}", "v") for i in range(20))) == []
    assert header_errors(*(header(f"X-H{i}", "v") for i in range(21))) == [
        "At most 20 headers; remove 1."
    ]


def test_unknown_and_gated_placeholders_in_a_value_are_refused():
    assert "Unknown placeholder {bogus}" in header_errors(header("X-A", "{bogus}"))[0]
    assert "Tracking settings" in header_errors(header("X-A", "{revenue}"))[0]


@pytest.mark.parametrize("headers", [{"X-Api-Key": "a"}, [["X-Api-Key", "a"]], "X-Api-Key: a"])
def test_a_shape_other_than_a_list_of_name_value_objects_is_refused(headers):
    errors = validate_errors(headers)
    assert errors == ['Headers are a list of {"name": "X-Api-Key", "value": "..."} objects.']


def validate_errors(headers):
    try:
        validate_postback_config(postback_values(headers=headers), allow_revenue=False)
    except ValidationError as exc:
        return exc.message_dict["headers"]
    return []


# --- rendering --------------------------------------------------------------------------------


def test_values_are_rendered_with_placeholders_and_not_url_encoded():
    postback = PostbackFactory(
        headers=[header("X-Api-Key", API_KEY), header("X-Sub", "{affS1} & {status}")]
    )
    conversion = ConversionFactory(affiliate=postback.affiliate, click__aff_s1="a/b c")
    request = render_request(postback, conversion, status="approved", allow_revenue=False)
    assert request.headers == {"X-Api-Key": API_KEY, "X-Sub": "a/b c & approved"}


def test_a_rendered_value_with_a_line_break_is_not_sent():
    postback = PostbackFactory(headers=[header("X-Sub", "{affS1}")])
    conversion = ConversionFactory(affiliate=postback.affiliate, click__aff_s1="a\r\nX-Evil: 1")
    with pytest.raises(RenderError, match="X-Sub would hold a line break"):
        render_request(postback, conversion, status="approved", allow_revenue=False)


def test_a_missing_value_renders_empty_and_surrounding_spaces_are_trimmed():
    postback = PostbackFactory(headers=[header("X-Sub", " {affS2} ")])
    conversion = ConversionFactory(affiliate=postback.affiliate)
    request = render_request(postback, conversion, status="approved", allow_revenue=False)
    assert request.headers == {"X-Sub": ""}


def test_a_delivery_whose_header_cannot_render_fails_with_the_reason(monkeypatch):
    monkeypatch.setattr("postbacks.transport.requests_sender.send", pytest.fail)
    postback = PostbackFactory(headers=[header("X-Sub", "{affS1}")])
    conversion = ConversionFactory(affiliate=postback.affiliate, click__aff_s1="a\nb")
    delivery = Delivery.objects.create(postback=postback, conversion=conversion, status="pending")
    attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    assert "X-Sub would hold a line break" in delivery.last_error


# --- both senders, against the local sink ------------------------------------------------------


def test_both_senders_send_the_headers(send, settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as sink:
        postback = PostbackFactory(
            url=sink.url + "/pb?c={affS1}",
            headers=[header("X-Api-Key", API_KEY), header("X-Click", "{affS1}")],
        )
        click = ClickFactory(affiliate=postback.affiliate, aff_s1="click-7")
        conversion = ConversionFactory(affiliate=postback.affiliate, click=click)
        delivery = Delivery.objects.create(
            postback=postback, conversion=conversion, status="pending"
        )
        attempt, refused = build_attempt(delivery, allow_revenue=False)
        assert refused is None
        result = send(attempt.method, attempt.url, headers=attempt.request_headers)
        assert result.status == 200, result.error
        received = sink.requests[0].headers
    assert received["X-Api-Key"] == API_KEY
    assert received["X-Click"] == "click-7"


def test_the_batch_path_sends_the_headers(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as sink:
        postback = PostbackFactory(url=sink.url + "/pb", headers=[header("X-Api-Key", API_KEY)])
        conversion = ConversionFactory(affiliate=postback.affiliate)
        Delivery.objects.create(postback=postback, conversion=conversion, status="pending")
        assert batch.drain() == 1
        assert sink.requests[0].headers["X-Api-Key"] == API_KEY
    assert DeliveryAttempt.objects.get().request_headers["X-Api-Key"] == API_KEY


# --- masking ----------------------------------------------------------------------------------


def deliver_with_key(monkeypatch) -> Delivery:
    from postbacks.transport.policy import HttpResult

    monkeypatch.setattr(
        "postbacks.transport.requests_sender.send",
        lambda *a, **k: HttpResult(status=200),
    )
    postback = PostbackFactory(headers=[header("X-Api-Key", API_KEY), header("X-Net", "n1")])
    conversion = ConversionFactory(affiliate=postback.affiliate)
    delivery = Delivery.objects.create(postback=postback, conversion=conversion, status="pending")
    attempt_delivery(delivery.pk)
    return delivery


def test_the_delivery_log_shows_the_headers_with_the_key_masked(support_client, monkeypatch):
    delivery = deliver_with_key(monkeypatch)
    page = support_client.get(f"/admin/postbacks/delivery/{delivery.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    # The attempt's request headers, one table row each (the delivery page's timeline).
    assert f'<th scope="row">X-Api-Key</th><td>{MASK}</td>' in text
    assert '<th scope="row">X-Net</th><td>n1</td>' in text
    assert API_KEY not in text


def test_the_postback_page_masks_the_key_for_view_only_users(support_client, admin_client):
    postback = PostbackFactory(headers=[header("X-Api-Key", API_KEY), header("X-Net", "n1")])
    url = f"/admin/postbacks/postback/{postback.pk}/change/"
    page = support_client.get(url).content.decode()
    assert "X-Api-Key: ********" in page and "X-Net: n1" in page
    assert API_KEY not in page
    assert f"X-Api-Key: {API_KEY}" in admin_client.get(url).content.decode()  # to edit it


def test_the_api_masks_the_key_for_callers_without_change_permission(
    api_client, api_user, anon_client, django_user_model
):
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token

    postback = PostbackFactory(headers=[header("X-Api-Key", API_KEY), header("X-Net", "n1")])
    url = f"/api/v1/postbacks/{postback.pk}/"
    assert api_client.get(url).json()["headers"][0]["value"] == API_KEY

    viewer = django_user_model.objects.create_user("viewer", password="not-used")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_postback"))
    anon_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=viewer).key}")
    shown = anon_client.get(url).json()["headers"]
    assert shown == [header("X-Api-Key", MASK), header("X-Net", "n1")]


def test_with_masking_off_the_api_and_the_admin_both_show_the_key(
    anon_client, support_client, django_user_model, settings
):
    """POSTBACK_MASK_SECRETS=false is one switch for both views, not for the admin only."""
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token

    settings.POSTBACK_MASK_SECRETS = False
    postback = PostbackFactory(headers=[header("X-Api-Key", API_KEY)])
    viewer = django_user_model.objects.create_user("viewer", password="not-used")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_postback"))
    anon_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=viewer).key}")

    api = anon_client.get(f"/api/v1/postbacks/{postback.pk}/").json()["headers"]
    page = support_client.get(f"/admin/postbacks/postback/{postback.pk}/change/")

    assert api == [header("X-Api-Key", API_KEY)]
    assert f"X-Api-Key: {API_KEY}" in page.content.decode()


def test_log_lines_mask_secret_header_values():
    record = logging.LogRecord(
        "x", logging.INFO, "", 0, "sent %s", ({"X-Api-Key": API_KEY, "X-Net": "n1"},), None
    )
    MaskSecretsFilter().filter(record)
    assert API_KEY not in record.getMessage() and "'X-Net': 'n1'" in record.getMessage()
    line = logging.LogRecord("x", logging.INFO, "", 0, f"GET /pb\nX-Api-Key: {API_KEY}", (), None)
    MaskSecretsFilter().filter(line)
    assert line.getMessage() == f"GET /pb\nX-Api-Key: {MASK}"


# --- admin form and preview -------------------------------------------------------------------


def test_the_form_takes_one_header_per_line(admin_client):
    affiliate = PostbackFactory().affiliate
    data = postback_form_data(affiliate, headers=f"X-Api-Key: {API_KEY}\n\nX-Click: {{affS1}}\n")
    response = admin_client.post("/admin/postbacks/postback/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Postback.objects.get(name="Network X").headers == [
        header("X-Api-Key", API_KEY),
        header("X-Click", "{affS1}"),
    ]


def test_the_form_explains_a_line_without_a_colon_and_a_refused_name(admin_client):
    affiliate = PostbackFactory().affiliate
    form_errors = []
    for text in ("X-Api-Key abc", "Host: evil.example"):
        data = postback_form_data(affiliate, headers=text)
        response = admin_client.post("/admin/postbacks/postback/add/", data)
        form_errors.append(response.context["adminform"].form.errors["headers"][0])
    assert form_errors[0].startswith("Line 1: write one header per line as Name: value")
    assert "cannot be set on a postback" in form_errors[1]


def test_parse_header_lines_keeps_colons_in_values():
    assert parse_header_lines("Authorization: Basic a:b") == [header("Authorization", "Basic a:b")]


def test_the_preview_shows_the_rendered_headers():
    answer = live_preview(
        postback_values(headers=[header("X-Click", "{affS1}")]), allow_revenue=False
    )
    assert answer["errors"] == []
    assert answer["headers"][0][0] == "X-Click" and answer["headers"][0][1]
