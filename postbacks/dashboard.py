"""Delivery dashboard: counts, success rate and latency per affiliate and per postback,
deliveries per hour by state, and the endpoints failing now. Test sends are left out.

The numbers come from one snapshot (postbacks/stats.py): finished deliveries from the hourly
roll-up plus a live count since, open ones counted live, all grouped by postback and hour in the
database. Python only adds up those grouped rows (postbacks × hours, never deliveries), so the
page costs the same with a thousand deliveries or millions. Windows are whole hours: the last
24, the last 7 × 24, the current hour included. Latency is each delivery's latest attempt;
percentiles are nearest-rank over ten-per-cent buckets (within 5 %).
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from . import stats
from .models import Delivery, DeliveryState, Postback

WINDOWS = stats.WINDOWS
OPEN = (DeliveryState.PENDING, DeliveryState.RETRYING)
CHART_STATES = (
    DeliveryState.SUCCESS,
    DeliveryState.FAILED,
    DeliveryState.RETRYING,
    DeliveryState.PENDING,
)
FAILING_LIMIT = 50
CHART_HOURS = 24


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


def failing_endpoints(limit: int = FAILING_LIMIT) -> list[Postback]:
    """Active postbacks whose latest attempted delivery failed or waits for a retry."""
    latest = (
        real_deliveries()
        .filter(postback=OuterRef("pk"), attempts__gt=0)
        .order_by("-created", "-pk")
    )
    failing = list(
        Postback.objects.filter(active=True)
        .select_related("affiliate")
        .annotate(
            last_state=Subquery(latest.values("state")[:1]),
            last_at=Subquery(latest.values("created")[:1]),
            last_code=Subquery(latest.values("last_status_code")[:1]),
            last_error=Subquery(latest.values("last_error")[:1]),
        )
        .filter(last_state__in=[DeliveryState.FAILED, DeliveryState.RETRYING])
        .order_by("-last_at")[:limit]
    )
    retrying = dict(
        real_deliveries()
        .filter(postback__in=[p.pk for p in failing], state=DeliveryState.RETRYING)
        .values_list("postback_id")
        .annotate(n=Count("*"))
        .order_by()
    )
    for postback in failing:
        postback.host = urlsplit(postback.url).hostname or postback.url
        postback.retrying = retrying.get(postback.pk)
    return failing
