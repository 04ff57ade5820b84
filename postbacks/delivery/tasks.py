"""django-q2 entry points; each is a thin wrapper over the function that does the work."""

from postbacks import stats
from postbacks.delivery import batch, queue, retention, single


def deliver(delivery_id: int) -> None:
    single.attempt_delivery(delivery_id)


def deliver_due(delivery_id: int | None = None) -> int:
    """Send this delivery and every other due one concurrently (postbacks.delivery.batch)."""
    return batch.drain()


def sweep() -> int:
    return queue.sweep()


def prune_log() -> str:
    """The daily retention run (schedule made by migration 0003); a summary for django-q2."""
    older_than = retention.cutoff()
    if older_than is None:
        return "retention off (POSTBACK_LOG_RETENTION_DAYS=0)"
    result = retention.prune(older_than)
    return f"pruned {result.deliveries} deliveries, {result.attempts} attempts"


def roll_up_stats() -> str:
    """The dashboard roll-up (schedule made by migration 0010); a summary for django-q2."""
    return f"rolled up {stats.roll_up()} hours"
