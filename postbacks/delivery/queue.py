"""Putting deliveries on the queue: after commit, on retry, and from the sweeper.

The queue only says "attempt delivery N now" (or, with concurrent dispatch, "send what is due");
our Delivery rows are the record. Enqueueing twice is harmless because a worker claims a
delivery before sending (postbacks/delivery/single.py, postbacks/delivery/batch.py).
"""

import contextlib
import functools
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.tasks import async_task

from postbacks import conf
from postbacks.models import Delivery, DeliveryState

SWEEP_BATCH = 1000

log = logging.getLogger(__name__)


@functools.cache
def broker():
    """One broker per process. django-q2 builds a new one per task otherwise: a new Redis
    connection each time, and on the ORM broker a check that closes the database connection."""
    return get_broker()


def send_to_broker(delivery_id: int) -> None:
    """The one call that talks to django-q2 (tests replace it).

    Concurrent dispatch queues a task that sends whatever is due, this delivery among it, so
    the task needs no delivery; the id still names the task in django-q2's admin. One such task
    pending per worker is enough: on a broker that can tell (trackdesk.broker.WakingRedis
    .coalesced), no more are sent until one starts.
    """
    if conf.concurrent_dispatch():
        func, args = "deliver_due", ()
        coalesced = getattr(broker(), "coalesced", None)
        target = coalesced() if coalesced else broker()
    else:
        func, args, target = "deliver", (delivery_id,), broker()
    async_task(
        f"postbacks.delivery.tasks.{func}",
        *args,
        task_name=f"delivery-{delivery_id}",
        broker=target,
    )


def task_started() -> None:
    """A task that sends whatever is due starts (before it claims): one more may be sent.

    Should the broker not answer, the task drains anyway: the count of pending tasks expires
    by itself (trackdesk.broker.WakingRedis.PENDING_FOR)."""
    started = getattr(broker(), "task_started", None)
    if started is None:
        return
    try:
        started()
    except Exception as exc:
        log.warning("Could not tell the broker a task started (%s: %s)", type(exc).__name__, exc)


class Waker:
    """Tells a drain, in the middle of its task, that a task was queued (on a broker that wakes,
    trackdesk.broker.WakingRedis; elsewhere never).

    A drain that found nothing more to claim but waits for a slow receiver keeps its worker
    busy, and the task of the next conversion would wait in the queue behind it: the drain
    looks for new work when `future()` completes with True. One wait at a time per process, in
    a thread of its own, each up to WAIT seconds; a wake-up taken while no drain waits is lost,
    and the drain's own look every LOOK_AGAIN seconds (batch.py) still finds the work.
    """

    WAIT = 0.5

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._current: Future | None = None

    def wakes(self) -> bool:
        return hasattr(broker(), "wait_for_wake")

    def future(self) -> Future | None:
        """A future that completes with True on a wake-up (then call again for the next one),
        with False after WAIT seconds without one; None if the broker does not wake."""
        wait_for_wake = getattr(broker(), "wait_for_wake", None)
        if wait_for_wake is None:
            return None
        with self._lock:
            if self._current is None or self._current.done():
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="postbacks-waker")
                self._current = self._pool.submit(self._wait, wait_for_wake)
            return self._current

    def _wait(self, wait_for_wake) -> bool:
        try:
            return wait_for_wake(self.WAIT)
        except Exception as exc:  # Redis away: no wake-ups (the drains' looks go on)
            log.debug("Waiting for a wake-up failed: %s", exc)
            time.sleep(self.WAIT)
            return False


waker = Waker()


def broker_writes_to_database() -> bool:
    return isinstance(broker(), ORM)


def enqueue(delivery_ids, *, marked: bool = False) -> int:
    """Queue the deliveries; `marked`: their enqueued_at is set already (new deliveries).

    Returns how many deliveries were queued: none when the broker cannot take them (Redis down,
    the ORM broker's table locked). That is logged, never raised: the delivery rows are stored,
    and the sweeper queues them once the broker is back, so a conversion is never refused for it.

    On a broker outside the database the message goes out only once enqueued_at is committed
    (so call it outside a transaction; enqueue_on_commit waits for one): a worker may take the
    message at once, and while this write held the rows its claim would pass over them (FOR
    UPDATE SKIP LOCKED), find nothing, and leave them to the sweeper, minutes later.
    """
    ids = list(delivery_ids)
    if not ids:
        return 0
    outbox = broker_writes_to_database()
    committed_mark = marked  # enqueued_at set and committed: cleared should the broker fail
    try:
        # With the ORM broker one transaction: the task rows commit together with enqueued_at
        # (one write on SQLite), and django-q2 does not close the connection as in autocommit.
        with transaction.atomic() if outbox else contextlib.nullcontext():
            if not marked:
                Delivery.objects.filter(pk__in=ids).update(enqueued_at=timezone.now())
                committed_mark = not outbox
            # With concurrent dispatch a task drains a batch: one per batch will do.
            step = conf.batch_size() if conf.concurrent_dispatch() else 1
            for delivery_id in ids[::step]:
                send_to_broker(delivery_id)
    except Exception as exc:  # any broker failure: the rows are the record, the sweeper retries
        log.warning(
            "Could not queue %d deliveries (%s: %s); the sweeper queues them when the broker "
            "is back.",
            len(ids),
            type(exc).__name__,
            exc,
        )
        if committed_mark:
            leave_for_sweeper(ids)
        return 0
    return len(ids)


def leave_for_sweeper(ids: list[int]) -> None:
    """Clear enqueued_at, so the next sweep takes the deliveries rather than one
    POSTBACK_STALE_AFTER later; best effort (the database may be what failed)."""
    with contextlib.suppress(DatabaseError):
        Delivery.objects.filter(pk__in=ids).update(enqueued_at=None)


def enqueue_on_commit(delivery_ids, *, marked: bool = False) -> None:
    """Enqueue so that the worker reads committed rows: on the ORM broker in the current
    transaction, elsewhere once it commits.

    The ORM broker's task rows are rows of our database: written in the transaction that writes
    the deliveries, they commit or roll back with them (an outbox), and the request takes one
    write transaction instead of two, which on SQLite (one writer at a time) is most of what a
    second one costs. Redis is outside the transaction, so it is told after the commit.
    """
    ids = list(delivery_ids)
    if not ids:
        return
    if _in_our_transaction():
        enqueue(ids, marked=marked)
    else:
        transaction.on_commit(lambda: enqueue(ids, marked=marked))


def _in_our_transaction() -> bool:
    """An atomic block is open on the database the ORM broker writes its task rows to."""
    broker_ = broker()
    if not isinstance(broker_, ORM):
        return False
    return transaction.get_connection(broker_.connection.db).in_atomic_block


def due_for_enqueue(now=None):
    """Open deliveries that are due, not claimed by a live worker, not waiting for an earlier
    status of their conversion (released when that one is final), and not recently enqueued."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=conf.stale_after())
    return (
        Delivery.objects.due(now)
        .unclaimed(now)
        .not_waiting()
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
    )


def sweep() -> int:
    """Enqueue due retries and deliveries a dead worker or a lost message left behind."""
    ids = list(
        due_for_enqueue().order_by("next_attempt_at").values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    return enqueue(ids)


def being_sent(queryset, now=None):
    """Those of the deliveries a worker holds a claim on now: a request may be in flight."""
    now = now or timezone.now()
    return queryset.open().filter(claimed_until__gte=now)


def retry_refusal(delivery: Delivery, now=None) -> str:
    """Why retry_deliveries would leave this delivery alone ("" when it would retry it)."""
    now = now or timezone.now()
    if delivery.is_test:
        return "A test send is not retried: send a new test from the postback's page."
    if delivery.state == DeliveryState.SUCCESS:
        return "This delivery succeeded: nothing to retry (Resend sends it again)."
    if delivery.claimed_until and delivery.claimed_until >= now:
        return "A worker is sending it right now: its outcome shows here in a moment."
    return ""


def retry_deliveries(queryset) -> int:
    """Make the given unfinished or failed deliveries due now and enqueue them.

    A successful delivery is left alone, and so is a test send (send a new test instead), and
    so is one a worker is sending now (its claim is live): clearing that claim would let a
    second worker send it again while the first request is still in flight. Returns how many
    were queued.
    """
    now = timezone.now()
    with transaction.atomic():
        # Locked, so a worker's claim (a conditional UPDATE) waits for this and then sees the
        # row as due; a row a worker claimed first is not unclaimed and is not selected.
        ids = list(
            queryset.exclude(state=DeliveryState.SUCCESS)
            .exclude(is_test=True)
            .unclaimed(now)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        Delivery.objects.filter(pk__in=ids).update(
            state=DeliveryState.RETRYING,
            next_attempt_at=now,
            claimed_until=None,
            finished_at=None,
        )
        enqueue_on_commit(ids)
    return len(ids)
