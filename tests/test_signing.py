"""Optional Standard Webhooks signing: verified here by an independent HMAC computation."""

import base64
import hashlib
import hmac
import json
import time
from concurrent.futures import Future
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.utils import timezone

from postbacks.delivery import batch
from postbacks.delivery.single import attempt_delivery
from postbacks.models import Delivery, DeliveryAttempt, Postback
from postbacks.transport import signing
from postbacks.transport.policy import HttpResult
from tests.factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db


def receiver_verifies(secret: str, headers: dict, body: str) -> bool:
    """What a receiver does (as in docs/security-and-reliability.md): any v1 entry may match."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}."
    names = headers.get("webhook-headers", "").split()
    if names:  # the postback's own headers: "name:value\n" per listed name, hashed
        received = {name.lower(): value for name, value in headers.items()}
        block = "".join(f"{name}:{received[name]}\n" for name in names)
        signed += hashlib.sha256(block.encode()).hexdigest() + "."
    signed = signed.encode() + body.encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    entries = headers["webhook-signature"].split(" ")
    return any(hmac.compare_digest(e.split(",", 1)[1], expected) for e in entries)


@pytest.fixture
def sent(monkeypatch):
    calls = []

    def fake_send(method, url, *, headers, body=""):
        calls.append({"headers": headers, "body": body})
        return HttpResult(status=200)

    monkeypatch.setattr("postbacks.transport.requests_sender.send", fake_send)
    return calls


def deliver(postback) -> Delivery:
    conversion = ConversionFactory(affiliate=postback.affiliate, click__aff_s1="abc")
    delivery = Delivery.objects.create(postback=postback, conversion=conversion, status="pending")
    attempt_delivery(delivery.pk)
    return delivery


@pytest.fixture
def json_postback():
    return PostbackFactory(
        url="https://tracker.example.com/pb",
        method="POST",
        body_format="json",
        body_template='{"click": "{affS1}", "payout": {payout}, "note": "é"}',
    )


def test_secret_is_whsec_and_32_random_bytes():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.generate_secret() != secret


def test_signed_postback_carries_standard_webhooks_headers(sent, json_postback):
    secret = signing.rotate(json_postback)
    delivery = deliver(json_postback)
    headers, body = sent[0]["headers"], sent[0]["body"]
    assert headers["webhook-id"] == str(delivery.uid) == headers["X-Postback-Id"]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert receiver_verifies(secret, headers, body)
    assert not receiver_verifies(signing.generate_secret(), headers, body)
    assert not receiver_verifies(secret, headers, body.replace("abc", "abd"))


def test_get_postback_signs_an_empty_body(sent):
    postback = PostbackFactory(url="https://tracker.example.com/pb?c={affS1}")
    secret = signing.rotate(postback)
    deliver(postback)
    assert receiver_verifies(secret, sent[0]["headers"], "")


def test_unsigned_postback_sends_no_signature_headers(sent, json_postback):
    deliver(json_postback)
    assert not {"webhook-id", "webhook-signature"} & set(sent[0]["headers"])


def test_custom_headers_are_signed_with_the_body(sent, json_postback):
    json_postback.headers = [
        {"name": "X-Api-Key", "value": "key-1"},
        {"name": "X-Click", "value": "{affS1}"},
    ]
    json_postback.save()
    secret = signing.rotate(json_postback)
    deliver(json_postback)
    headers, body = sent[0]["headers"], sent[0]["body"]
    assert headers["webhook-headers"] == "x-api-key x-click"
    assert receiver_verifies(secret, headers, body)
    assert not receiver_verifies(secret, {**headers, "X-Api-Key": "key-2"}, body)
    assert not receiver_verifies(secret, {**headers, "webhook-headers": "x-click"}, body)
    # A byte moved from the body into a header value (both unsigned parts) breaks it too.
    moved = {**headers, "X-Click": headers["X-Click"] + body[:1]}
    assert not receiver_verifies(secret, moved, body[1:])


def test_without_custom_headers_the_signed_content_stays_id_timestamp_body(sent, json_postback):
    secret = signing.rotate(json_postback)
    deliver(json_postback)
    headers, body = sent[0]["headers"], sent[0]["body"]
    assert "webhook-headers" not in headers
    assert headers["webhook-signature"] == signing.signature(
        secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body.encode()
    )


def test_after_rotation_both_secrets_sign_for_a_day(sent, json_postback):
    old = signing.rotate(json_postback)
    new = signing.rotate(json_postback)
    deliver(json_postback)
    headers, body = sent[0]["headers"], sent[0]["body"]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert receiver_verifies(old, headers, body) and receiver_verifies(new, headers, body)

    Postback.objects.update(signing_secret_rotated_at=timezone.now() - timedelta(hours=25))
    deliver(Postback.objects.get())
    headers, body = sent[1]["headers"], sent[1]["body"]
    assert receiver_verifies(new, headers, body) and not receiver_verifies(old, headers, body)


def test_turning_signing_off_forgets_the_secrets(sent, json_postback):
    signing.rotate(json_postback)
    signing.turn_off(json_postback)
    deliver(Postback.objects.get())
    assert "webhook-signature" not in sent[0]["headers"]


def rotate_in_admin(client, *postbacks):
    return client.post(
        "/admin/postbacks/postback/",
        {"action": "rotate_signing_secret", "_selected_action": [p.pk for p in postbacks]},
    )


def test_admin_shows_a_new_secret_once_on_the_page_itself(admin_client, json_postback):
    other = PostbackFactory(name="Second")
    response = rotate_in_admin(admin_client, json_postback, other)
    secrets = [p.signing_secret for p in Postback.objects.order_by("pk")]
    assert all(s.startswith("whsec_") for s in secrets)
    # Nowhere the browser keeps it: no cookie (messages, session) and no queued message.
    # (the messages cookie is signed and often compressed: decode it to look inside)
    cookie = response.cookies.get("messages")
    in_cookie = CookieStorage(response.wsgi_request)._decode(cookie.value) if cookie else []
    for secret in secrets:
        assert secret not in response.get("Set-Cookie", "")
        assert all(secret not in morsel.value for morsel in response.cookies.values())
        assert all(secret not in str(m) for m in in_cookie or [])
        assert all(secret not in str(m) for m in get_messages(response.wsgi_request))
        assert all(secret not in str(v) for v in admin_client.session.values())
    html = response.content.decode()
    assert response.status_code == 200  # the page itself, not a redirect to a message
    assert all(secret in html for secret in secrets)
    assert "no-store" in response["Cache-Control"]
    # Loading the admin again never shows it in full.
    changelist = admin_client.get("/admin/postbacks/postback/").content.decode()
    page = admin_client.get(f"/admin/postbacks/postback/{json_postback.pk}/change/")
    page = page.content.decode()
    for secret in secrets:
        assert secret not in changelist and secret not in page
    assert f"…{secrets[0][-4:]}" in page


def test_rotating_needs_the_change_permission(support_client, json_postback):
    response = rotate_in_admin(support_client, json_postback)
    assert "whsec_" not in response.content.decode()  # the action is not offered to them
    assert Postback.objects.get().signing_secret == ""


def test_the_secret_is_never_logged_with_the_attempt_only_the_signature(sent, json_postback):
    old = signing.rotate(json_postback)
    secret = signing.rotate(json_postback)  # both sign for a day: neither may be logged
    delivery = deliver(json_postback)
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.request_headers["webhook-signature"] == sent[0]["headers"]["webhook-signature"]
    assert_no_secret_in(attempt, old, secret)


def test_concurrent_dispatch_logs_no_secret_either(json_postback):
    secret = signing.rotate(json_postback)
    conversion = ConversionFactory(affiliate=json_postback.affiliate, click__aff_s1="abc")
    delivery = Delivery.objects.create(
        postback=json_postback, conversion=conversion, status="pending"
    )
    sender = AnsweringSender()
    assert batch.drain(sender=sender) == 1
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    headers = attempt.request_headers
    assert headers["webhook-signature"] == sender.calls[0]["webhook-signature"]
    assert receiver_verifies(secret, headers, attempt.request_body)
    assert_no_secret_in(attempt, secret)


class AnsweringSender:
    """Stands in for http_async.ConcurrentSender: records the headers, answers 200 at once."""

    def __init__(self):
        self.calls = []

    def submit(self, method, url, headers, body=""):
        self.calls.append(headers)
        future = Future()
        future.set_result(HttpResult(status=200))
        return future

    def close(self):
        pass


def assert_no_secret_in(attempt, *secrets):
    logged = json.dumps([attempt.request_headers, attempt.url, attempt.request_body, attempt.error])
    assert "webhook-signature" in attempt.request_headers
    for secret in secrets:
        raw = secret.removeprefix("whsec_")
        assert secret not in logged and raw not in logged
        assert raw not in json.dumps(list(Delivery.objects.values()), default=str)
