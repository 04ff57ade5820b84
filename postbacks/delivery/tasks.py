"""django-q2 entry points, referenced by dotted path; each is a thin wrapper over the function
that does the work. The schedules (sweep, prune_log, roll_up_stats, check_alerts) are made by
migrations."""

from postbacks import alerts, stats
from postbacks.delivery import batch, queue, retention, single


def deliver(delivery_id: int) -> None:
    """One attempt of one delivery (concurrent dispatch switched off)."""
    single.attempt_delivery(delivery_id)


def deliver_due(queued_at: float | None = None) -> int:
    """Send every due delivery concurrently (postbacks/delivery/batch.py).

    It first lets one more such task be sent (queue.send_to_broker sends at most one pending
    per worker where the broker can tell). `queued_at`, which an earlier version sent, is not
    used; a message an older version queued with a delivery id passes that id here, and is
    run the same. One queued as postbacks.tasks.deliver_due fails in the worker, and django-q2
    records a failed task without stopping the worker; the delivery stays pending, so the
    sweeper enqueues it again after POSTBACK_STALE_AFTER.
    """
    queue.task_started()
    return batch.drain()


def sweep() -> int:
    return queue.sweep()


def prune_log() -> str:
    """The daily retention run; a summary for django-q2."""
    older_than = retention.cutoff()
    if older_than is None:
        return "retention off (POSTBACK_LOG_RETENTION_DAYS=0)"
    result = retention.prune(older_than)
    return f"pruned {result.deliveries} deliveries, {result.attempts} attempts"


def roll_up_stats() -> str:
    """The dashboard roll-up, every few minutes; a summary for django-q2."""
    return f"rolled up {stats.roll_up()} hours"


def check_alerts() -> str:
    """Every minute: alerts for endpoints that keep failing, and e-mails of new alerts."""
    return alerts.check()
