"""Optional Standard Webhooks signing: verified here by an independent HMAC computation."""

import base64
import hashlib
import hmac
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from postbacks import signing
from postbacks.delivery import attempt_delivery
from postbacks.http import HttpResult
from postbacks.models import Delivery, Postback
from tests.factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db


def receiver_verifies(secret: str, headers: dict, body: str) -> bool:
    """What a receiver does (the README shows the same): any v1 entry may match."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    entries = headers["webhook-signature"].split(" ")
    return any(hmac.compare_digest(e.split(",", 1)[1], expected) for e in entries)


@pytest.fixture
def sent(monkeypatch):
    calls = []

    def fake_send(method, url, *, headers, body=""):
        calls.append({"headers": headers, "body": body})
        return HttpResult(status=200)

    monkeypatch.setattr("postbacks.http.send", fake_send)
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


def test_admin_shows_a_new_secret_once(admin_client, json_postback):
    url = "/admin/postbacks/postback/"
    response = admin_client.post(
        url,
        {"action": "rotate_signing_secret", "_selected_action": [json_postback.pk]},
        follow=True,
    )
    secret = Postback.objects.get().signing_secret
    assert secret.startswith("whsec_")
    assert secret in response.content.decode()
    page = admin_client.get(f"{url}{json_postback.pk}/change/").content.decode()
    assert secret not in page and f"…{secret[-4:]}" in page
