"""Log retention: delete finished deliveries and their attempts past POSTBACK_LOG_RETENTION_DAYS.

Deletes in small batches of ids, each in its own short transaction, so the web app and the
workers keep writing the log meanwhile (row locks on one batch only; no table lock).
Pending and retrying deliveries are never pruned, whatever their age; conversions are kept.

A delivery reopened by "Retry now" while a batch is being pruned keeps its attempts: the batch
locks its rows when it selects them (so a concurrent retry waits for the batch, then finds the
row gone or untouched) and deletes attempts and deliveries only where the delivery is still
finished before the cutoff, tested again in the deleting statements themselves.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from postbacks import conf
from postbacks.models import FINISHED_STATES, Delivery, DeliveryAttempt


@dataclass
class PruneResult:
    deliveries: int = 0
    attempts: int = 0


def _finished_before(older_than, prefix: str = "") -> Q:
    return Q(**{f"{prefix}state__in": FINISHED_STATES, f"{prefix}finished_at__lt": older_than})


def prunable(older_than):
    """Finished deliveries that finished before `older_than`, oldest (lowest id) first."""
    return Delivery.objects.filter(_finished_before(older_than)).order_by("pk")


def select_batch(older_than, batch_size: int) -> list[int]:
    """The next batch's ids, locked until the transaction ends (FOR UPDATE where the database
    has it; SQLite's IMMEDIATE transactions already serialise writers)."""
    return list(prunable(older_than).select_for_update().values_list("pk", flat=True)[:batch_size])


def cutoff(days: int | None = None):
    """The moment before which finished deliveries go; None when retention is off (0 days)."""
    days = conf.log_retention_days() if days is None else days
    return timezone.now() - timedelta(days=days) if days > 0 else None


def prune(older_than, *, batch_size: int = 1000, dry_run: bool = False) -> PruneResult:
    """Delete finished deliveries older than `older_than` and their attempts, batch by batch."""
    if dry_run:
        ids = prunable(older_than).values("pk")
        return PruneResult(
            deliveries=prunable(older_than).count(),
            attempts=DeliveryAttempt.objects.filter(delivery__in=ids).count(),
        )
    result = PruneResult()
    while True:
        with transaction.atomic():
            ids = select_batch(older_than, batch_size)
            if not ids:
                return result
            # The state and age test again, in the deletes: a retry may have reopened one
            # since it was selected; its attempts are its history and stay.
            attempts, _ = DeliveryAttempt.objects.filter(
                _finished_before(older_than, "delivery__"), delivery_id__in=ids
            ).delete()
            _, deleted = Delivery.objects.filter(_finished_before(older_than), pk__in=ids).delete()
            deliveries = deleted.get(Delivery._meta.label, 0)
        result.attempts += attempts
        result.deliveries += deliveries
        if len(ids) < batch_size:
            return result
