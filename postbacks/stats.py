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
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Floor, Greatest, Ln, TruncHour
from django.utils import timezone

from postbacks.models import (
    Delivery,
    DeliveryStat,
    DeliveryState,
    DeliveryWindowStat,
    Postback,
    StatsProgress,
)

# An hour is rolled up this long after it ended: attempts finishing at its last moment are
# written by then.
LAG = timedelta(minutes=5)
# How far back the first roll-up goes (the dashboard shows at most 7 days).
HISTORY = timedelta(days=8)
BUCKET_BASE = 1.1
LOG_BASE = math.log(BUCKET_BASE)
# The dashboard's windows: whole hours ending with the current one.
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}


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
    """(postback, hour, bucket, delivered, failed) of real deliveries finished in [start, end).

    finished_at is set only while a delivery is finished (a retry from the admin clears it), so
    its range is the whole WHERE clause: a condition on is_test or state could lead SQLite to
    scan another index. Test sends are grouped apart and dropped here instead.
    """
    rows = Delivery.objects.filter(finished_at__gte=start)
    if end is not None:
        rows = rows.filter(finished_at__lt=end)
    grouped = (
        rows.annotate(
            bucket=Floor(Ln(Greatest(F("last_duration_ms"), Value(1))) / Value(LOG_BASE)),
            hour=TruncHour("finished_at"),
        )
        .values_list("is_test", "postback_id", "hour", "bucket")
        .annotate(
            delivered=Count("pk", filter=Q(state=DeliveryState.SUCCESS)),
            failed=Count("pk", filter=Q(state=DeliveryState.FAILED)),
        )
        .order_by()
    )
    return [row[1:] for row in grouped if not row[0]]


def roll_up(now: datetime | None = None, *, max_hours: int = 24 * 9) -> int:
    """Roll up every hour that is over and not rolled up yet; returns how many hours."""
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
        if progress.rolled_until and progress.summary_until != progress.rolled_until:
            _summarise(progress.rolled_until)
            progress.summary_until = progress.rolled_until
        progress.save(update_fields=["rolled_until", "summary_until"])
    DeliveryStat.objects.filter(hour__lt=hour_of(now - HISTORY)).delete()
    return hours


def _summarise(until: datetime) -> None:
    """Rewrite DeliveryWindowStat: each window's hours ending at `until`, summed."""
    DeliveryWindowStat.objects.all().delete()
    for name, span in WINDOWS.items():
        rows = (
            DeliveryStat.objects.filter(hour__gte=until - span + timedelta(hours=1), hour__lt=until)
            .values_list("postback_id", "bucket")
            .annotate(Sum("delivered"), Sum("failed"))
            .order_by()
        )
        DeliveryWindowStat.objects.bulk_create(
            (
                DeliveryWindowStat(
                    window=name, postback_id=pk, bucket=bucket, delivered=d, failed=f
                )
                for pk, bucket, d, f in rows
            ),
            batch_size=2000,
        )


@dataclass
class Snapshot:
    """What the dashboard shows, for named windows of whole hours and a chart of hours."""

    finished: dict = field(default_factory=dict)  # (postback id, window) → Finished
    open: Counter = field(default_factory=Counter)  # (postback id, window) → open deliveries
    hours: dict = field(default_factory=dict)  # hour → Counter of states (chart)


def _progress() -> tuple[datetime | None, bool]:
    """Where the roll-up ends, and whether the window sums were rewritten at that end."""
    progress = StatsProgress.objects.filter(pk=1).first()
    rolled = progress.rolled_until if progress else None
    summary = progress is not None and rolled is not None and progress.summary_until == rolled
    return rolled, summary


def _add_rolled_up(finished: dict, windows: dict, rolled, summary: bool, postback_ids=None):
    """Add each window's rolled-up hours (those before `rolled`) to finished[(postback, name)]:
    from the window sums (less any hours at their start that the window has moved past since,
    when the roll-up is a little behind) or, failing those, from the hourly rows."""

    def add(name, rows, sign=1):
        for postback_id, bucket, delivered, failed in rows:
            if delivered or failed:
                stats = finished.setdefault((postback_id, name), Finished())
                stats.add(sign * delivered, sign * failed, bucket)

    hourly, sums = DeliveryStat.objects.all(), DeliveryWindowStat.objects.all()
    if postback_ids is not None:
        hourly, sums = (rows.filter(postback_id__in=postback_ids) for rows in (hourly, sums))
    hourly_sums = hourly.values_list("postback_id", "bucket").annotate(
        Sum("delivered"), Sum("failed")
    )
    for name, start in windows.items():
        if rolled is None or rolled <= start:
            continue  # nothing rolled up inside this window: all of it is live
        summed_from = rolled - WINDOWS.get(name, timedelta(0)) + timedelta(hours=1)
        if summary and name in WINDOWS and summed_from <= start:
            add(
                name,
                sums.filter(window=name).values_list(
                    "postback_id", "bucket", "delivered", "failed"
                ),
            )
            if summed_from < start:  # the window moved on since: take those hours back out
                add(name, hourly_sums.filter(hour__gte=summed_from, hour__lt=start).order_by(), -1)
        else:
            add(name, hourly_sums.filter(hour__gte=start, hour__lt=rolled).order_by())


def window_start(name: str, now: datetime) -> datetime:
    """The first hour of a named window of whole hours ending with the current one."""
    return hour_of(now) - WINDOWS[name] + timedelta(hours=1)


def finished_in_window(postback_ids, name: str = "24h", now=None) -> dict[int, Finished]:
    """Finished deliveries of these postbacks in a named window, per postback id: the
    dashboard's figures for one page of the postback list. A few grouped queries whatever the
    number of deliveries: the roll-up's rows of these postbacks and the live count since."""
    ids = list(postback_ids)
    start = window_start(name, now or timezone.now())
    rolled, summary = _progress()
    finished: dict = {}
    _add_rolled_up(finished, {name: start}, rolled, summary, postback_ids=ids)
    wanted = set(ids)
    live_from = start if rolled is None else max(rolled, start)
    for postback_id, _hour, bucket, delivered, failed in _finished_rows(live_from):
        if postback_id in wanted:
            finished.setdefault((postback_id, name), Finished()).add(delivered, failed, bucket)
    return {pk: done for (pk, _), done in finished.items()}


def latest_delivery():
    """The newest delivery of the postback in OuterRef("pk") (test sends included), for a
    Subquery: one probe of the (postback, -created) index per postback."""
    return Delivery.objects.filter(postback=OuterRef("pk")).order_by("-created", "-pk")


def last_deliveries(postback_ids) -> dict[int, Delivery]:
    """Each postback's newest delivery (test sends included), by postback id: one query."""
    newest = Postback.objects.filter(pk__in=list(postback_ids)).annotate(
        newest=Subquery(latest_delivery().values("pk")[:1])
    )
    rows = Delivery.objects.filter(pk__in=newest.values("newest")).only(
        "pk", "postback_id", "state", "created", "finished_at", "is_test", "last_status_code"
    )
    return {delivery.postback_id: delivery for delivery in rows}


def snapshot(windows: dict[str, datetime], chart_from: datetime) -> Snapshot:
    """A handful of grouped queries, whatever the number of deliveries.

    Each window is [start, now): the hours before the roll-up's end come from the window sums
    (less any hours at their start that the window has moved past since, when the roll-up is a
    little behind) or, failing those, from the hourly rows; later ones are counted live.
    """
    snap = Snapshot()
    rolled, summary = _progress()
    earliest = min([*windows.values(), chart_from])
    live_from = earliest if rolled is None else max(rolled, earliest)
    _add_rolled_up(snap.finished, windows, rolled, summary)
    if rolled is not None and rolled > chart_from:
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
    # COUNT(*) over columns of the (state, created, postback, is_test) index: index-only.
    open_now = Delivery.objects.open().filter(is_test=False, created__gte=earliest)
    per_window = {
        f"o_{name}": Count("created", filter=Q(created__gte=start))
        for name, start in windows.items()
    }
    for row in open_now.values("postback_id").annotate(**per_window).order_by():
        for name in windows:
            snap.open[row["postback_id"], name] = row[f"o_{name}"]
    chart_rows = (
        open_now.filter(created__gte=chart_from)
        .annotate(hour=TruncHour("created"))
        .values_list("hour", "state")
        .annotate(n=Count("*"))
        .order_by()
    )
    for hour, state, n in chart_rows:  # hours × 2 at most
        snap.hours.setdefault(hour, Counter())[state] += n
    return snap
