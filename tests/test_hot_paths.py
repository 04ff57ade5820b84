"""The hot paths stay cheap: statements per conversion ingested and per delivery sent.

Counts are of statements that do work (savepoints left out: the test's own transaction turns
each transaction into one). Each test fails when a change adds a look-up per postback, per
delivery, or an update that changes nothing.
"""

import concurrent.futures
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from postbacks.delivery import batch, queue, single
from postbacks.matching import create_deliveries, not_fired_reasons
from postbacks.models import Delivery, DeliveryState, Postback, Scope, TrackingSettings
from postbacks.transport.policy import HttpResult
from tests.factories import (
    AffiliateFactory,
    ClickFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    conversion_type,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversions/"
# Click, conversion, status history, deliveries; the token's user and permissions, the click's
# offer and affiliate, the conversion type and the payout rule are remembered (trackdesk/memo.py).
SINGLE_POST_STATEMENTS = 4


def statements(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
    ]


def post_conversion(api_client, click, transaction_id):
    body = {"cid": click.cid, "conversion_type": "sale", "transaction_id": transaction_id}
    with CaptureQueriesContext(connection) as queries:
        response = api_client.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    return response, statements(queries)


@pytest.mark.parametrize("postbacks", [1, 25])
def test_a_single_post_takes_the_same_few_statements_however_many_postbacks_match(
    api_client, broker_calls, postbacks
):
    click = ClickFactory()
    for _ in range(postbacks):
        PostbackFactory(affiliate=click.affiliate)
    post_conversion(api_client, click, "warm-up")  # the token's first use, caches

    response, sql = post_conversion(api_client, click, "order-1")

    assert len(sql) <= SINGLE_POST_STATEMENTS, "\n".join(sql)
    made = Delivery.objects.filter(conversion_id=response.json()["id"])
    assert made.count() == postbacks
    assert not any(s.startswith("SELECT") and "postbacks_" in s for s in sql)  # matched in SQL


def test_queueing_new_deliveries_on_redis_touches_no_database(monkeypatch, broker_calls):
    """The Redis broker writes nothing to the database: no (empty) transaction around it. The
    ORM broker's task rows still commit in one transaction."""
    monkeypatch.setattr(queue, "broker_writes_to_database", lambda: False)
    with CaptureQueriesContext(connection) as queries:
        assert queue.enqueue([7], marked=True) == 1
    assert queries.captured_queries == [] and broker_calls == [7]


def test_the_201_is_the_conversion_as_read_back(api_client):
    click = ClickFactory()
    PostbackFactory(affiliate=click.affiliate)
    created, _ = post_conversion(api_client, click, "order-2")

    read = api_client.get(f"{URL}{created.json()['id']}/")

    assert created.json() == read.json()
    assert [h["to_status"] for h in created.json()["status_history"]] == ["pending"]


def test_deliveries_written_in_sql_have_their_own_uuid4_and_model_defaults():
    conversion = ConversionFactory(status="pending")
    for _ in range(3):
        PostbackFactory(affiliate=conversion.affiliate)
    change = conversion.status_changes.create(to_status="pending", source="api")

    made = Delivery.objects.filter(pk__in=create_deliveries(conversion, change))

    uids = {d.uid for d in made}
    assert len(uids) == 3 and all(u.version == 4 for u in uids)
    assert all(isinstance(u, uuid.UUID) for u in uids)
    assert {(d.state, d.attempts, d.is_test, d.status) for d in made} == {
        (DeliveryState.PENDING, 0, False, "pending")
    }
    assert all(d.enqueued_at and d.created and d.next_attempt_at for d in made)


def test_the_sql_match_fires_exactly_the_postbacks_the_rules_for_rows_in_hand_fire():
    """create_deliveries matches in SQL, the bulk path and the log's "why not sent" in Python
    (matching.not_fired_reasons): both must say the same for every kind of configuration."""
    click = ClickFactory()
    affiliate, offer, other_offer = click.affiliate, click.offer, OfferFactory()
    sale, lead = conversion_type("sale"), conversion_type("lead")
    variants = [
        dict(),
        dict(active=False),
        dict(statuses=["approved"]),
        dict(types=[lead]),
        dict(types=[lead, sale]),
        dict(scope=Scope.GLOBAL, offers=[offer]),
        dict(scope=Scope.GLOBAL, offers=[other_offer]),
        dict(scope=Scope.OFFERS, offers=[offer]),
        dict(scope=Scope.OFFERS, offers=[other_offer]),
        dict(scope=Scope.OFFERS, offers=[]),
    ]
    for variant in variants:
        types = variant.pop("types", [sale])
        PostbackFactory(affiliate=affiliate, conversion_types=types, **variant)
    PostbackFactory()  # another affiliate's
    conversion = ConversionFactory(click=click, conversion_type=sale, status="pending")
    change = conversion.status_changes.create(to_status="pending", source="api")

    fired = set(
        Delivery.objects.filter(pk__in=create_deliveries(conversion, change)).values_list(
            "postback_id", flat=True
        )
    )

    expected = {
        p.pk
        for p in Postback.objects.filter(affiliate=affiliate)
        if not not_fired_reasons(p, conversion, "pending")
    }
    assert fired == expected and len(fired) == 4


def test_a_click_is_one_look_up_and_one_insert(client):
    offer, affiliate = OfferFactory(), AffiliateFactory()
    url = reverse("track-click", args=[offer.pk, affiliate.pk])

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)

    assert response.status_code == 302
    assert len(statements(queries)) == 2, "\n".join(statements(queries))
    affiliate.active = False
    affiliate.save()
    assert client.get(url).status_code == 404


# --- dispatch ------------------------------------------------------------------------------


@pytest.fixture
def seam(monkeypatch):
    calls = []

    def send(method, url, *, headers, body=""):
        calls.append(url)
        return HttpResult(status=200, body="ok")

    monkeypatch.setattr("postbacks.transport.requests_sender.send", send)
    return calls


def test_the_trickle_path_takes_at_most_five_statements_per_delivery(seam, settings):
    settings.POSTBACK_CONCURRENT_DISPATCH = False
    TrackingSettings.load()  # the one row, there from the first use on
    conversion = ConversionFactory()
    postback = PostbackFactory(affiliate=conversion.affiliate)
    change = conversion.status_changes.create(to_status="pending", source="api")
    (delivery_id,) = create_deliveries(conversion, change)

    with CaptureQueriesContext(connection) as queries:
        single.attempt_delivery(delivery_id)

    sql = statements(queries)
    assert len(sql) <= 5, "\n".join(sql)
    assert not [s for s in sql if s.startswith("UPDATE") and "endpointhealth" in s]
    assert Delivery.objects.get(pk=delivery_id).state == DeliveryState.SUCCESS
    assert len(seam) == 1 and postback.url.split("?")[0] in seam[0]


def test_the_trickle_path_still_sends_the_next_status_change_when_one_finishes(seam, broker_calls):
    conversion = ConversionFactory()
    PostbackFactory(affiliate=conversion.affiliate, statuses=["pending", "approved"])
    first = conversion.status_changes.create(to_status="pending", source="api")
    later = conversion.status_changes.create(to_status="approved", source="api")
    (earlier_id,) = create_deliveries(conversion, first)
    (later_id,) = create_deliveries(conversion, later)
    assert single.attempt_delivery(later_id) is None  # waits for the earlier one

    single.attempt_delivery(earlier_id)

    assert broker_calls == [later_id]  # queued by whoever finished the earlier one


class AnsweringSender:
    """Answers every request at once with a 200 (the concurrent sender's submit_many)."""

    def submit_many(self, requests):
        answers = []
        for _ in requests:
            answer = concurrent.futures.Future()
            answer.set_result(HttpResult(status=200, body="ok"))
            answers.append(answer)
        return answers


def test_a_concurrent_drain_of_one_delivery_looks_at_its_endpoint_once(broker_calls):
    """The default path on a trickle (one conversion per task): claim, read, one look at the
    endpoint's health, the attempt, the outcome, the look for a delivery that waited. A success
    to an endpoint that look found healthy has no streak to end, so it reads nothing more."""
    TrackingSettings.load()
    conversion = ConversionFactory()
    PostbackFactory(affiliate=conversion.affiliate)
    for status in ("pending", "approved"):  # the first one warms the process's caches
        change = conversion.status_changes.create(to_status=status, source="api")
        (delivery_id,) = create_deliveries(conversion, change)
        with CaptureQueriesContext(connection) as queries:
            batch.drain(sender=AnsweringSender())
        assert Delivery.objects.get(pk=delivery_id).state == DeliveryState.SUCCESS

    sql = statements(queries)
    assert len(sql) <= 6, "\n".join(sql)
    assert len([s for s in sql if "endpointhealth" in s]) == 1, "\n".join(sql)


def claim_and_record(count: int) -> tuple[list[str], list[str]]:
    """The statements of claiming `count` deliveries (to two endpoints) and of recording them."""
    conversion = ConversionFactory()
    urls = ["https://a.example.com/pb?c={affS1}", "https://b.example.com/pb?c={affS1}"]
    for url in urls:
        PostbackFactory(affiliate=conversion.affiliate, url=url)
    for _ in range(count // 2):
        change = conversion.status_changes.create(to_status="pending", source="api")
        create_deliveries(conversion, change)
    Delivery.objects.update(status_change=None)  # no order between them: all due at once

    with CaptureQueriesContext(connection) as claiming:
        claimed = batch.claim_batch(500)
    finished = []
    for delivery in claimed:
        attempt, _ = single.build_attempt(delivery, allow_revenue=False)
        finished.append((delivery, attempt, HttpResult(status=200, body="ok")))
    with CaptureQueriesContext(connection) as recording:
        batch.record_many(finished)

    assert len(claimed) == count
    assert Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == count
    return statements(claiming), statements(recording)


def test_a_batch_is_claimed_and_recorded_in_the_same_statements_for_few_or_many():
    few = claim_and_record(2)
    Delivery.objects.all().delete()
    many = claim_and_record(60)

    assert [len(s) for s in many] == [len(s) for s in few]


def test_no_delivery_index_is_written_twice():
    """Every delivery insert writes every index of the table (a conversion event writes one row
    per matching postback), so no full index may be the leading columns of another: a plain
    foreign-key index on postback or conversion beside (postback, -created) and (conversion,
    -created) cost each insert two more B-tree writes for nothing. Partial indexes (open rows,
    resends, the once-only key) hold other rows and are left out."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, Delivery._meta.db_table)
    partial = {
        item.name
        for item in [*Delivery._meta.indexes, *Delivery._meta.constraints]
        if getattr(item, "condition", None) is not None
    }
    full = {
        name: tuple(about["columns"])
        for name, about in found.items()
        if about["index"] and not about["primary_key"] and name not in partial
    }
    assert ("postback_id",) not in full.values() and ("conversion_id",) not in full.values()
    redundant = [
        (short, long)
        for short, columns in full.items()
        for long, others in full.items()
        if short != long and others[: len(columns)] == columns
    ]
    assert redundant == []
    assert ("postback_id", "created") in full.values()
    assert ("conversion_id", "created") in full.values()
