"""A conversion posted through the API reaches a real sink once, sent by a real qcluster."""

from decimal import Decimal

import pytest

from postbacks.models import Delivery, DeliveryState
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_created_then_approved_conversion_sends_each_postback_once(qcluster, sink, api_client):
    click = ClickFactory(aff_s1="partner-click-42")
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?clickid={affS1}&payout={payout}&status={status}&id={deliveryId}",
        statuses=["pending", "approved"],
        conversion_types=[conversion_type("sale")],
    )

    created = api_client.post(
        "/api/v1/conversions/",
        {
            "cid": click.cid,
            "conversion_type": "sale",
            "transaction_id": "order-1",
            "payout": "12.5",
            "currency": "USD",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    first = sink.wait_for(1)
    assert len(first) == 1
    pending = Delivery.objects.get(status="pending")
    assert (first[0].method, first[0].path, first[0].body) == (
        "GET",
        f"/pb?clickid=partner-click-42&payout=12.50&status=pending&id={pending.uid}",
        "",
    )
    assert first[0].headers["X-Postback-Id"] == str(pending.uid)
    assert first[0].headers["User-Agent"].startswith("TrackdeskPostbacks/")

    # Retrying the same API call must not send again.
    again = api_client.post(
        "/api/v1/conversions/",
        {
            "cid": click.cid,
            "conversion_type": "sale",
            "transaction_id": "order-1",
            "payout": "12.5",
        },
        format="json",
    )
    assert again.status_code == 200

    patched = api_client.patch(
        f"/api/v1/conversions/{created.json()['id']}/", {"status": "approved"}, format="json"
    )
    assert patched.status_code == 200, patched.content
    both = sink.wait_for(2)
    approved = Delivery.objects.get(status="approved")
    assert (both[1].method, both[1].path) == (
        "GET",
        f"/pb?clickid=partner-click-42&payout=12.50&status=approved&id={approved.uid}",
    )
    assert both[1].headers["X-Postback-Id"] == str(approved.uid) != str(pending.uid)

    sink.wait_for(3, timeout=2)  # nothing more arrives
    assert len(sink.requests) == 2
    deliveries = Delivery.objects.order_by("created")
    assert [d.state for d in deliveries] == [DeliveryState.SUCCESS] * 2
    assert all(d.attempt_log.count() == 1 for d in deliveries)
    assert Decimal(first[0].query["payout"]) == Decimal("12.5")


def test_a_change_back_to_approved_is_sent_again(qcluster, sink, api_client):
    click = ClickFactory()
    PostbackFactory(
        affiliate=click.affiliate,
        url=sink.url + "/pb?status={status}",
        statuses=["approved", "rejected"],
        conversion_types=[conversion_type("sale")],
    )
    created = api_client.post(
        "/api/v1/conversions/",
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": "order-2"},
        format="json",
    )
    url = f"/api/v1/conversions/{created.json()['id']}/"
    for status in ("approved", "rejected", "approved", "approved"):  # the last one: a re-save
        assert api_client.patch(url, {"status": status}, format="json").status_code == 200

    sink.wait_for(3)
    sink.wait_for(4, timeout=2)  # nothing more arrives
    assert [r.query["status"] for r in sink.requests] == ["approved", "rejected", "approved"]
