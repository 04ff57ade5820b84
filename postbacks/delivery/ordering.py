"""Per conversion, in order: a delivery that waits for an earlier status change goes as soon as
that one is final.

The claims (postbacks/delivery/single.py claim, postbacks/delivery/batch.py claim_batch) skip a
delivery while an earlier status change of its conversion has an open delivery to the same
postback (DeliveryQuerySet.not_waiting). Its own task has then run and found nothing to do, so
whoever finishes the earlier delivery queues the waiting one; should that fail, the sweeper
queues it later.
"""

import logging

from django.db import DatabaseError, connection
from django.utils import timezone

from postbacks.delivery import queue
from postbacks.models import Delivery
from trackdesk.sql import CompiledOnce

log = logging.getLogger(__name__)


def release_next(deliveries: list[Delivery]) -> int:
    """Queue the deliveries that waited for any of these, now final ones; returns how many."""
    pairs = {(d.postback_id, d.conversion_id) for d in deliveries if _ends_a_wait(d)}
    if not pairs:
        return 0
    conversions = sorted({conversion for _, conversion in pairs})
    sql, params = _READY.sql(now=timezone.now(), conversions=conversions)
    to_uuid = Delivery._meta.get_field("conversion").target_field.to_python
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [
                pk
                for pk, postback, conversion in cursor
                if (postback, to_uuid(conversion)) in pairs
            ]
    except DatabaseError:  # the outcome is recorded; the sweeper queues the next one later
        log.exception("Looking for deliveries that waited for %d finished ones failed", len(pairs))
        return 0
    return queue.enqueue(ids)


def _ready(now, conversions):
    """Deliveries of these conversions that may go now (due, unclaimed, waiting for nothing)."""
    ready = Delivery.objects.due(now).unclaimed(now).not_waiting()
    return ready.filter(conversion_id__in=conversions).values_list(
        "pk", "postback_id", "conversion_id"
    )


# Compiled once per number of conversions (one per delivery on a trickle).
_READY = CompiledOnce(_ready)


def _ends_a_wait(delivery: Delivery) -> bool:
    return delivery.is_finished and delivery.status_change_id is not None
