"""A postback with an API key header: a real qcluster sends it to the sink, signed with it."""

import base64
import hashlib
import hmac

import pytest

from postbacks.models import Delivery, DeliveryState
from postbacks.transport import signing
from tests.e2e.conftest import wait_until
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_worker_sends_the_api_key_header_signed(qcluster, sink, api_client):
    click = ClickFactory(aff_s1="click-42")
    postback = PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?clickid={affS1}",
        statuses=["pending"],
        conversion_types=[conversion_type("sale")],
        headers=[
            {"name": "X-Api-Key", "value": "tracker-key-123"},
            {"name": "X-Click", "value": "{affS1}"},
        ],
    )
    secret = signing.rotate(postback)

    created = api_client.post(
        "/api/v1/conversions/",
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": "o-1", "payout": "5"},
        format="json",
    )
    assert created.status_code == 201, created.content
    received = sink.wait_for(1)
    assert len(received) == 1
    headers = received[0].headers
    assert headers["X-Api-Key"] == "tracker-key-123"
    assert headers["X-Click"] == "click-42"
    assert headers["webhook-headers"] == "x-api-key x-click"

    # The receiver's check, as docs/security-and-reliability.md describes it.
    lowered = {name.lower(): value for name, value in headers.items()}
    block = "".join(f"{name}:{lowered[name]}\n" for name in lowered["webhook-headers"].split())
    content = (
        f"{headers['webhook-id']}.{headers['webhook-timestamp']}."
        f"{hashlib.sha256(block.encode()).hexdigest()}.".encode()
        + received[0].body.encode()
    )
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == expected

    delivered = wait_until(
        lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).exists(), timeout=30
    )
    assert delivered
