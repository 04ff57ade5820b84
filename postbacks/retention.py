"""Log retention: delete finished deliveries and their attempts past POSTBACK_LOG_RETENTION_DAYS.

Deletes in small batches of ids, each in its own short transaction, so the web app and the
workers keep writing the log meanwhile (row locks on one batch only; no table lock).
Pending and retrying deliveries are never pruned, whatever their age; conversions are kept.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Delivery, DeliveryAttempt, DeliveryState

FINISHED = (DeliveryState.SUCCESS, DeliveryState.FAILED)


@dataclass
class PruneResult:
    deliveries: int = 0
    attempts: int = 0


def prunable(older_than):
    """Finished deliveries that finished before `older_than`, oldest (lowest id) first."""
    return Delivery.objects.filter(state__in=FINISHED, finished_at__lt=older_than).order_by("pk")


def cutoff(days: int | None = None):
    """The moment before which finished deliveries go; None when retention is off (0 days)."""
    days = settings.POSTBACK_LOG_RETENTION_DAYS if days is None else days
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
            ids = list(prunable(older_than).values_list("pk", flat=True)[:batch_size])
            if not ids:
                return result
            attempts, _ = DeliveryAttempt.objects.filter(delivery_id__in=ids).delete()
            # The state test again: a retry may have reopened one since it was selected.
            deliveries, _ = Delivery.objects.filter(pk__in=ids, state__in=FINISHED).delete()
        result.attempts += attempts
        result.deliveries += deliveries
        if len(ids) < batch_size:
            return result
