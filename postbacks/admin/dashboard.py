"""The delivery dashboard page: counts, success rate and latency per affiliate and per
postback, deliveries per hour by state, the endpoints failing now (from the circuit
breaker's EndpointHealth rows and the postbacks' latest deliveries), and the postbacks waiting
for an exchange rate (not an endpoint failure: nothing was sent). Test sends are left out.

The numbers come from one snapshot (postbacks/stats.py): finished deliveries from the hourly
roll-up plus a live count since, open ones counted live, all grouped by postback and hour in the
database. Python only adds up those grouped rows (postbacks × hours, never deliveries), so the
page costs the same with a thousand deliveries or millions. Windows are whole hours: the last
24, the last 7 × 24, the current hour included. Latency is each delivery's latest attempt;
percentiles are nearest-rank over ten-per-cent buckets (within 5 %).
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.template.response import TemplateResponse
from django.utils import timezone

from postbacks import money, stats
from postbacks.admin.html import STATE_COLOURS, log_url
from postbacks.delivery import breaker
from postbacks.models import Delivery, DeliveryState, EndpointHealth, Postback
from trackdesk.masking import mask

WINDOWS = stats.WINDOWS
CHART_STATES = (
    DeliveryState.SUCCESS,
    DeliveryState.FAILED,
    DeliveryState.RETRYING,
    DeliveryState.PENDING,
)
FAILING_LIMIT = 50
FAILING_STATES = (DeliveryState.FAILED, DeliveryState.RETRYING)
CHART_HOURS = 24
TEMPLATE = "admin/postbacks/dashboard.html"


def dashboard_view(request, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    snapshot = take_snapshot(now)
    hours = hourly(now, snapshot=snapshot)
    peak = max((bar.total for bar in hours), default=0) or 1
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Delivery dashboard",
        "by_affiliate": group_stats("affiliate", now, snapshot),
        "by_postback": group_stats("postback", now, snapshot),
        "windows": list(WINDOWS),
        "chart": [_chart_bar(bar, peak) for bar in hours],
        "peak": peak,
        "legend": [(DeliveryState(s).label, STATE_COLOURS[s]) for s in CHART_STATES],
        "failing": failing_endpoints(),
        "waiting_for_rates": waiting_for_rates(),
        "log_url": log_url(),
    }
    return TemplateResponse(request, TEMPLATE, context)


def _chart_bar(bar: "HourBar", peak: int) -> dict:
    """One hour's stacked bar: a part per state, its height in percent of the busiest hour."""
    return {
        "hour": bar.hour,
        "total": bar.total,
        "parts": [
            {
                "state": DeliveryState(state).label,
                "count": count,
                "colour": STATE_COLOURS[state],
                "percent": round(100 * count / peak, 2),
            }
            for state, count in bar.counts.items()
            if count
        ],
    }


@dataclass
class WindowStats:
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    p50_ms: int | None = None
    p95_ms: int | None = None

    @property
    def total(self) -> int:
        return self.delivered + self.failed + self.pending

    @property
    def success_rate(self) -> float | None:
        """Delivered out of finished (delivered or failed), in percent; None when none finished."""
        finished = self.delivered + self.failed
        return round(100 * self.delivered / finished, 1) if finished else None


@dataclass
class GroupStats:
    key: int
    labels: list
    windows: dict = field(default_factory=dict)  # "24h" / "7d" → WindowStats


def real_deliveries():
    return Delivery.objects.filter(is_test=False)


def window_starts(now: datetime) -> dict[str, datetime]:
    """Each window as whole hours, the current one included (24 hours, 7 × 24 hours)."""
    current = stats.hour_of(now)
    return {name: current - span + timedelta(hours=1) for name, span in WINDOWS.items()}


def chart_start(now: datetime, hours: int = CHART_HOURS) -> datetime:
    return stats.hour_of(now) - timedelta(hours=hours - 1)


def take_snapshot(now: datetime | None = None) -> stats.Snapshot:
    now = now or timezone.now()
    return stats.snapshot(window_starts(now), chart_start(now))


def group_stats(
    group: str, now: datetime | None = None, snapshot: stats.Snapshot | None = None
) -> list[GroupStats]:
    """Per affiliate or per postback ("affiliate" / "postback"), busiest first (7 days)."""
    snap = snapshot or take_snapshot(now)
    postback_ids = {pk for pk, _ in snap.finished} | {pk for pk, _ in snap.open}
    postbacks = {
        p.pk: p for p in Postback.objects.filter(pk__in=postback_ids).select_related("affiliate")
    }
    if group == "affiliate":
        key_of = {pk: p.affiliate_id for pk, p in postbacks.items()}
        labels_of = {p.affiliate_id: [p.affiliate.name] for p in postbacks.values()}
    else:
        key_of = {pk: pk for pk in postbacks}
        labels_of = {pk: [p.name, p.affiliate.name] for pk, p in postbacks.items()}
    finished: dict = {}  # (group key, window) → stats.Finished
    pending: Counter = Counter()
    for (postback_id, name), done in snap.finished.items():  # postbacks × windows
        if postback_id in key_of:
            finished.setdefault((key_of[postback_id], name), stats.Finished()).merge(done)
    for (postback_id, name), n in snap.open.items():
        if postback_id in key_of:
            pending[key_of[postback_id], name] += n
    result = []
    for key, labels in labels_of.items():
        windows = {}
        for name in WINDOWS:
            done = finished.get((key, name), stats.Finished())
            windows[name] = WindowStats(
                done.delivered,
                done.failed,
                pending[key, name],
                done.percentile(0.5),
                done.percentile(0.95),
            )
        if windows["7d"].total:
            result.append(GroupStats(key=key, labels=labels, windows=windows))
    return sorted(result, key=lambda g: (-g.windows["7d"].total, g.key))


@dataclass
class HourBar:
    hour: datetime
    counts: dict  # state → count

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def hourly(now: datetime | None = None, snapshot: stats.Snapshot | None = None) -> list[HourBar]:
    """Per hour of the last 24, oldest first, empty hours included: deliveries delivered and
    failed in that hour, and those triggered in that hour still pending or waiting to retry."""
    now = now or timezone.now()
    snap = snapshot or take_snapshot(now)
    first = chart_start(now)
    bars = []
    for i in range(CHART_HOURS):
        hour = first + timedelta(hours=i)
        counts = snap.hours.get(hour, {})
        bars.append(HourBar(hour, {state: counts.get(state, 0) for state in CHART_STATES}))
    return bars


@dataclass
class FailingEndpoint:
    """One endpoint (host:port) failing now, with its postbacks (active or paused)."""

    host: str
    health: EndpointHealth | None  # the breaker's streak; None: only refusals or render errors
    postbacks: list = field(default_factory=list)  # Postback rows, annotated (see below)

    @property
    def failing_since(self):
        return self.health.first_failure_at if self.health else None

    @property
    def consecutive_failures(self):
        return self.health.consecutive_failures if self.health else None

    @property
    def backed_off_until(self):
        return self.health.opened_until if self.health else None

    @property
    def last_error(self) -> str:
        """The breaker's last error, else the latest delivery's; masked like the log."""
        if self.health and self.health.last_error:
            return mask(self.health.last_error)
        return mask(next((p.last_error for p in self.postbacks if p.last_error), ""))

    @property
    def last_failure_at(self):
        """When the endpoint failed last: the breaker's record, else the latest failed delivery."""
        times = [p.last_at for p in self.postbacks if p.last_state in FAILING_STATES]
        if self.health and self.health.last_failure_at:
            times.append(self.health.last_failure_at)
        return max(times, default=None)

    @property
    def paused(self) -> list:
        return [p for p in self.postbacks if p.paused]

    @property
    def retrying(self) -> int:
        return sum(p.retrying for p in self.postbacks)


def failing_endpoints(limit: int = FAILING_LIMIT) -> list[FailingEndpoint]:
    """Endpoints failing now, most recently failed first: those with a failure streak in
    EndpointHealth (the circuit breaker's record), and those of postbacks whose latest attempted
    delivery failed or waits for a retry (also refusals and render errors, which the breaker
    does not count). Each lists its active postbacks and those paused automatically (flagged,
    with the reason), never ones switched off by hand. Four queries, whatever the numbers.
    """
    shown = Postback.objects.filter(Q(active=True) | ~Q(paused_reason=""))
    latest = (
        real_deliveries()
        .filter(postback=OuterRef("pk"), attempts__gt=0, waiting_for_rate="")
        .order_by("-created", "-pk")
    )
    annotated = shown.select_related("affiliate").annotate(
        last_state=Subquery(latest.values("state")[:1]),
        last_at=Subquery(latest.values("created")[:1]),
        last_code=Subquery(latest.values("last_status_code")[:1]),
        last_error=Subquery(latest.values("last_error")[:1]),
    )
    failing = list(
        annotated.filter(last_state__in=FAILING_STATES).order_by("-last_at", "pk")[:limit]
    )
    # The streaks of those postbacks' endpoints, and the most recent other streaks.
    streaks = EndpointHealth.objects.filter(consecutive_failures__gt=0)
    recent = streaks.order_by("-last_failure_at", "host").values("pk")[:limit]
    keys = {breaker.endpoint_key(p.url) for p in failing}
    health = {h.host: h for h in streaks.filter(Q(pk__in=recent) | Q(host__in=keys))}
    # The postbacks of the failing hosts: narrowed by name in the database, by key here.
    on_hosts = []
    if health:
        by_name = Q()
        for name in {host.rsplit(":", 1)[0] for host in health}:
            by_name |= Q(url__icontains=name)
        on_hosts = list(annotated.filter(by_name).order_by("pk"))
    failing_ids = {p.pk for p in failing}
    postbacks = {p.pk: p for p in [*failing, *on_hosts]}
    retrying = dict(
        real_deliveries()
        .filter(postback__in=list(postbacks), state=DeliveryState.RETRYING, waiting_for_rate="")
        .values_list("postback_id")
        .annotate(n=Count("*"))
        .order_by()
    )
    endpoints: dict[str, FailingEndpoint] = {}
    for postback in sorted(postbacks.values(), key=lambda p: (p.name, p.pk)):
        host = breaker.endpoint_key(postback.url)
        if postback.pk not in failing_ids and host not in health:
            continue  # its URL only looked like a failing host's
        postback.paused = not postback.active
        postback.paused_reason_shown = mask(postback.paused_reason)
        postback.retrying = retrying.get(postback.pk, 0)
        endpoint = endpoints.setdefault(host, FailingEndpoint(host, health.get(host)))
        endpoint.postbacks.append(postback)
    # A failure streak whose postbacks all moved to another URL (or were switched off) is left
    # out: nothing there to act on (Admin → Endpoint health still lists it).
    ordered = sorted(
        endpoints.values(),
        key=lambda e: (e.last_failure_at or datetime.min.replace(tzinfo=UTC), e.host),
        reverse=True,
    )
    return ordered[:limit]


@dataclass
class RateWait:
    """A postback with deliveries waiting for an exchange rate (one row per currency pair)."""

    postback: Postback
    pair: str
    deliveries: int
    since: datetime


def waiting_for_rates(limit: int = FAILING_LIMIT) -> list[RateWait]:
    """Postbacks whose deliveries wait for a missing exchange rate, most deliveries first; they
    are sent by themselves once the rate is saved. Two queries."""
    rows = list(
        money.waiting_for_rates()
        .values("postback_id", "waiting_for_rate")
        .annotate(n=Count("*"), since=Min("created"))
        .order_by("-n", "postback_id", "waiting_for_rate")[:limit]
    )
    postbacks = Postback.objects.select_related("affiliate").in_bulk(
        {row["postback_id"] for row in rows}
    )
    return [
        RateWait(postbacks[row["postback_id"]], row["waiting_for_rate"], row["n"], row["since"])
        for row in rows
    ]
