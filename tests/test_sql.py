"""insert_rows (trackdesk/sql.py) writes what bulk_create would, and the drain's postback cache
(postbacks/delivery/batch.py) sees a changed postback within its age."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversions.models import Conversion
from postbacks.delivery import batch
from postbacks.models import Delivery, DeliveryAttempt
from tests.factories import ClickFactory, ConversionFactory, PostbackFactory, conversion_type
from trackdesk import sql
from trackdesk.sql import CompiledOnce, insert_rows, update_row, update_rows

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


@pytest.mark.parametrize("count", [1, 2, sql.COPY_FROM])  # execute, executemany, COPY (PG)
def test_rows_read_back_as_bulk_create_writes_them(count):
    click = ClickFactory()
    ours = [conversion(click, f"a{n}") for n in range(count)]
    ours[-1].adv_s2 = "tab\there, new\nline, back\\slash, \\N"  # COPY's own escapes
    theirs = conversion(click, "b")
    theirs.adv_s2 = ours[-1].adv_s2

    with CaptureQueriesContext(connection) as queries:
        assert insert_rows(Conversion, ours) == count
    Conversion.objects.bulk_create([theirs])
    copied = connection.vendor == "postgresql" and count >= sql.COPY_FROM
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 1 and statements[0].startswith("COPY") == copied

    mine, reference = stored(Conversion, ours[-1].pk), stored(Conversion, theirs.pk)
    assert mine.pop("transaction_id") == f"a{count - 1}" and reference.pop("transaction_id") == "b"
    assert mine == reference
    assert mine["payout"] == Decimal("123456789.123456") and mine["revenue"] is None
    read = Conversion.objects.get(pk=ours[0].pk)
    assert abs(read.created - timezone.now()).total_seconds() < 60 and read.updated
    assert not ours[0]._state.adding  # a later save() updates the row
    assert Conversion.objects.filter(transaction_id__startswith="a").count() == count


@pytest.mark.parametrize("count", [1, sql.COPY_FROM])
def test_json_and_generated_keys_are_written_for_attempts(count):
    delivery = Delivery.objects.create(
        postback=PostbackFactory(), conversion=ConversionFactory(), status="pending"
    )
    attempts = [
        DeliveryAttempt(delivery=delivery, number=n + 2, method="GET", url="https://t.example/")
        for n in range(count - 1)
    ]
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

    assert insert_rows(DeliveryAttempt, [attempt, *attempts]) == count

    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == count
    row = DeliveryAttempt.objects.get(delivery=delivery, number=1)
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


def test_a_query_compiled_once_finds_what_the_queryset_finds_for_other_values():
    """CompiledOnce: the claim's and the ordering's queries are compiled once per shape; later
    runs put their own times and ids in the stand-ins' places."""

    def build(now, postbacks, conversions, limit):
        rows = Delivery.objects.filter(
            next_attempt_at__lte=now, postback_id__in=postbacks, conversion_id__in=conversions
        )
        return rows.order_by("pk").values_list("pk", flat=True)[:limit]

    compiled = CompiledOnce(build)
    pairs = [PostbackFactory() for _ in range(2)]
    rows = []
    for postback in pairs:
        for conversion in [ConversionFactory(affiliate=postback.affiliate) for _ in range(2)]:
            rows.append(Delivery.objects.create(postback=postback, conversion=conversion))
    later = timezone.now() + timezone.timedelta(minutes=5)
    Delivery.objects.filter(pk=rows[0].pk).update(next_attempt_at=later)

    def run(now, postbacks, conversions, limit=10):
        sql, params = compiled.sql(
            {"limit": limit}, **dict(now=now, postbacks=postbacks, conversions=conversions)
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = [row[0] for row in cursor.fetchall()]
        expected = list(build(now, postbacks, conversions, limit))
        assert found == expected
        return found

    now, every = timezone.now(), [d.conversion_id for d in rows]
    assert run(now, [pairs[0].pk, pairs[1].pk], every) == [d.pk for d in rows[1:]]
    assert run(later, [pairs[0].pk, pairs[1].pk], every) == [d.pk for d in rows]
    assert run(later, [pairs[1].pk, pairs[0].pk], every[2:] + every[:2]) == [d.pk for d in rows]
    assert run(later, [pairs[1].pk, -1], every) == [d.pk for d in rows[2:]]
    assert run(later, [pairs[1].pk, -1], every, limit=1) == [rows[2].pk]
    # Compiled once per limit and list lengths.
    assert len(compiled.shapes) == 2
    assert run(later, [pairs[0].pk], every[:1]) == [rows[0].pk]
    assert len(compiled.shapes) == 3


def test_a_value_the_query_changes_is_refused_rather_than_put_in_the_wrong_place():
    compiled = CompiledOnce(lambda day: Delivery.objects.filter(created__date=day))

    with pytest.raises(ValueError, match="do not appear as parameters"):
        compiled.sql(day=timezone.now())


def test_objects_compiled_once_come_with_their_related_rows(django_assert_num_queries):
    compiled = CompiledOnce(
        lambda ids, until: (
            Delivery.objects.select_related("conversion__click", "postback")
            .filter(pk__in=ids, next_attempt_at__lte=until)
            .order_by("pk")
        )
    )
    postback = PostbackFactory()
    click = ClickFactory(affiliate=postback.affiliate)
    made = [
        Delivery.objects.create(
            postback=postback,
            conversion=ConversionFactory(affiliate=postback.affiliate, click=click),
        )
        for _ in range(3)
    ]
    ids, now = [d.pk for d in made], timezone.now()

    for wanted in (ids[:2], ids[1:]):
        with django_assert_num_queries(1):
            found = compiled.objects(ids=wanted, until=now)
            assert [d.conversion.click.cid for d in found] == [click.cid] * 2
            assert {d.postback.url for d in found} == {postback.url}
        expected = Delivery.objects.filter(pk__in=wanted).order_by("pk")
        assert [stored(Delivery, d.pk) for d in expected] == [
            {f.attname: getattr(d, f.attname) for f in Delivery._meta.concrete_fields}
            | {"id": None, "created": None, "updated": None}
            for d in found
        ]
        assert [d.conversion_id for d in found] == [d.conversion_id for d in expected]
    assert compiled.objects(ids=ids[:1], until=now - timezone.timedelta(days=1)) == []


def test_update_rows_writes_the_named_fields_as_save_would():
    postback = PostbackFactory()
    rows = [
        Delivery.objects.create(postback=postback, conversion=ConversionFactory()) for _ in range(3)
    ]
    later = timezone.now() + timezone.timedelta(hours=1)
    for n, row in enumerate(rows[:2]):
        row.state, row.last_status_code, row.last_error = "retrying", 500 + n, f"ü {n}"
        row.next_attempt_at, row.finished_at, row.status = later, None, "changed, not named"

    assert (
        update_rows(
            Delivery, rows[:2], ["state", "last_status_code", "last_error", "next_attempt_at"]
        )
        == 2
    )
    assert update_rows(Delivery, [rows[2]], ["attempts"]) == 1  # one row: a plain execute

    for n, row in enumerate(rows[:2]):
        row.refresh_from_db()
        assert (row.state, row.last_status_code, row.last_error) == ("retrying", 500 + n, f"ü {n}")
        assert row.next_attempt_at == later and row.status != "changed, not named"
    rows[2].refresh_from_db()
    assert rows[2].state == "pending" and rows[2].attempts == 0


def test_update_row_writes_one_object_and_returns_what_it_asks_for():
    delivery = Delivery.objects.create(
        postback=PostbackFactory(), conversion=ConversionFactory(), status="pending"
    )
    delivery.state, delivery.last_status_code, delivery.status = "failed", 404, "not named"
    table = connection.ops.quote_name(Delivery._meta.db_table)

    row = update_row(
        delivery, ["state", "last_status_code"], f"{table}.attempts + %s, {table}.status", [7]
    )

    assert row == (7, "pending")  # RETURNING reads the row as the update left it
    assert update_row(delivery, ["last_status_code"]) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_status_code, delivery.status) == (
        "failed",
        404,
        "pending",
    )
