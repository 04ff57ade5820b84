"""Per conversion and postback, in order: a later status change waits until the earlier ones
are final (delivered, or failed for good), on both claims; unrelated deliveries never wait."""

import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from conversions import services
from conversions.models import ConversionStatusChange, StatusChangeSource
from postbacks.delivery import batch, single
from postbacks.models import Delivery, DeliveryState
from postbacks.transport.policy import HttpResult
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = pytest.mark.django_db

OK = HttpResult(status=200, body="ok")
BUSY = HttpResult(status=503, body="busy")


@pytest.fixture
def answers(monkeypatch, settings):
    """What the (mocked) receiver answers, in turn; the last one repeats."""
    settings.POSTBACK_BREAKER_THRESHOLD = 0  # these tests are about order, not the breaker
    replies = [OK]

    def send(method, url, *, headers, body=""):
        return replies.pop(0) if len(replies) > 1 else replies[0]

    monkeypatch.setattr("postbacks.transport.requests_sender.send", send)
    return replies


def convert(postback, *statuses, transaction_id="T-1"):
    """A conversion created in the first status and moved through the others, via services."""
    data = services.ConversionInput(
        affiliate=postback.affiliate,
        offer=ClickFactory(affiliate=postback.affiliate).offer,
        conversion_type=conversion_type("sale"),
        transaction_id=transaction_id,
        currency="USD",
        status=statuses[0],
    )
    conversion, _ = services.create_conversion(data, source=StatusChangeSource.API)
    for status in statuses[1:]:
        services.update_conversion(conversion, source=StatusChangeSource.API, status=status)
    return conversion


def link_existing_deliveries():
    """The data migration that links deliveries made before the status-change key."""
    module = "postbacks.migrations.0018_link_deliveries_to_status_changes"
    importlib.import_module(module).link(apps, None)


def deliveries_of(conversion) -> list[Delivery]:
    return list(conversion.deliveries.order_by("status_change_id"))


def state(delivery) -> str:
    delivery.refresh_from_db()
    return delivery.state


@pytest.fixture
def postback():
    return PostbackFactory(statuses=["pending", "approved", "rejected"])


def test_a_later_status_change_waits_for_the_earlier_on_both_claims(postback):
    pending, approved = deliveries_of(convert(postback, "pending", "approved"))

    assert single.claim(approved.pk) is None
    assert [d.pk for d in batch.claim_batch(10)] == [pending.pk]
    assert approved.waiting_for() == pending
    assert Delivery.objects.with_waiting_for().get(pk=approved.pk).waiting_for_id == pending.pk
    assert pending.waiting_for() is None


def test_the_later_one_waits_while_the_earlier_fails_twice_then_goes_on_its_success(
    postback, answers, broker_calls
):
    answers[:] = [BUSY, BUSY, OK]
    pending, approved = deliveries_of(convert(postback, "pending", "approved"))
    for _ in range(2):
        Delivery.objects.filter(pk=pending.pk).update(next_attempt_at=timezone.now())
        single.attempt_delivery(pending.pk)
        assert state(pending) == DeliveryState.RETRYING
        # Due, but the earlier one is open, though not due and held by no one.
        assert single.claim(approved.pk) is None and batch.claim_batch(10) == []
        assert approved.waiting_for() == pending

    Delivery.objects.filter(pk=pending.pk).update(next_attempt_at=timezone.now())
    single.attempt_delivery(pending.pk)

    assert state(pending) == DeliveryState.SUCCESS
    assert broker_calls[-1] == approved.pk  # queued at once, not left for the sweeper
    single.attempt_delivery(approved.pk)
    assert state(approved) == DeliveryState.SUCCESS


def test_an_earlier_one_that_fails_for_good_lets_the_later_one_go(postback, answers, broker_calls):
    answers[:] = [HttpResult(status=None, error="Destination not allowed", permanent=True), OK]
    pending, approved = deliveries_of(convert(postback, "pending", "approved"))

    single.attempt_delivery(pending.pk)

    assert state(pending) == DeliveryState.FAILED
    assert approved.waiting_for() is None and broker_calls[-1] == approved.pk
    single.attempt_delivery(approved.pk)
    assert state(approved) == DeliveryState.SUCCESS


def test_the_batch_path_queues_the_waiting_one_when_the_earlier_is_recorded(postback, broker_calls):
    pending, approved = deliveries_of(convert(postback, "pending", "approved"))
    [claimed] = batch.claim_batch(10)
    attempt, _ = single.build_attempt(claimed)

    batch.record_many([(claimed, attempt, OK)])

    assert broker_calls[-1] == approved.pk
    assert [d.pk for d in batch.claim_batch(10)] == [approved.pk]


def test_each_change_waits_for_all_earlier_ones_in_order(postback):
    conversion = convert(postback, "pending", "approved", "rejected", "approved")
    first, *later = deliveries_of(conversion)
    assert len(later) == 3
    assert [d.waiting_for() for d in later] == [first] * 3
    assert [d.pk for d in batch.claim_batch(10)] == [first.pk]


def test_other_conversions_and_postbacks_are_not_held_back(postback):
    PostbackFactory(affiliate=postback.affiliate, statuses=["approved"])
    conversion = convert(postback, "pending", "approved")
    convert(postback, "approved", transaction_id="T-2")
    waiting = conversion.deliveries.get(postback=postback, status="approved")

    claimed = {d.pk for d in batch.claim_batch(10)}

    assert Delivery.objects.count() == 5
    assert claimed == set(Delivery.objects.exclude(pk=waiting.pk).values_list("pk", flat=True))


def test_migration_links_existing_deliveries_without_sending_them_again(postback, broker_calls):
    conversion = convert(postback, "pending", "approved", "rejected", "approved")
    linked = {d.pk: d.status_change_id for d in conversion.deliveries.all()}
    # As the old key allowed: one delivery per (postback, conversion, status), made when each
    # status was first entered; the second "approved" had none.
    second_approved = linked.pop(deliveries_of(conversion)[-1].pk)
    Delivery.objects.filter(pk=deliveries_of(conversion)[-1].pk).delete()
    Delivery.objects.filter(state=DeliveryState.PENDING).update(state=DeliveryState.SUCCESS)
    Delivery.objects.update(status_change=None)
    calls_before = list(broker_calls)

    link_existing_deliveries()

    assert {d.pk: d.status_change_id for d in Delivery.objects.all()} == linked
    assert second_approved not in linked.values()
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SUCCESS}
    assert broker_calls == calls_before


def test_migration_takes_the_earliest_change_when_none_came_before_the_delivery(postback):
    conversion = convert(postback, "pending")
    [delivery] = deliveries_of(conversion)
    change = delivery.status_change
    Delivery.objects.update(status_change=None, created=change.created.replace(year=2000))

    link_existing_deliveries()

    assert Delivery.objects.get().status_change == change
    assert ConversionStatusChange.objects.count() == 1


def test_the_log_shows_a_waiting_delivery_with_a_link_to_the_earlier_one(postback, admin_client):
    pending, approved = deliveries_of(convert(postback, "pending", "approved"))

    page = admin_client.get(f"/admin/postbacks/delivery/{approved.pk}/change/")

    assert page.status_code == 200
    assert f'href="/admin/postbacks/delivery/{pending.pk}/change/"' in page.content.decode()
