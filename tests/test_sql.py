"""insert_rows (trackdesk/sql.py) writes what bulk_create would, and the drain's postback cache
(postbacks/delivery/batch.py) sees a changed postback within its age."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from conversions.models import Conversion
from postbacks.delivery import batch
from postbacks.models import Delivery, DeliveryAttempt
from tests.factories import ClickFactory, ConversionFactory, PostbackFactory, conversion_type
from trackdesk.sql import insert_rows

pytestmark = pytest.mark.django_db


def conversion(click, transaction_id: str) -> Conversion:
    return Conversion(
        affiliate=click.affiliate,
        offer=click.offer,
        click=click,
        conversion_type=conversion_type("sale"),
        transaction_id=transaction_id,
        currency="JPY",
        payout=Decimal("123456789.123456"),
        sale_amount=Decimal("0.000001"),
        revenue=None,
        adv_s1="ü\N{EM DASH}'\"; DROP",
        customer_id="",
    )


def stored(model, pk) -> dict:
    """Every column as read back, but the key and the save's timestamps."""
    row = model.objects.get(pk=pk)
    skip = {"id", "created", "updated"}
    return {f.attname: getattr(row, f.attname) for f in model._meta.concrete_fields} | {
        name: None for name in skip
    }


def test_rows_read_back_as_bulk_create_writes_them():
    click = ClickFactory()
    ours, theirs = conversion(click, "a"), conversion(click, "b")

    assert insert_rows(Conversion, [ours]) == 1
    Conversion.objects.bulk_create([theirs])

    mine, reference = stored(Conversion, ours.pk), stored(Conversion, theirs.pk)
    assert mine.pop("transaction_id") == "a" and reference.pop("transaction_id") == "b"
    assert mine == reference
    assert mine["payout"] == Decimal("123456789.123456") and mine["revenue"] is None
    read = Conversion.objects.get(pk=ours.pk)
    assert abs(read.created - timezone.now()).total_seconds() < 60 and read.updated
    assert not ours._state.adding  # a later save() updates the row


def test_json_and_generated_keys_are_written_for_attempts():
    delivery = Delivery.objects.create(
        postback=PostbackFactory(), conversion=ConversionFactory(), status="pending"
    )
    attempt = DeliveryAttempt(
        delivery=delivery,
        number=1,
        method="GET",
        url="https://t.example/?a=1",
        request_headers={"X-Id": str(uuid.uuid4()), "Nested": ["a", 1]},
        response_headers={},
        response_body="ok",
        response_status=204,
        duration_ms=12,
    )

    insert_rows(DeliveryAttempt, [attempt])

    row = DeliveryAttempt.objects.get(delivery=delivery)
    assert row.request_headers == attempt.request_headers
    assert (row.response_status, row.duration_ms, row.number) == (204, 12, 1)
    assert abs(row.started_at - timezone.now()).total_seconds() < 60
    assert row.worker  # the model default, filled in


def due_delivery(postback) -> Delivery:
    return Delivery.objects.create(
        postback=postback, conversion=ConversionFactory(affiliate=postback.affiliate)
    )


def test_a_drain_sees_a_changed_postback_once_its_copy_is_older_than_max_age(monkeypatch):
    postback = PostbackFactory(url="https://old.example/pb")
    cache = batch.PostbackCache()
    due_delivery(postback)
    [first] = batch.claim_batch(10, postbacks=cache)
    assert first.postback.url == "https://old.example/pb"

    postback.url = "https://new.example/pb"
    postback.save()
    due_delivery(postback)
    [second] = batch.claim_batch(10, postbacks=cache)
    assert second.postback.url == "https://old.example/pb"  # within MAX_AGE: the drain's copy

    monkeypatch.setattr(batch.PostbackCache, "MAX_AGE", 0.0)
    due_delivery(postback)
    [third] = batch.claim_batch(10, postbacks=cache)
    assert third.postback.url == "https://new.example/pb"
