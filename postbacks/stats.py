"""Dashboard statistics that stay fast with millions of deliveries: an hourly roll-up.

What the dashboard shows of finished deliveries (delivered, failed, latency) is counted by the
hour the delivery finished, an event that does not change once the hour is over. So hours that
are over are rolled up once into DeliveryStat (per postback, hour and latency bucket) by a
django-q2 schedule every few minutes; the dashboard sums the rolled-up rows in the database and
adds a live count of what finished since (a couple of hours of rows, on the finished_at index).
Open deliveries (pending, retrying) change all the time and are counted live.

Latency is each finished delivery's last attempt (last_duration_ms), counted in logarithmic
buckets ten per cent wide, so percentiles are nearest-rank over the buckets and shown as the
bucket's middle: within 5 % of the exact value.
"""

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Floor, Greatest, Ln, TruncHour

from .models import Delivery, DeliveryStat, DeliveryState, StatsProgress

# An hour is rolled up this long after it ended: attempts finishing at its last moment are
# written by then.
LAG = timedelta(minutes=5)
# How far back the first roll-up goes (the dashboard shows at most 7 days).
HISTORY = timedelta(days=8)
BUCKET_BASE = 1.1
LOG_BASE = math.log(BUCKET_BASE)
FINISHED = (DeliveryState.SUCCESS, DeliveryState.FAILED)
OPEN = (DeliveryState.PENDING, DeliveryState.RETRYING)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def bucket_of(duration_ms: float) -> int:
    return math.floor(math.log(max(duration_ms, 1)) / LOG_BASE)


def bucket_value(bucket: int) -> int:
    """The middle of a latency bucket, in milliseconds."""
    return round(BUCKET_BASE ** (bucket + 0.5))


@dataclass
class Finished:
    """Finished deliveries of one group over some hours."""

    delivered: int = 0
    failed: int = 0
    latency: Counter = field(default_factory=Counter)  # bucket → count

    def add(self, delivered: int, failed: int, bucket) -> None:
        self.delivered += delivered
        self.failed += failed
        if bucket is not None:
            self.latency[int(bucket)] += delivered + failed

    def merge(self, other: "Finished") -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.latency.update(other.latency)

    def percentile(self, q: float) -> int | None:
        """Nearest rank over the buckets: the bucket holding the ⌈q·n⌉-th smallest duration."""
        n = sum(self.latency.values())
        if not n:
            return None
        rank, seen = math.ceil(q * n), 0
        for bucket in sorted(self.latency):
            seen += self.latency[bucket]
            if seen >= rank:
                return bucket_value(bucket)
        return None  # not reached


def _finished_rows(start: datetime, end: datetime | None = None):
    """(postback, hour, bucket, delivered, failed) of deliveries finished in [start, end)."""
    rows = Delivery.objects.filter(is_test=False, state__in=FINISHED, finished_at__gte=start)
    if end is not None:
        rows = rows.filter(finished_at__lt=end)
    return (
        rows.annotate(
            bucket=Floor(Ln(Greatest(F("last_duration_ms"), Value(1))) / Value(LOG_BASE)),
            hour=TruncHour("finished_at"),
        )
        .values_list("postback_id", "hour", "bucket")
        .annotate(
            delivered=Count("pk", filter=Q(state=DeliveryState.SUCCESS)),
            failed=Count("pk", filter=Q(state=DeliveryState.FAILED)),
        )
        .order_by()
    )


def roll_up(now: datetime | None = None, *, max_hours: int = 24 * 9) -> int:
    """Roll up every hour that is over and not rolled up yet; returns how many hours."""
    from django.utils import timezone

    now = now or timezone.now()
    until = hour_of(now - LAG)
    with transaction.atomic():
        progress, _ = StatsProgress.objects.select_for_update().get_or_create(pk=1)
        start = progress.rolled_until or hour_of(now - HISTORY)
        end = min(until, start + timedelta(hours=max_hours))
        hours = max(int((end - start).total_seconds() // 3600), 0)
        if hours:
            DeliveryStat.objects.filter(hour__gte=start, hour__lt=end).delete()
            DeliveryStat.objects.bulk_create(
                (
                    DeliveryStat(
                        hour=hour,
                        postback_id=postback_id,
                        bucket=None if bucket is None else int(bucket),
                        delivered=delivered,
                        failed=failed,
                    )
                    for postback_id, hour, bucket, delivered, failed in _finished_rows(start, end)
                ),
                batch_size=2000,
            )
            progress.rolled_until = end
            progress.save(update_fields=["rolled_until"])
    DeliveryStat.objects.filter(hour__lt=hour_of(now - HISTORY)).delete()
    return hours


@dataclass
class Snapshot:
    """What the dashboard shows, for named windows of whole hours and a chart of hours."""

    finished: dict = field(default_factory=dict)  # (postback id, window) → Finished
    open: Counter = field(default_factory=Counter)  # (postback id, window) → open deliveries
    hours: dict = field(default_factory=dict)  # hour → Counter of states (chart)


def snapshot(windows: dict[str, datetime], chart_from: datetime) -> Snapshot:
    """Five grouped queries, whatever the number of deliveries: progress, roll-up by window,
    roll-up by hour, live rows since the roll-up, open deliveries (two ways)."""
    snap = Snapshot()
    earliest = min([*windows.values(), chart_from])
    rolled = StatsProgress.objects.filter(pk=1).values_list("rolled_until", flat=True).first()
    live_from = earliest
    if rolled is not None and rolled > earliest:
        sums = {}
        for name, start in windows.items():
            in_window = Q(hour__gte=start)
            sums[f"d_{name}"] = Sum("delivered", filter=in_window)
            sums[f"f_{name}"] = Sum("failed", filter=in_window)
        stored = (
            DeliveryStat.objects.filter(hour__gte=earliest, hour__lt=rolled)
            .values("postback_id", "bucket")
            .annotate(**sums)
            .order_by()
        )
        for row in stored:  # postbacks × buckets
            for name in windows:
                delivered, failed = row[f"d_{name}"] or 0, row[f"f_{name}"] or 0
                if delivered or failed:
                    key = (row["postback_id"], name)
                    snap.finished.setdefault(key, Finished()).add(delivered, failed, row["bucket"])
        by_hour = (
            DeliveryStat.objects.filter(hour__gte=chart_from, hour__lt=rolled)
            .values_list("hour")
            .annotate(Sum("delivered"), Sum("failed"))
            .order_by()
        )
        for hour, delivered, failed in by_hour:
            snap.hours[hour] = Counter(
                {DeliveryState.SUCCESS: delivered, DeliveryState.FAILED: failed}
            )
        live_from = rolled
    for postback_id, hour, bucket, delivered, failed in _finished_rows(live_from):
        for name, start in windows.items():
            if hour >= start:
                snap.finished.setdefault((postback_id, name), Finished()).add(
                    delivered, failed, bucket
                )
        if hour >= chart_from:
            counts = snap.hours.setdefault(hour, Counter())
            counts[DeliveryState.SUCCESS] += delivered
            counts[DeliveryState.FAILED] += failed
    open_now = Delivery.objects.filter(state__in=OPEN, is_test=False, created__gte=earliest)
    per_window = {
        f"o_{name}": Count("pk", filter=Q(created__gte=start)) for name, start in windows.items()
    }
    for row in open_now.values("postback_id").annotate(**per_window).order_by():
        for name in windows:
            snap.open[row["postback_id"], name] = row[f"o_{name}"]
    chart_rows = (
        open_now.filter(created__gte=chart_from)
        .annotate(hour=TruncHour("created"))
        .values_list("hour", "state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for hour, state, n in chart_rows:
        snap.hours.setdefault(hour, Counter())[state] += n
    return snap
