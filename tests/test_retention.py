"""Log retention: prune_postback_log deletes old finished deliveries in batches, nothing else."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from conversions.models import Conversion
from postbacks.delivery import queue, retention, tasks
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState, Postback

from .factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db


def delivery(days_ago: int, state=DeliveryState.SUCCESS, attempts=1) -> Delivery:
    when = timezone.now() - timedelta(days=days_ago)
    finished = state in (DeliveryState.SUCCESS, DeliveryState.FAILED)
    row = Delivery.objects.create(
        postback=PostbackFactory(),
        conversion=ConversionFactory(),
        status="approved",
        state=state,
        created=when,
        finished_at=when if finished else None,
    )
    for number in range(1, attempts + 1):
        DeliveryAttempt.objects.create(delivery=row, number=number, url="https://t.example/")
    return row


def test_old_finished_deliveries_and_their_attempts_are_deleted(settings):
    settings.POSTBACK_LOG_RETENTION_DAYS = 90
    old_ok, old_failed = delivery(100), delivery(95, DeliveryState.FAILED, attempts=3)
    recent = delivery(10)
    call_command("prune_postback_log")
    assert list(Delivery.objects.all()) == [recent]
    assert not DeliveryAttempt.objects.filter(delivery_id__in=[old_ok.pk, old_failed.pk]).exists()
    assert DeliveryAttempt.objects.filter(delivery=recent).count() == 1


def test_unfinished_deliveries_are_kept_whatever_their_age():
    pending, retrying = delivery(400, DeliveryState.PENDING), delivery(400, DeliveryState.RETRYING)
    call_command("prune_postback_log", days=30)
    assert set(Delivery.objects.all()) == {pending, retrying}


def test_conversions_and_postbacks_are_kept():
    old = delivery(200)
    call_command("prune_postback_log", days=30)
    assert Conversion.objects.filter(pk=old.conversion_id).exists()
    assert Postback.objects.filter(pk=old.postback_id).exists()


def test_pruning_goes_in_batches_until_done():
    for _ in range(5):
        delivery(100, attempts=2)
    result = retention.prune(timezone.now() - timedelta(days=90), batch_size=2)
    assert (result.deliveries, result.attempts) == (5, 10)
    assert not Delivery.objects.exists()


def test_each_batch_deletes_at_most_batch_size_deliveries():
    for _ in range(5):
        delivery(100)
    table = connection.ops.quote_name(Delivery._meta.db_table)
    with CaptureQueriesContext(connection) as queries:
        retention.prune(timezone.now() - timedelta(days=90), batch_size=2)
    deletes = [q["sql"] for q in queries if q["sql"].startswith(f"DELETE FROM {table} ")]
    assert len(deletes) == 3  # 2 + 2 + 1


def test_dry_run_counts_and_deletes_nothing(capsys):
    delivery(100, attempts=2)
    call_command("prune_postback_log", "--dry-run", days=30)
    assert "Would delete 1 deliveries and 2 attempts" in capsys.readouterr().out
    assert Delivery.objects.count() == 1


def test_zero_days_keeps_everything(settings, capsys):
    settings.POSTBACK_LOG_RETENTION_DAYS = 0
    delivery(5000)
    call_command("prune_postback_log")
    assert "Retention is off" in capsys.readouterr().out
    assert tasks.prune_log().startswith("retention off")
    assert Delivery.objects.count() == 1


def test_bad_arguments_are_refused():
    with pytest.raises(CommandError, match="batch-size"):
        call_command("prune_postback_log", batch_size=0)
    with pytest.raises(CommandError, match="days"):
        call_command("prune_postback_log", days=-1)


def test_daily_schedule_runs_the_prune_task(settings):
    schedule = Schedule.objects.get(func="postbacks.delivery.tasks.prune_log")
    assert schedule.schedule_type == Schedule.DAILY
    settings.POSTBACK_LOG_RETENTION_DAYS = 30
    delivery(31)
    assert tasks.prune_log() == "pruned 1 deliveries, 1 attempts"
    assert not Delivery.objects.exists()


def test_a_delivery_reopened_between_select_and_delete_keeps_its_attempts(monkeypatch):
    """Retry now on an old failed delivery while the pruner holds its id: the batch must not
    delete the history of a delivery that is open again (nor the delivery)."""
    reopened = delivery(100, DeliveryState.FAILED, attempts=3)
    gone = delivery(100, attempts=2)
    original = retention.select_batch

    def select_then_retry(older_than, batch_size):
        ids = original(older_than, batch_size)
        assert reopened.pk in ids  # selected as prunable, then reopened
        queue.retry_deliveries(Delivery.objects.filter(pk=reopened.pk))
        return ids

    monkeypatch.setattr(retention, "select_batch", select_then_retry)
    result = retention.prune(timezone.now() - timedelta(days=90))
    assert (result.deliveries, result.attempts) == (1, 2)
    reopened.refresh_from_db()
    assert reopened.state == DeliveryState.RETRYING
    assert DeliveryAttempt.objects.filter(delivery=reopened).count() == 3
    assert not Delivery.objects.filter(pk=gone.pk).exists()


def test_the_batch_is_selected_for_update(monkeypatch):
    """The selected rows are locked (FOR UPDATE on PostgreSQL), so a concurrent Retry now waits
    for the batch's transaction instead of reopening a row the batch is deleting."""
    delivery(100)
    locked = []
    original = QuerySet.select_for_update

    def select_for_update(qs, *args, **kwargs):
        locked.append(qs.model)
        return original(qs, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "select_for_update", select_for_update)
    retention.prune(timezone.now() - timedelta(days=90))
    assert Delivery in locked
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        retention.select_batch(timezone.now() - timedelta(days=90), 10)
    if connection.features.has_select_for_update:
        [select] = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
        assert "FOR UPDATE" in select
