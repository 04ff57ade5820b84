"""Alerts: a postback paused automatically, or an endpoint that keeps failing, becomes one Alert
row, e-mailed to the affiliate's manager and the "Affiliate managers" group and shown on the
admin index until someone acknowledges it.

Raising is cheap and never sends mail: auto_pause (postbacks/delivery/breaker.py) signals the
postbacks it pauses, and `check` (a django-q2 schedule, every minute) raises alerts for endpoints
whose failure streak (EndpointHealth) reached POSTBACK_ALERT_FAILURES, then mails what is new.
A mail that cannot be sent is logged and noted on the alert; it never holds back a delivery.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from postbacks import conf
from postbacks.delivery import breaker
from postbacks.models import Alert, AlertKind, EndpointHealth, Postback
from postbacks.roles import MANAGERS
from trackdesk.masking import mask_text

log = logging.getLogger(__name__)

# Postbacks listed by name in one endpoint's e-mail at most (the rest are counted).
LISTED_POSTBACKS = 20


# --- raising -------------------------------------------------------------------------------------


def raise_alert(subject: str, **fields) -> Alert | None:
    """A new open alert for `subject`, or None while one is open for it already."""
    try:
        with transaction.atomic():
            if Alert.objects.filter(subject=subject, acknowledged_at__isnull=True).exists():
                return None
            return Alert.objects.create(subject=subject, **fields)
    except IntegrityError:  # another worker raised it at the same moment
        return None


def postbacks_paused(health: EndpointHealth, postback_ids) -> list[Alert]:
    """An alert for each postback auto_pause pauses (their endpoint failed for too long)."""
    raised = []
    for postback in Postback.objects.filter(pk__in=list(postback_ids)).select_related("affiliate"):
        summary = (
            f"Postback “{postback.name}” of {postback.affiliate} was paused automatically: its "
            f"endpoint {health.host} has failed every attempt since "
            f"{health.first_failure_at:%Y-%m-%d %H:%M} UTC ({health.consecutive_failures} in a "
            "row). Fix the endpoint, then tick Active on the postback to resume it and retry the "
            "failed deliveries."
        )
        alert = raise_alert(
            f"postback:{postback.pk}",
            kind=AlertKind.PAUSED,
            postback=postback,
            endpoint=health.host,
            summary=summary,
            last_error=health.last_error,
        )
        raised += [alert] if alert else []
    return raised


@receiver(breaker.postbacks_paused, dispatch_uid="postbacks.alerts")
def _on_postbacks_paused(sender, health, postback_ids, **kwargs) -> None:
    postbacks_paused(health, postback_ids)


def raise_failing_endpoints(now=None) -> list[Alert]:
    """An alert for each endpoint with active postbacks whose failure streak reached
    POSTBACK_ALERT_FAILURES: once per streak, and again POSTBACK_ALERT_WINDOW_HOURS after the
    last alert if it still fails and that alert was acknowledged."""
    threshold = conf.alert_failures()
    if not threshold:
        return []
    now = now or timezone.now()
    window_start = now - timedelta(hours=conf.alert_window_hours())
    raised = []
    for health in EndpointHealth.objects.filter(consecutive_failures__gte=threshold):
        since = max(health.first_failure_at or window_start, window_start)
        subject = f"endpoint:{health.host}"
        if Alert.objects.filter(subject=subject, created__gte=since).exists():
            continue
        if not breaker.postbacks_of(health.host):  # nobody's postbacks wait for it
            continue
        alert = raise_alert(
            subject,
            kind=AlertKind.FAILING,
            endpoint=health.host,
            summary=(
                f"The endpoint {health.host} keeps failing: {health.consecutive_failures} failed "
                f"attempts in a row since {health.first_failure_at:%Y-%m-%d %H:%M} UTC. Its "
                "deliveries are retried on the retry schedule; check the endpoint with the "
                "affiliate."
            ),
            last_error=health.last_error,
        )
        raised += [alert] if alert else []
    return raised


# --- reading and acknowledging --------------------------------------------------------------------


def open_alerts():
    """Alerts nobody has acknowledged yet, oldest first (the admin index banner)."""
    return (
        Alert.objects.filter(acknowledged_at__isnull=True)
        .select_related("postback__affiliate")
        .order_by("created")
    )


def acknowledge(alert_id: int, user) -> bool:
    """Take the alert off everyone's banner, noting who and when; False if it was not open."""
    return bool(
        Alert.objects.filter(pk=alert_id, acknowledged_at__isnull=True).update(
            acknowledged_at=timezone.now(), acknowledged_by=user
        )
    )


# --- mailing -------------------------------------------------------------------------------------


def affected_postbacks(alert: Alert) -> list[Postback]:
    """The postback of a pause alert; the active postbacks at the endpoint of a failing one."""
    if alert.kind == AlertKind.PAUSED:
        return [alert.postback] if alert.postback else []
    ids = breaker.postbacks_of(alert.endpoint)
    return list(Postback.objects.filter(pk__in=ids).select_related("affiliate__manager"))


def recipients(postbacks: list[Postback]) -> list[str]:
    """E-mail addresses of the postbacks' affiliates' managers and the Affiliate managers group
    (active users with an address)."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    managers = {p.affiliate.manager_id for p in postbacks if p.affiliate.manager_id}
    addresses = users.filter(pk__in=managers).values_list("email", flat=True)
    group = users.filter(groups__name=MANAGERS).values_list("email", flat=True)
    return sorted({*addresses, *group})


def link(path: str, **query) -> str:
    """An absolute link into the back office: on SITE_URL, else PUBLIC_BASE_URL, else a path."""
    base = settings.SITE_URL or settings.PUBLIC_BASE_URL
    return f"{base}{path}" + (f"?{urlencode(query)}" if query else "")


def postback_lines(postback: Postback) -> list[str]:
    change = reverse("admin:postbacks_postback_change", args=[postback.pk])
    log_url = reverse("admin:postbacks_delivery_changelist")
    return [
        f"- {postback.name} (affiliate {postback.affiliate})",
        f"  Postback: {link(change)}",
        f"  Log:      {link(log_url, postback__id__exact=postback.pk)}",
    ]


def compose(alert: Alert, postbacks: list[Postback]) -> tuple[str, str]:
    """The e-mail's subject and body; secrets in the error and URLs masked."""
    if alert.kind == AlertKind.PAUSED and alert.postback:
        subject = f"Postback paused: {alert.postback.name} ({alert.postback.affiliate})"
    else:
        subject = f"Endpoint keeps failing: {alert.endpoint}"
    lines = [mask_text(alert.summary), "", f"Endpoint: {alert.endpoint}"]
    lines += [f"Last error: {mask_text(alert.last_error) or '(none recorded)'}", ""]
    if postbacks:
        lines.append("Postbacks:" if len(postbacks) > 1 else "Postback:")
        for postback in postbacks[:LISTED_POSTBACKS]:
            lines += postback_lines(postback)
        if len(postbacks) > LISTED_POSTBACKS:
            lines.append(f"- and {len(postbacks) - LISTED_POSTBACKS} more")
        lines.append("")
    lines.append(f"Acknowledge the alert on the admin's home page: {link(reverse('admin:index'))}")
    return f"[Trackdesk] {subject}", "\n".join(lines) + "\n"


def mail(alert: Alert) -> bool:
    """E-mail one alert, at most once even with two workers; a failure is logged and noted."""
    now = timezone.now()
    if not Alert.objects.filter(pk=alert.pk, mailed_at__isnull=True).update(mailed_at=now):
        return False  # another worker has it
    postbacks = affected_postbacks(alert)
    to = recipients(postbacks)
    if not to:
        note = "Nobody to e-mail: set the affiliate's manager (with an e-mail address), or add "
        note += "users with one to the Affiliate managers group."
        Alert.objects.filter(pk=alert.pk).update(mail_error=note)
        return False
    subject, body = compose(alert, postbacks)
    try:
        EmailMessage(subject, body, to=to).send()
    except Exception as exc:  # any backend error: logged, noted, never raised into a worker
        log.exception("Could not e-mail alert %s to %s", alert.pk, ", ".join(to))
        Alert.objects.filter(pk=alert.pk).update(mailed_to=", ".join(to), mail_error=str(exc))
        return False
    Alert.objects.filter(pk=alert.pk).update(mailed_to=", ".join(to))
    return True


def mail_new() -> int:
    """E-mail every alert not mailed yet; returns how many were sent."""
    pending = Alert.objects.filter(mailed_at__isnull=True).select_related("postback__affiliate")
    return sum(mail(alert) for alert in pending.order_by("created"))


def check() -> str:
    """The every-minute run: raise alerts for endpoints that keep failing, mail new alerts."""
    raised = raise_failing_endpoints()
    sent = mail_new()
    return f"{len(raised)} endpoint alert(s) raised, {sent} alert e-mail(s) sent"
