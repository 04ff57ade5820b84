"""Concurrent dispatch: claim due deliveries in batches, send many at once, log in bulk.

`drain()` is what a django-q2 task runs. It keeps up to POSTBACK_CONCURRENCY requests in flight
from one process: it claims due deliveries with one UPDATE ... RETURNING (its row choice FOR
UPDATE SKIP LOCKED on PostgreSQL, so several workers and nodes share the due rows without
waiting on each other; on SQLite the statement holds the single write lock, so it is as safe),
hands them to the concurrent sender (postbacks/transport/aiohttp_sender.py) and, every tick,
writes the finished attempts with one bulk insert and one bulk update. It claims more as slots
free up and stops when nothing is due or in flight, or when its time budget is spent.

Guarantees are those of the single path (postbacks/delivery/single.py), which it reuses: a
claim (claimed_until + attempts) before sending, so a delivery is sent once per claim; rendering
and the request row from single.build_attempt; next state from single.apply_result (retry
schedule, permanent failures); the circuit breaker and auto-pause (breaker.py, once per endpoint
per batch); the address guard, timeouts and redirect rules in the sender. A process that dies
leaves claims that expire and the sweeper enqueues those deliveries again.

Nothing sent goes unrecorded while the process lives: an error with one delivery (it cannot be
rendered, the sender refuses it) is that delivery's failed attempt and the drain goes on; an
error of the drain itself (a claim, the database, the breaker) first waits for the requests in
flight and records them all, then ends the drain. Otherwise their claims would expire and the
sweeper would send them again.

One slow receiver cannot take every slot: an endpoint (host:port, breaker.endpoint_key, however
many postbacks point at it) with POSTBACK_PER_HOST_CONCURRENCY requests in flight gets no more
claimed until some finish, and the connector allows as many connections per host. Below that
share a slow start (INITIAL_WINDOW) keeps a failing endpoint to a handful of requests until the
circuit breaker opens.
"""

import logging
import time
from collections import Counter
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, wait
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from postbacks import conf, metrics
from postbacks.delivery import breaker, ordering, queue, single
from postbacks.models import Delivery, DeliveryAttempt, Postback, TrackingSettings
from postbacks.transport import policy
from postbacks.transport.policy import HttpResult
from trackdesk.memo import Memo
from trackdesk.sql import CompiledOnce, insert_rows, update_rows

log = logging.getLogger(__name__)

# Seconds between looks at the in-flight requests (finished ones are logged, free slots refilled).
TICK = 0.02
# At most this many postback ids in a claim's "not these postbacks" list.
MAX_SKIPPED = 500
# Seconds between claims of a drain that found everything due taken but still waits for its
# requests (a slow or hanging receiver): what falls due meanwhile is not left waiting for a
# worker until the slowest request ends (up to the read timeout). On Redis a new task wakes
# such a drain at once (queue.Waker); this look is for the ORM broker and lost wake-ups.
LOOK_AGAIN = 0.05


def claim_batch(limit: int, *, skip_postbacks=(), postbacks=None) -> list[Delivery]:
    """Claim up to `limit` due, unclaimed deliveries for one attempt each, none of them waiting
    for an earlier status change of its conversion; returns them.

    `postbacks` (a PostbackCache) supplies their postbacks instead of reading one per row."""
    now = timezone.now()
    until = now + timedelta(seconds=conf.claim_seconds())
    ids = _claim(now, list(skip_postbacks), limit, until)
    if not ids:
        return []
    # Rows carrying our exact claim time are ours (always all of them; checked anyway).
    claimed = _CLAIMED.objects({"with_postback": postbacks is None}, ids=ids, until=until)
    if postbacks is not None:
        found = postbacks.get({delivery.postback_id for delivery in claimed})
        # A postback deleted since the claim took its deliveries with it: nothing to send.
        claimed = [d for d in claimed if d.postback_id in found]
        for delivery in claimed:
            delivery.postback = found[delivery.postback_id]
    return claimed


def _claimable(now, skip: list[int], limit: int | None = None):
    """The ids of the first `limit` due, unclaimed deliveries that wait for nothing, but those
    of the `skip` postbacks, in due order (the rule of DeliveryQuerySet)."""
    due = (
        Delivery.objects.due(now)
        .unclaimed(now)
        .not_waiting()
        .exclude(postback_id__in=skip)
        .order_by("next_attempt_at")
        .values("pk")
    )
    return due[:limit]


# Compiled once per limit and number of skipped postbacks; each claim puts in its time and ids.
_CLAIMABLE = CompiledOnce(_claimable)


def _claimed(ids: list[int], until, with_postback: bool):
    """The deliveries just claimed, with what rendering them reads."""
    related = ["conversion__click", "conversion__conversion_type"]
    if with_postback:
        related.append("postback")
    claimed = Delivery.objects.select_related(*related).filter(pk__in=ids, claimed_until=until)
    return claimed.order_by()


# Compiled once per number of rows claimed (one on a trickle) and each way of reading postbacks.
_CLAIMED = CompiledOnce(_claimed)


def _claim(now, skip: list[int], limit: int, until) -> list[int]:
    """Claim the first `limit` rows of _claimable (claimed_until set, one more attempt) in one
    statement, `UPDATE ... WHERE id IN (the due rows) RETURNING id`, which each database runs
    atomically: on PostgreSQL the due rows are locked with SKIP LOCKED, so concurrent claims
    take different rows without waiting; on SQLite the statement holds the one write lock.
    A SQLite older than 3.35 (no RETURNING) claims in a transaction of two statements."""
    if not _can_return_from_update():
        with transaction.atomic():
            ids = [row["pk"] for row in _claimable(now, skip, limit)]
            Delivery.objects.filter(pk__in=ids).update(
                claimed_until=until, attempts=F("attempts") + 1
            )
        return ids
    inner, params = _CLAIMABLE.sql({"limit": limit}, now=now, skip=skip)
    if connection.features.has_select_for_update_skip_locked:
        inner += " FOR UPDATE SKIP LOCKED"  # compiled without it: Django refuses it outside atomic
    quote = connection.ops.quote_name
    table, pk = quote(Delivery._meta.db_table), quote(Delivery._meta.pk.column)
    claimed_until = Delivery._meta.get_field("claimed_until")
    attempts = quote(Delivery._meta.get_field("attempts").column)
    sql = (
        f"UPDATE {table} SET {quote(claimed_until.column)} = %s, {attempts} = {attempts} + 1 "
        f"WHERE {pk} IN ({inner}) RETURNING {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, (claimed_until.get_db_prep_save(until, connection), *params))
        return [row[0] for row in cursor.fetchall()]


def _can_return_from_update() -> bool:
    if connection.vendor == "sqlite":
        return connection.Database.sqlite_version_info >= (3, 35)
    return connection.vendor == "postgresql"


class PostbackCache:
    """The postbacks the drains of a process send for, read once and again after MAX_AGE
    seconds.

    Every delivery of a batch would otherwise bring its own copy of its postback (the URL
    template, headers, values, secret: most of what turning claimed rows into objects cost),
    and on a trickle of one conversion per task every drain would read it again. A change to a
    postback (deactivated, new URL, rotated secret) saved in this process applies at once, and
    one saved elsewhere within MAX_AGE seconds.
    """

    MAX_AGE = 2.0

    def __init__(self):
        self.rows: dict[int, Postback] = {}
        self.read_at = 0.0

    def get(self, ids: set[int]) -> dict[int, Postback]:
        now = time.monotonic()
        if now - self.read_at > self.MAX_AGE:
            self.rows, self.read_at = {}, now
        missing = ids - self.rows.keys()
        if missing:
            self.rows.update(Postback.objects.in_bulk(missing))
        return self.rows

    def forget(self, **kwargs) -> None:
        self.rows, self.read_at = {}, 0.0


_postbacks = PostbackCache()
post_save.connect(_postbacks.forget, sender=Postback, weak=False)
post_delete.connect(_postbacks.forget, sender=Postback, weak=False)

# The one row of tracking settings, read by every drain.
_settings = Memo("tracking settings", models=[TrackingSettings], maxsize=1)


def forget_postbacks() -> None:
    """Empty the process's postbacks (tests do between cases, as they change rows without
    signals)."""
    _postbacks.forget()


def release(ids: list[int]) -> None:
    """Undo claims that were not used: no attempt was made."""
    Delivery.objects.filter(pk__in=ids).update(claimed_until=None, attempts=F("attempts") - 1)


def record_many(
    finished: list[tuple[Delivery, DeliveryAttempt, HttpResult]], clean: set | None = None
) -> None:
    """Log finished attempts and move their deliveries on, then tell the breaker (`clean`: the
    endpoints the drain's last look found healthy, see breaker.record_outcomes)."""
    save_many(finished)
    metrics.record_attempts(finished, not_sent=single.NotSent)
    ordering.release_next([delivery for delivery, _, _ in finished])
    sent = [(d, result) for d, _, result in finished if not isinstance(result, single.NotSent)]
    breaker.record_outcomes(sent, clean)


def save_many(finished: list[tuple[Delivery, DeliveryAttempt, HttpResult]]) -> None:
    """Save the attempts and the deliveries' next states in one transaction; should that fail,
    one by one, so that one row the database refuses leaves no other unrecorded (to be sent
    again once its claim expires). Then raises the error, if one delivery stays unrecorded."""
    for delivery, attempt, result in finished:
        single.apply_result(delivery, attempt, result)
    try:
        with transaction.atomic():
            insert_rows(DeliveryAttempt, [attempt for _, attempt, _ in finished])
            update_rows(Delivery, [delivery for delivery, _, _ in finished], single.RECORDED_FIELDS)
        return
    except Exception:
        log.exception("Recording %d attempts at once failed; one by one now", len(finished))
    failed = None
    for delivery, attempt, _ in finished:
        try:
            single.save_outcome(delivery, attempt)
        except Exception as exc:
            failed = exc
    if failed is not None:
        raise failed


def drain(*, budget: float | None = None, sender=None) -> int:
    """Send due deliveries concurrently until none is due or the budget is spent.

    Returns how many attempts were made. `sender` is a ConcurrentSender; by default the
    process's shared one (aiohttp_sender.shared_sender), kept open between drains.
    """
    budget = conf.drain_seconds() if budget is None else budget
    run = _Drain(sender, deadline=time.monotonic() + budget)
    try:
        run.loop()
    except Exception:
        run.settle()
        raise
    finally:
        run.close()
    return run.attempts


class _Drain:
    def __init__(self, sender, *, deadline: float):
        self.sender, self.shared = sender, False
        self.deadline = deadline
        self.capacity = conf.concurrency()
        self.per_endpoint = conf.per_host_concurrency()
        self.in_flight: dict = {}  # future -> (delivery, attempt)
        self.load: Counter = Counter()  # endpoint key -> requests in flight
        self.endpoints: dict[int, str] = {}  # postback id -> endpoint key
        self.postbacks: dict[str, set[int]] = {}  # endpoint key -> postback ids seen for it
        self.finished: list = []
        self.clean: set[str] = set()  # endpoints with no failure streak at the last look
        self.breaker = bool(conf.breaker_threshold())
        self.postback_rows = _postbacks
        self.attempts = 0
        self.out_of_time = False
        self.held_back = False
        self.all_due_taken = False
        self.waiting = False  # the last claim found nothing more it could send now
        self.claimed_at = 0.0
        self.woken = False

    def loop(self) -> None:
        while True:
            claimed = self.refill()
            if self.in_flight:
                self.pause()
                self.collect()
            self.record()
            idle = not self.in_flight and not claimed and not self.held_back
            if idle and (self.waiting or self.out_of_time):  # else an outcome made more due
                return

    def pause(self) -> None:
        """Wait up to a TICK for the requests in flight to end (all of them: their attempts
        are then written together). A drain that found nothing more to claim only waits for
        its requests; on a broker that wakes (queue.Waker) a new task ends that wait, and the
        drain claims at once."""
        wake = queue.waker.future() if self.waiting else None
        if wake is None:
            wait(list(self.in_flight), timeout=TICK, return_when=ALL_COMPLETED)
            return
        end, pending = time.monotonic() + TICK, set(self.in_flight)
        while pending and not wake.done():
            left = end - time.monotonic()
            if left <= 0:
                return
            done, _ = wait([*pending, wake], timeout=left, return_when=FIRST_COMPLETED)
            pending -= done
        self.woken = wake.done() and wake.result()

    def record(self) -> None:
        done, self.finished = self.finished, []  # handed over: never recorded twice
        if done:
            self.attempts += len(done)
            record_many(done, self.clean)

    def settle(self) -> None:
        """After an error: wait for the requests in flight (each ends within the sender's total
        timeout) and record them and whatever else finished, before the error ends the drain."""
        if self.in_flight:
            log.warning("Drain failed with %d requests in flight", len(self.in_flight))
            wait(list(self.in_flight), timeout=conf.total_timeout() + 5, return_when=ALL_COMPLETED)
            self.collect()
        try:
            self.record()
        except Exception:  # the first error is the one raised; this one is logged
            log.exception("Recording the attempts of a failed drain failed")

    def refill(self) -> list[Delivery]:
        room = self.capacity - len(self.in_flight)
        self.held_back = room <= 0
        if self.held_back:
            return []
        if time.monotonic() >= self.deadline:
            if not self.out_of_time:  # hand over now, not after the slowest request returns
                self.out_of_time = True
                _hand_over()
            return []
        busy = [key for key, n in self.load.items() if n >= self.allowed(key)]
        self.held_back = bool(busy)  # those endpoints may have more due: look again
        limit = min(room, conf.batch_size())
        active = {key: n for key, n in self.load.items() if n}
        if active:  # claim what the endpoints in flight have room for, and a little for others,
            # not a whole batch to give most of it back (a write per row, every tick)
            headroom = sum(max(self.allowed(key) - n, 0) for key, n in active.items())
            limit = min(limit, headroom + INITIAL_WINDOW)
        # The query knows postbacks, not hosts: skip the postbacks seen for a busy endpoint (up
        # to MAX_SKIPPED, to keep the query small); _within_share hands back any others.
        skip = sorted({pk for key in busy for pk in self.postbacks.get(key, ())})[:MAX_SKIPPED]
        if self.waiting and not self.woken and not self.look_again():
            return []
        self.woken = False
        self.claimed_at = time.monotonic()
        found = claim_batch(limit, skip_postbacks=skip, postbacks=self.postback_rows)
        # Backed-off endpoints first: all they claimed is deferred (due no more), none of it
        # handed back.
        sendable = breaker.defer_open_endpoints(found, self.clean)
        claimed = self._within_share(sendable)
        # Fewer than asked for and none handed back: nothing else was due, but for the busy
        # endpoints' deliveries (claimable when one of their requests ends, see collect); with
        # none skipped, nothing at all. Deliveries due later come with their own task (new ones
        # on commit, retries from the sweeper), so this drain only finishes what it sent,
        # without a claim every tick (on a trickle of one conversion per task those were most
        # of a worker's work); while a request stays out it looks again (look_again), since the
        # task of what falls due meanwhile may be waiting for this very worker.
        self.waiting = len(found) < limit and len(claimed) == len(sendable)
        self.all_due_taken = self.waiting and not skip
        if claimed:
            self.start(claimed)
        # What the claim found, sent or not: a batch that was all deferred or handed back does
        # not mean nothing else is due (the next claim looks past it).
        return found

    def look_again(self) -> bool:
        """Whether a waiting drain claims again: never without requests in flight (it ends);
        every LOOK_AGAIN seconds while they stay out, should a wake-up be lost; on a broker
        that does not wake, every tick while a busy endpoint is skipped (as a drain that
        found more due), since new deliveries for others may be due any moment."""
        if not self.in_flight:
            return False
        if not self.all_due_taken and not queue.waker.wakes():
            return True
        return time.monotonic() - self.claimed_at >= LOOK_AGAIN

    def start(self, claimed: list[Delivery]) -> None:
        """Send the claimed deliveries; one that cannot be sent is finished with the reason."""
        try:
            allow_revenue = _settings.get(1, TrackingSettings.load).allow_revenue_parameters
            sender = self._sender()
        except Exception:
            release([d.pk for d in claimed])  # nothing went out: the claims are not used
            raise
        ready = []
        for delivery in claimed:
            attempt, refused = single.build_attempt(delivery, allow_revenue=allow_revenue)
            if refused is None:
                ready.append((delivery, attempt))
            else:
                self.finished.append((delivery, attempt, refused))
        handed = _submit_all(sender, [attempt for _, attempt in ready])
        for (delivery, attempt), future in zip(ready, handed, strict=True):
            if isinstance(future, Exception):
                refused = single.not_sent(future, "handing the request to the sender")
                self.finished.append((delivery, attempt, refused))
                continue
            self.in_flight[future] = (delivery, attempt)
            self.load[self.endpoint(delivery)] += 1

    def endpoint(self, delivery: Delivery) -> str:
        """The endpoint whose slots a delivery takes: host:port, as the breaker counts them."""
        key = self.endpoints.get(delivery.postback_id)
        if key is None:  # once per postback and drain, so in and out count the same endpoint
            key = self.endpoints[delivery.postback_id] = endpoint_of(delivery.postback)
            self.postbacks.setdefault(key, set()).add(delivery.postback_id)
        return key

    def _within_share(self, claimed: list[Delivery]) -> list[Delivery]:
        """Give back what would put an endpoint over its share of slots (others may take it)."""
        keep, excess, planned = [], [], Counter(self.load)
        for delivery in claimed:
            key = self.endpoint(delivery)
            planned[key] += 1
            (keep if planned[key] <= self.allowed(key) else excess).append(delivery)
        if excess:
            release([d.pk for d in excess])
        return keep

    def allowed(self, key: str) -> int:
        """Requests this endpoint may have in flight: its slow-start window, within its share."""
        return min(_windows.get(key, INITIAL_WINDOW), self.per_endpoint)

    def collect(self) -> None:
        for future in [f for f in self.in_flight if f.done()]:
            delivery, attempt = self.in_flight.pop(future)
            key = self.endpoint(delivery)
            if self.load[key] >= self.allowed(key):  # its skipped deliveries may be claimed now
                self.waiting = False
            self.load[key] -= 1
            try:
                result = future.result()
            except Exception as exc:  # the sender never raises; keep the log complete anyway
                result = HttpResult(error=policy.sending_failed(exc))
            if result.ok and key not in self.clean and self.breaker:  # may end a back-off,
                self.waiting = False  # which makes its backlog due
            _adjust_window(key, result, self.per_endpoint)
            self.finished.append((delivery, attempt, result))

    def _sender(self):
        if self.sender is None:  # the process's own, kept open for the next drain
            from postbacks.transport.aiohttp_sender import shared_sender

            self.sender, self.shared = shared_sender(), True
        return self.sender

    def close(self) -> None:
        if self.in_flight:  # only after an error: leave them to expire and be swept
            log.warning("drain stopped with %d requests in flight", len(self.in_flight))
            if self.shared:  # end them, as closing a drain's own session did
                from postbacks.transport.aiohttp_sender import forget_shared_sender

                forget_shared_sender()
        # A sender passed in is the caller's to close; the shared one stays open otherwise.


def _submit_all(sender, attempts: list[DeliveryAttempt]) -> list:
    """Hand the attempts' requests to the sender, all at once where it can take them so; per
    attempt its future, or the exception that kept it from being handed over (nothing sent)."""
    requests = [(a.method, a.url, a.request_headers, a.request_body) for a in attempts]
    submit_many = getattr(sender, "submit_many", None)
    if submit_many is not None:
        try:
            return submit_many(requests)
        except Exception as exc:  # none of them was handed over
            return [exc] * len(requests)
    handed = []
    for request in requests:
        try:
            handed.append(sender.submit(*request))
        except Exception as exc:
            handed.append(exc)
    return handed


# Slow start, per endpoint (host:port) and worker process (TCP's idea): an endpoint may first
# have INITIAL_WINDOW requests in flight, however many postbacks point at it; each success allows
# one more (so the window doubles every round trip) up to its share, and a failure shrinks it to
# one. An endpoint that hangs or fails thus gets a handful of requests, not a whole batch, before
# the circuit breaker sets it aside.
INITIAL_WINDOW = 8
_windows: dict[str, int] = {}


def forget_windows() -> None:
    """Start every endpoint's slow start afresh in this process (tests call it between cases,
    since they reuse endpoints that an earlier case may have shrunk or grown)."""
    _windows.clear()


def endpoint_of(postback) -> str:
    """breaker.endpoint_key of the postback's URL; a URL without a host keeps its own slots."""
    key = breaker.endpoint_key(postback.url)
    return key if key.rpartition(":")[0] else f"postback:{postback.pk}"


def _adjust_window(key: str, result: HttpResult, share: int) -> None:
    if result.permanent:  # a refused or unrenderable request says nothing about the endpoint
        return
    window = _windows.get(key, INITIAL_WINDOW)
    _windows[key] = min(window + 1, share) if result.ok else 1


def _hand_over() -> None:
    """The budget ran out with work left: queue one due delivery so another task goes on."""
    now = timezone.now()
    queue.enqueue(Delivery.objects.due(now).unclaimed(now).values_list("pk", flat=True)[:1])
