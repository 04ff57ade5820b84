"""Endpoint isolation: a circuit breaker per endpoint (host:port), and auto-pause.

After POSTBACK_BREAKER_THRESHOLD consecutive failures an endpoint is backed off: its deliveries
are moved to when the breaker half-opens, without an HTTP attempt and without using up a retry,
so a dead endpoint does not hold workers. Then one delivery goes through as a probe; a success
closes the breaker, a failure backs off again for twice as long (up to a cap). An endpoint that
has failed every attempt for POSTBACK_AUTO_PAUSE_AFTER days has its postbacks paused.
"""

from datetime import timedelta
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from postbacks import conf
from postbacks.models import Delivery, EndpointHealth, Postback


def endpoint_key(url: str) -> str:
    """'host:port' of a postback URL (the host never holds placeholders)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return ""
    return f"{(parts.hostname or '').rstrip('.').lower()}:{port}"


def defer_if_open(delivery: Delivery) -> bool:
    """Before sending: when the endpoint is backed off, reschedule the claimed delivery to when
    the breaker half-opens, give back the attempt the claim counted, and return True."""
    if delivery.is_test or not conf.breaker_threshold():
        return False
    until, backed_off = _backed_off(endpoint_key(delivery.postback.url))
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


def _backed_off(host: str):
    """(until, backed_off): when the endpoint's next delivery may go, or None to send now.

    backed_off: the breaker is open until then; otherwise it is half-open and another worker's
    probe decides (the wait is its claim, and ends early if the probe succeeds).
    """
    now = timezone.now()
    health = EndpointHealth.objects.filter(host=host, opened_until__isnull=False).first()
    if health is None:
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


def record_outcome(delivery: Delivery, result) -> None:
    """After an attempt is recorded: close the breaker on success, count a failure otherwise.

    Refusals and render errors say nothing about the endpoint, and test sends are left out.
    """
    if delivery.is_test or result.permanent:
        return
    host = endpoint_key(delivery.postback.url)
    if result.ok:
        EndpointHealth.objects.filter(host=host).exclude(
            consecutive_failures=0, opened_until=None
        ).update(consecutive_failures=0, first_failure_at=None, opened_until=None, probing=False)
        return
    health = _count_failure(host, delivery.last_error)
    auto_pause(health)


def _count_failure(host: str, error: str, failures: int = 1) -> EndpointHealth:
    now = timezone.now()
    with transaction.atomic():
        health, _ = EndpointHealth.objects.select_for_update().get_or_create(host=host)
        health.consecutive_failures += failures
        health.first_failure_at = health.first_failure_at or now
        health.last_failure_at, health.last_error = now, error[:2000]
        threshold = conf.breaker_threshold()
        if threshold and health.consecutive_failures >= threshold:
            health.opened_until = now + timedelta(seconds=cooldown(health.consecutive_failures))
            health.probing = False
        health.save()
    return health


# --- the same for a batch (postbacks/delivery/batch.py): a look per endpoint, not per delivery


def defer_open_endpoints(deliveries: list[Delivery]) -> list[Delivery]:
    """Of freshly claimed deliveries, return those that may be sent now; defer the rest.

    Like defer_if_open for each: a backed-off endpoint's deliveries move to when its breaker
    half-opens, with the claimed attempt given back; of a half-open endpoint's deliveries one
    goes out as the probe and the others wait for its outcome.
    """
    if not conf.breaker_threshold():
        return deliveries
    hosts = {endpoint_key(d.postback.url) for d in deliveries if not d.is_test}
    open_hosts = set(
        EndpointHealth.objects.filter(host__in=hosts, opened_until__isnull=False).values_list(
            "host", flat=True
        )
    )
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
            decided[host] = _backed_off(host)
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


def record_outcomes(outcomes: list[tuple[Delivery, object]]) -> None:
    """record_outcome for a batch of finished attempts, in the order they finished: per endpoint,
    a success closes the breaker and only the failures after the last success count."""
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
        if closed:
            EndpointHealth.objects.filter(host=host).exclude(
                consecutive_failures=0, opened_until=None
            ).update(
                consecutive_failures=0, first_failure_at=None, opened_until=None, probing=False
            )
        if errors:
            auto_pause(_count_failure(host, errors[-1], failures=len(errors)))


def cooldown(consecutive_failures: int) -> float:
    """Seconds to back off: the base at the threshold, doubling with each further failure."""
    extra = max(consecutive_failures - conf.breaker_threshold(), 0)
    base = conf.breaker_cooldown()
    return min(base * 2 ** min(extra, 30), conf.breaker_max_cooldown())


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
    name = health.host.rsplit(":", 1)[0]
    ids = [
        p.pk
        for p in Postback.objects.filter(active=True, url__icontains=name).only("pk", "url")
        if endpoint_key(p.url) == health.host
    ]
    return Postback.objects.filter(pk__in=ids).update(active=False, paused_reason=reason)


def resume(postback: Postback) -> None:
    """A person resumed the postback: forget the pause and start the endpoint's streak afresh."""
    Postback.objects.filter(pk=postback.pk).update(paused_reason="")
    postback.paused_reason = ""
    EndpointHealth.objects.filter(host=endpoint_key(postback.url)).update(
        consecutive_failures=0, first_failure_at=None, opened_until=None, probing=False
    )
