"""Standard Webhooks signatures for postbacks that have a signing secret.

Every request of a signed postback carries `webhook-id` (the delivery ID, the same on every
retry), `webhook-timestamp` (this attempt, Unix seconds) and `webhook-signature`:
`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the secret's bytes (the part
after `whsec_`, base64-decoded). For a day after a rotation the old secret signs too, as a second
space-separated entry, so a receiver can switch secrets without dropping postbacks.

A postback with custom headers (an API key, say) has them signed too: `webhook-headers` lists
their names, lower-cased and space-separated, and the signed content becomes
`"{id}.{timestamp}.{headers_sha256}.{body}"`, where headers_sha256 is the hex SHA-256 of the
lines `name:value\n`, one per listed name in that order. The digest has a fixed length, so no
byte can be moved between a header value and the body without breaking the signature. Without
custom headers nothing changes: no `webhook-headers`, the content stays `"{id}.{timestamp}.{body}"`.
"""

import base64
import hashlib
import hmac
import secrets
import time
from datetime import timedelta

from django.utils import timezone

from postbacks.models import Postback

PREFIX = "whsec_"
SECRET_BYTES = 32
ROTATION_OVERLAP = timedelta(hours=24)


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(
    secret: str, msg_id: str, timestamp: int, body: bytes, signed_headers: dict | None = None
) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    prefix = f"{msg_id}.{timestamp}."
    if signed_headers:
        prefix += headers_digest(signed_headers) + "."
    content = prefix.encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def headers_digest(signed_headers: dict) -> str:
    block = "".join(f"{name.lower()}:{value}\n" for name, value in signed_headers.items())
    return hashlib.sha256(block.encode()).hexdigest()


def headers(
    postback: Postback,
    msg_id: str,
    body: str,
    now: float | None = None,
    custom_headers: dict | None = None,
) -> dict:
    """The signature headers for one request of `postback` (none when it is not signed);
    `custom_headers`, the postback's rendered headers, are signed with the body."""
    if not postback.signing_secret:
        return {}
    timestamp = int(now if now is not None else time.time())
    data = body.encode()  # the exact bytes postbacks.transport.requests_sender sends
    signed = custom_headers or {}
    entries = [signature(postback.signing_secret, msg_id, timestamp, data, signed)]
    rotated = postback.signing_secret_rotated_at
    if postback.previous_signing_secret and rotated and timezone.now() - rotated < ROTATION_OVERLAP:
        entries.append(signature(postback.previous_signing_secret, msg_id, timestamp, data, signed))
    result = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(entries),
    }
    if signed:
        result["webhook-headers"] = " ".join(name.lower() for name in signed)
    return result


def rotate(postback: Postback) -> str:
    """Turn signing on, or replace the secret (the old one keeps signing for a day).

    Returns the new secret: show it once, it is not displayed again.
    """
    new = generate_secret()
    postback.previous_signing_secret = postback.signing_secret
    postback.signing_secret = new
    postback.signing_secret_rotated_at = timezone.now()
    postback.save(
        update_fields=["signing_secret", "previous_signing_secret", "signing_secret_rotated_at"]
    )
    return new


def turn_off(postback: Postback) -> None:
    postback.signing_secret = postback.previous_signing_secret = ""
    postback.signing_secret_rotated_at = None
    postback.save(
        update_fields=["signing_secret", "previous_signing_secret", "signing_secret_rotated_at"]
    )


def describe(postback: Postback) -> str:
    """For the admin: whether requests are signed, without revealing the secret."""
    if not postback.signing_secret:
        return "Off: requests are not signed."
    return (
        f"On: Standard Webhooks signature with the secret ending …{postback.signing_secret[-4:]}"
        f" (set {postback.signing_secret_rotated_at:%Y-%m-%d %H:%M} UTC)."
    )
