"""Endpoint isolation: a circuit breaker per endpoint (host:port), and auto-pause.

After POSTBACK_BREAKER_THRESHOLD consecutive failures an endpoint is backed off for
POSTBACK_BREAKER_COOLDOWN: its deliveries are moved to when the breaker half-opens, without an
HTTP attempt and without using up a retry, so a dead endpoint does not hold workers. Failures of
requests that were already out when it opened change nothing. When it half-opens, one delivery
goes out as a probe, on time (the worker that opened the breaker queues it); a success closes the
breaker and sends everything waiting for the endpoint at once, a failure backs off again, for a
quarter of the time the endpoint has been backed off (at least the first back-off, at most
POSTBACK_BREAKER_MAX_COOLDOWN). An endpoint that has failed every attempt for
POSTBACK_AUTO_PAUSE_AFTER days has its postbacks paused.
"""

import logging
import threading
from datetime import timedelta
from urllib.parse import urlsplit

from django.db import connections, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone
from django_q.signals import pre_execute

from postbacks import conf
from postbacks.delivery import queue
from postbacks.models import Delivery, EndpointHealth, Postback

log = logging.getLogger(__name__)

# A failed probe backs off for this share of the time the endpoint has been backed off, so an
# endpoint that comes back after T backed off gets a probe within max(first back-off, T / 4):
# 30 s after a 2-minute outage, while a day-long one gets a probe every 30 minutes (the cap).
# Doubling per failed probe would make it wait up to T again (probes at 30, 90 and 210 s: 90 s
# after a 2-minute outage).
PROBE_BACKOFF_SHARE = 0.25
# Deliveries queued at once when a closed breaker lets an endpoint's backlog go (as the sweeper).
RELEASE_AT_ONCE = 1000
# "Not read yet" for the endpoint's row (None means there is none).
UNREAD = object()
# Sent by auto_pause with the endpoint's `health` and the `postback_ids` it pauses (postbacks/
# alerts.py raises an alert for each); a signal, so the breaker does not depend on the alerts.
postbacks_paused = Signal()


def endpoint_key(url: str) -> str:
    """'host:port' of a postback URL (the host never holds placeholders)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return ""
    return f"{(parts.hostname or '').rstrip('.').lower()}:{port}"


def health_of(delivery: Delivery) -> EndpointHealth | None:
    """The delivery's endpoint's row (None: no failure recorded yet), read once before sending:
    defer_if_open decides by it, and record_outcome then knows whether a success has a streak or
    a back-off to end (the common case: none, and nothing more is read or written)."""
    return EndpointHealth.objects.filter(host=endpoint_key(delivery.postback.url)).first()


def defer_if_open(delivery: Delivery, health=UNREAD) -> bool:
    """Before sending: when the endpoint is backed off, reschedule the claimed delivery to when
    the breaker half-opens, give back the attempt the claim counted, and return True.
    `health`: the endpoint's row as health_of read it (read here when not given)."""
    if delivery.is_test or not conf.breaker_threshold():
        return False
    until, backed_off = _backed_off(endpoint_key(delivery.postback.url), health)
    if until is None:
        return False
    Delivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") - 1, claimed_until=None, next_attempt_at=until, enqueued_at=None
    )
    if backed_off:
        postpone_backlog({delivery.postback_id}, until)
    return True


def postpone_backlog(postback_ids, until) -> int:
    """Move the other due, unclaimed deliveries of these postbacks to `until` in one statement.

    They wait for the same breaker anyway; left due, a long backlog for a backed-off endpoint
    would be claimed (or swept) row by row ahead of every other endpoint's deliveries.
    """
    now = timezone.now()
    return (
        Delivery.objects.open()
        .unclaimed(now)
        .filter(postback_id__in=list(postback_ids), is_test=False, next_attempt_at__lt=until)
        .update(next_attempt_at=until, enqueued_at=None)
    )


def _backed_off(host: str, health=UNREAD):
    """(until, backed_off): when the endpoint's next delivery may go, or None to send now.

    backed_off: the breaker is open until then; otherwise it is half-open and another worker's
    probe decides (the wait is its claim, and ends early if the probe succeeds).
    """
    now = timezone.now()
    if health is UNREAD:
        health = EndpointHealth.objects.filter(host=host, opened_until__isnull=False).first()
    if health is None or health.opened_until is None:
        return None, False
    if health.opened_until > now:
        return health.opened_until, not health.probing
    # Half-open: the worker that moves opened_until on sends the probe; the others wait for it.
    # Should the probe's worker die, the next probe goes out once its claim has expired.
    probe_until = now + timedelta(seconds=conf.claim_seconds())
    won = EndpointHealth.objects.filter(pk=health.pk, opened_until=health.opened_until).update(
        opened_until=probe_until, probing=True
    )
    return (None, False) if won else (probe_until, False)


def record_outcome(delivery: Delivery, result, health=UNREAD) -> None:
    """After an attempt is recorded: close the breaker on success, count a failure otherwise.

    Refusals and render errors say nothing about the endpoint, and test sends are left out.
    `health`: the endpoint's row as health_of read it before sending; a success then ends a
    streak or a back-off only if that row had one. Failures other workers counted while this
    request was out are not undone by it: it started before they ended.
    """
    if delivery.is_test or result.permanent:
        return
    host = endpoint_key(delivery.postback.url)
    if result.ok:
        if health is UNREAD or _streak_or_back_off(health):
            _close(host)
        return
    health = _count_failure(host, delivery.last_error)
    auto_pause(health)


def _streak_or_back_off(health: EndpointHealth | None) -> bool:
    return health is not None and (
        health.consecutive_failures > 0 or health.opened_until is not None or health.probing
    )


_CLOSED = dict(
    consecutive_failures=0, first_failure_at=None, opened_at=None, opened_until=None, probing=False
)


def _close(host: str) -> None:
    """A success: the streak ends; if the endpoint was backed off, what waits for it goes now."""
    health = EndpointHealth.objects.filter(host=host)
    was = health.values_list("opened_until", "consecutive_failures").first()
    if was is None or was == (None, 0):  # the common case: one read per success
        return
    health.update(**_CLOSED)
    if was[0] is not None:
        release_backlog(host)


def _count_failure(host: str, error: str, failures: int = 1) -> EndpointHealth:
    """Count `failures` that ended together; open the breaker, or back off again after a probe.

    Only the threshold being reached or a failed probe move opened_until: the requests that were
    in flight when the breaker opened fail together (a few per worker process) and must not
    each back it off further.
    """
    now = timezone.now()
    opened = False
    with transaction.atomic():
        health, _ = EndpointHealth.objects.select_for_update().get_or_create(host=host)
        health.consecutive_failures += failures
        health.first_failure_at = health.first_failure_at or now
        health.last_failure_at, health.last_error = now, error[:2000]
        threshold = conf.breaker_threshold()
        if threshold and health.probing:  # half-open, and the one request out has failed
            health.opened_until = now + timedelta(seconds=cooldown(health.opened_at, now))
            health.probing, opened = False, True
        elif threshold and health.opened_until is None and health.consecutive_failures >= threshold:
            health.opened_at = now
            health.opened_until = now + timedelta(seconds=cooldown(now, now))
            opened = True
        health.save()
    if opened:
        wake_at(host, health.opened_until)
    return health


# --- the same for a batch (postbacks/delivery/batch.py): a look per endpoint, not per delivery


def defer_open_endpoints(deliveries: list[Delivery], clean: set | None = None) -> list[Delivery]:
    """Of freshly claimed deliveries, return those that may be sent now; defer the rest.

    Like defer_if_open for each: a backed-off endpoint's deliveries move to when its breaker
    half-opens, with the claimed attempt given back; of a half-open endpoint's deliveries one
    goes out as the probe and the others wait for its outcome.

    `clean` (the drain's): the endpoints this look found with no failure streak and no back-off
    are added to it, the others taken out; record_outcomes then has no streak to end for them.
    """
    if not conf.breaker_threshold():
        return deliveries
    hosts = {endpoint_key(d.postback.url) for d in deliveries if not d.is_test}
    if not hosts:
        return deliveries
    rows = (
        EndpointHealth.objects.filter(host__in=hosts)
        .order_by()
        .only("host", "opened_until", "consecutive_failures", "probing")
    )
    open_hosts, troubled = {}, set()  # open_hosts: host -> its row, which _backed_off reads
    for health in rows:
        if health.opened_until is not None:
            open_hosts[health.host] = health
        if health.opened_until is not None or health.consecutive_failures or health.probing:
            troubled.add(health.host)
    if clean is not None:
        clean.difference_update(troubled)
        clean.update(hosts - troubled)
    if not open_hosts:
        return deliveries
    send, deferred, decided = [], {}, {}  # deferred: until -> ids; decided: host -> until/None
    waiting = {}  # until -> postbacks of backed-off endpoints, whose whole backlog waits
    for delivery in deliveries:
        host = endpoint_key(delivery.postback.url)
        if delivery.is_test or host not in open_hosts:
            send.append(delivery)
            continue
        if host not in decided:
            decided[host] = _backed_off(host, open_hosts[host])
            if decided[host][0] is None:  # this batch sends the probe: the others wait for it
                send.append(delivery)
                probe = timezone.now() + timedelta(seconds=conf.claim_seconds())
                decided[host] = (probe, False)
                continue
        until, backed_off = decided[host]
        deferred.setdefault(until, []).append(delivery.pk)
        if backed_off:
            waiting.setdefault(until, set()).add(delivery.postback_id)
    for until, ids in deferred.items():
        Delivery.objects.filter(pk__in=ids).update(
            attempts=F("attempts") - 1, claimed_until=None, next_attempt_at=until, enqueued_at=None
        )
    for until, postback_ids in waiting.items():
        postpone_backlog(postback_ids, until)
    return send


def record_outcomes(outcomes: list[tuple[Delivery, object]], clean: set | None = None) -> None:
    """record_outcome for a batch of finished attempts, in the order they finished: per endpoint,
    a success closes the breaker and only the failures after the last success count.

    `clean`: endpoints found with no streak or back-off when these requests were claimed
    (defer_open_endpoints); a success there has nothing to end, and is not looked up, as
    record_outcome does with the row it read before sending. Failures other workers counted
    meanwhile stay counted. An endpoint this counts failures for leaves the set."""
    streaks: dict[str, list] = {}
    for delivery, result in outcomes:
        if delivery.is_test or result.permanent:
            continue
        host = endpoint_key(delivery.postback.url)
        if result.ok:
            streaks[host] = [True]  # [closed, failures..., last error]
        else:
            streaks.setdefault(host, [False]).append(delivery.last_error)
    for host, (closed, *errors) in streaks.items():
        if closed and (clean is None or host not in clean):
            _close(host)
        if errors:
            if clean is not None:
                clean.discard(host)
            auto_pause(_count_failure(host, errors[-1], failures=len(errors)))


def cooldown(opened_at, now) -> float:
    """Seconds to back off: the first back-off when the breaker opens (opened_at is now), after a
    failed probe a quarter of the time since it opened if that is longer; at most the cap."""
    backed_off = (now - opened_at).total_seconds() if opened_at else 0.0
    longer = max(conf.breaker_cooldown(), backed_off * PROBE_BACKOFF_SHARE)
    return min(longer, conf.breaker_max_cooldown())


def release_backlog(host: str) -> int:
    """The endpoint is back: every delivery waiting for it becomes due now and is queued.

    Those are the deliveries the breaker set aside and the retries of the failures during the
    outage; left to their own times, the backlog of an endpoint that has recovered would trickle
    out over the retry schedule. Returns how many were made due earlier.
    """
    now = timezone.now()
    waiting = Delivery.objects.open().unclaimed(now).filter(postback_id__in=postbacks_of(host))
    # A delivery waiting for an exchange rate is not the endpoint's: saving the rate sends it.
    waiting = waiting.filter(is_test=False, waiting_for_rate="")
    released = waiting.filter(next_attempt_at__gt=now).update(next_attempt_at=now, enqueued_at=None)
    # With those, the ones that fell due while the breaker was open: no task was queued for them.
    ids = waiting.order_by("next_attempt_at").values_list("pk", flat=True)[:RELEASE_AT_ONCE]
    queue.enqueue(list(ids))
    return released


def postbacks_of(host: str) -> list[int]:
    """Ids of the active postbacks whose URL points at the endpoint."""
    name = host.rsplit(":", 1)[0]
    return [
        p.pk
        for p in Postback.objects.filter(active=True, url__icontains=name).only("pk", "url")
        if endpoint_key(p.url) == host
    ]


def auto_pause(health: EndpointHealth) -> int:
    """Pause the active postbacks of an endpoint failing for too long; returns how many."""
    days = conf.auto_pause_after()
    now = timezone.now()
    if not days or health.first_failure_at > now - timedelta(days=days):
        return 0
    reason = (
        f"Paused automatically on {now:%Y-%m-%d %H:%M} UTC: {health.host} has failed every "
        f"attempt since {health.first_failure_at:%Y-%m-%d %H:%M} UTC "
        f"({health.consecutive_failures} in a row; last error: {health.last_error[:300]}). "
        "Fix the endpoint, then tick Active to resume and retry the failed deliveries."
    )
    ids = postbacks_of(health.host)
    postbacks_paused.send_robust(EndpointHealth, health=health, postback_ids=ids)
    return Postback.objects.filter(pk__in=ids).update(active=False, paused_reason=reason)


def resume(postback: Postback) -> None:
    """A person resumed the postback: forget the pause and start the endpoint's streak afresh."""
    Postback.objects.filter(pk=postback.pk).update(paused_reason="")
    postback.paused_reason = ""
    EndpointHealth.objects.filter(host=endpoint_key(postback.url)).update(**_CLOSED)


# --- the probe on time -------------------------------------------------------------------------
# Only a task sends a waiting delivery, and without a nudge the next task would be the sweeper's
# (every minute, up to a minute and a half late), so the probe and a recovered endpoint's backlog
# would wait that long. The worker process that opens a breaker therefore sets a timer that
# queues the probe when it half-opens. A timer dies with its process; the sweeper then still finds
# the deliveries. Timers run only in processes that run django-q2 tasks (pre_execute says so):
# elsewhere, e.g. in tests that call these functions, one would fire into whatever runs later.
_timers: dict[str, threading.Timer] = {}
_runs_tasks = False
# A timer fires a little after the half-open time, so that the deliveries moved to it are due.
WAKE_SLACK = 0.1


def _note_task_process(**kwargs) -> None:
    global _runs_tasks
    _runs_tasks = True


pre_execute.connect(_note_task_process, dispatch_uid="postbacks.delivery.breaker")


def wake_at(host: str, until) -> None:
    """In a worker process: queue the endpoint's probe at `until`, when its breaker half-opens."""
    if not _runs_tasks:
        return
    delay = max((until - timezone.now()).total_seconds(), 0.0) + WAKE_SLACK
    timer = threading.Timer(delay, queue_probe, (host,))
    timer.daemon = True  # never holds a worker that is stopping
    previous = _timers.pop(host, None)
    if previous is not None:
        previous.cancel()
    _timers[host] = timer
    timer.start()


def pending_wakes() -> list[str]:
    """The endpoints this process will queue a probe for when they half-open."""
    return sorted(_timers)


def forget_wakes() -> None:
    """Cancel this process's probe timers and treat it as one that runs no tasks again (tests
    call it between cases, so a timer of one never fires into the next)."""
    global _runs_tasks
    for timer in _timers.values():
        timer.cancel()
    _timers.clear()
    _runs_tasks = False


def queue_probe(host: str) -> list[int]:
    """When a backed-off endpoint half-opens: queue its longest-waiting delivery (made due now, if
    it was a retry set for later) to go out as the probe; returns its id, if any."""
    try:
        now = timezone.now()
        half_open = EndpointHealth.objects.filter(
            host=host, opened_until__lte=now, probing=False
        ).exists()
        if not half_open:  # closed meanwhile, or backed off again (that worker has a timer)
            return []
        ids = list(
            Delivery.objects.open()
            .unclaimed(now)
            .not_waiting()  # one a claim would take
            # Not one waiting for a rate: it would send nothing and the probe would be lost.
            .filter(postback_id__in=postbacks_of(host), is_test=False, waiting_for_rate="")
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:1]
        )
        Delivery.objects.filter(pk__in=ids, next_attempt_at__gt=now).update(next_attempt_at=now)
        queue.enqueue(ids)
        return ids
    except Exception:
        log.exception("Could not queue the probe for %s; the sweeper will.", host)
        return []
    finally:
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()  # the timer thread's own connections
