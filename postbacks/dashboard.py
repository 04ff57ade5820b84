"""Delivery dashboard queries: counts, success rate and latency per affiliate and per postback,
deliveries per hour by state, and the endpoints failing now. Test sends are left out.

Every number is computed by the database with one aggregate query per table section; Python
only arranges the (bounded) grouped rows. Latency is the response time of each delivery's
latest attempt (`last_duration_ms`). Percentiles are nearest-rank (p50 = the ⌈n/2⌉-th smallest,
p95 = the ⌈0.95·n⌉-th), found with ROW_NUMBER() and COUNT() windows partitioned by group and
keeping only the two ranked rows per group: SQLite has no percentile function, and windows work
the same on SQLite and PostgreSQL. The database sorts each group's durations once; nothing is
read into Python row by row.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber, TruncHour
from django.utils import timezone

from .models import Delivery, DeliveryState, Postback

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
OPEN = (DeliveryState.PENDING, DeliveryState.RETRYING)
CHART_STATES = (
    DeliveryState.SUCCESS,
    DeliveryState.FAILED,
    DeliveryState.RETRYING,
    DeliveryState.PENDING,
)
FAILING_LIMIT = 50

GROUPS = {
    "affiliate": ("postback__affiliate_id", ["postback__affiliate__name"]),
    "postback": ("postback_id", ["postback__name", "postback__affiliate__name"]),
}


@dataclass
class WindowStats:
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    p50_ms: int | None = None
    p95_ms: int | None = None

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


def group_stats(group: str, now: datetime | None = None) -> list[GroupStats]:
    """Per affiliate or per postback ("affiliate" / "postback"), busiest first (7 days)."""
    now = now or timezone.now()
    key, label_fields = GROUPS[group]
    since = {name: now - span for name, span in WINDOWS.items()}
    counts = {}
    for name, start in since.items():
        in_window = Q(created__gte=start)
        counts[f"delivered_{name}"] = Count("pk", filter=in_window & Q(state=DeliveryState.SUCCESS))
        counts[f"failed_{name}"] = Count("pk", filter=in_window & Q(state=DeliveryState.FAILED))
        counts[f"pending_{name}"] = Count("pk", filter=in_window & Q(state__in=OPEN))
    rows = (
        real_deliveries()
        .filter(created__gte=since["7d"])
        .values(key, *label_fields)
        .annotate(total=Count("pk"), **counts)
        .order_by("-total", key)
    )
    result = {
        row[key]: GroupStats(
            key=row[key],
            labels=[row[f] for f in label_fields],
            windows={
                name: WindowStats(
                    row[f"delivered_{name}"], row[f"failed_{name}"], row[f"pending_{name}"]
                )
                for name in WINDOWS
            },
        )
        for row in rows
    }
    for name, start in since.items():
        for group_key, (p50, p95) in latency_percentiles(
            real_deliveries().filter(created__gte=start), key
        ).items():
            if group_key in result:
                result[group_key].windows[name].p50_ms = p50
                result[group_key].windows[name].p95_ms = p95
    return list(result.values())


def latency_percentiles(queryset, key: str) -> dict:
    """{group key: (p50, p95)} of last_duration_ms, nearest rank, computed by the database."""
    partition = [F(key)]
    ranked = (
        queryset.filter(last_duration_ms__isnull=False)
        .annotate(
            n=Window(Count("pk"), partition_by=partition),
            rank=Window(
                RowNumber(),
                partition_by=partition,
                order_by=[F("last_duration_ms").asc(), F("pk").asc()],
            ),
        )
        .filter(Q(rank=(F("n") + 1) / 2) | Q(rank=(F("n") * 95 + 99) / 100))
        .values_list(key, "rank", "n", "last_duration_ms")
    )
    found: dict = {}
    for group_key, rank, n, duration in ranked:  # at most two rows per group
        p50, p95 = found.get(group_key, (None, None))
        if rank == (n + 1) // 2:
            p50 = duration
        if rank == (n * 95 + 99) // 100:
            p95 = duration
        found[group_key] = (p50, p95)
    return found


@dataclass
class HourBar:
    hour: datetime
    counts: dict  # state → count

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def hourly(now: datetime | None = None, hours: int = 24) -> list[HourBar]:
    """Deliveries triggered per hour by current state, oldest hour first, empty hours included."""
    now = now or timezone.now()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    rows = (
        real_deliveries()
        .filter(created__gte=first)
        .annotate(hour=TruncHour("created"))
        .values("hour", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    bars = [
        HourBar(first + timedelta(hours=i), dict.fromkeys(CHART_STATES, 0)) for i in range(hours)
    ]
    by_hour = {bar.hour: bar for bar in bars}
    for row in rows:  # at most hours × states rows
        bar = by_hour.get(row["hour"])
        if bar is not None:
            bar.counts[row["state"]] = row["n"]
    return bars


def failing_endpoints(limit: int = FAILING_LIMIT) -> list[Postback]:
    """Active postbacks whose latest attempted delivery failed or waits for a retry."""
    latest = (
        real_deliveries()
        .filter(postback=OuterRef("pk"), attempts__gt=0)
        .order_by("-created", "-pk")
    )
    open_retries = (
        real_deliveries()
        .filter(postback=OuterRef("pk"), state=DeliveryState.RETRYING)
        .order_by()
        .values("postback")
        .annotate(n=Count("pk"))
        .values("n")
    )
    failing = list(
        Postback.objects.filter(active=True)
        .select_related("affiliate")
        .annotate(
            last_state=Subquery(latest.values("state")[:1]),
            last_at=Subquery(latest.values("created")[:1]),
            last_code=Subquery(latest.values("last_status_code")[:1]),
            last_error=Subquery(latest.values("last_error")[:1]),
            retrying=Subquery(open_retries),
        )
        .filter(last_state__in=[DeliveryState.FAILED, DeliveryState.RETRYING])
        .order_by("-last_at")[:limit]
    )
    for postback in failing:
        postback.host = urlsplit(postback.url).hostname or postback.url
    return failing
