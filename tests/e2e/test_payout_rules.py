"""A conversion that arrives without a payout sends its offer's payout rule in `{payout}`, through
a real qcluster to a real sink."""

from decimal import Decimal

import pytest

from conversions.models import PayoutRule
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_conversions_without_payout_send_the_rule_payout(qcluster, sink, api_client, anon_client):
    click = ClickFactory()
    sale, lead = conversion_type("sale"), conversion_type("lead")
    PayoutRule.objects.create(
        offer=click.offer, conversion_type=sale, kind="fixed", amount=Decimal("7.5"), currency="USD"
    )
    PayoutRule.objects.create(
        offer=click.offer, conversion_type=lead, kind="percent", amount=Decimal("12.5")
    )
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?txn={transactionId}&payout={payout}&currency={currency}",
        statuses=["pending"],
        conversion_types=[sale, lead],
    )

    created = api_client.post(
        "/api/v1/conversions/",
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": "api-1", "currency": "USD"},
        format="json",
    )
    assert created.status_code == 201, created.content
    pixel = anon_client.get(
        "/tracking/conversion/v1",
        {
            "cid": click.cid,
            "token": click.offer.pixel_secret,
            "conversionTypeCode": "lead",
            "transactionId": "pixel-1",
            "amount.value": "79.99",
            "currency": "USD",
        },
    )
    assert pixel.status_code == 201, pixel.content

    received = sink.wait_for(2)
    sent = {r.query["txn"]: (r.query["payout"], r.query["currency"]) for r in received}
    assert sent == {"api-1": ("7.50", "USD"), "pixel-1": ("10.00", "USD")}  # 9.99875 → 10.00
