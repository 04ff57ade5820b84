"""The dashboard's hourly roll-up: hours that are over are counted once, and the dashboard shows
the same numbers from the roll-up plus live rows as from the deliveries alone."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from postbacks import stats
from postbacks.admin import dashboard
from postbacks.delivery import tasks
from postbacks.models import DeliveryStat, DeliveryWindowStat, StatsProgress
from tests.factories import PostbackFactory
from tests.test_admin_dashboard import F, P, S, make

pytestmark = pytest.mark.django_db


@pytest.fixture
def log():
    """Deliveries spread over a week, including the current hour and a test send."""
    a, b = PostbackFactory(name="A"), PostbackFactory(name="B")
    for hours_ago, state, ms in [
        (0, S, 15),
        (0, F, 900),
        (1, S, 40),
        (3, S, 60),
        (3, F, 30),
        (30, S, 120),
        (100, F, 2000),
        (170, S, 5),  # only in the first hour of the 7-day window, or outside it
    ]:
        make(a, state, ago=timedelta(hours=hours_ago, minutes=1), ms=ms)
        make(b, state, ago=timedelta(hours=hours_ago, minutes=2), ms=ms * 2)
    make(a, P, ago=timedelta(hours=2), attempts=0)
    make(a, F, ago=timedelta(hours=3), ms=10, is_test=True)
    return a, b


def numbers(now):
    snap = dashboard.take_snapshot(now)
    groups = {
        group: [(g.key, g.labels, g.windows) for g in dashboard.group_stats(group, now, snap)]
        for group in ("postback", "affiliate")
    }
    return groups, [(bar.hour, bar.counts) for bar in dashboard.hourly(now, snapshot=snap)]


def test_the_dashboard_shows_the_same_numbers_from_the_roll_up(log):
    now = stats.hour_of(timezone.now()) + timedelta(minutes=30)  # the roll-up is up to date
    live_only = numbers(now)
    assert stats.roll_up(now) > 0
    assert DeliveryStat.objects.exists() and DeliveryWindowStat.objects.exists()
    assert StatsProgress.objects.get().summary_until == stats.hour_of(now)
    assert numbers(now) == live_only


def test_only_hours_that_are_over_are_rolled_up_and_only_once(log):
    now = timezone.now().replace(minute=30)
    rolled = stats.roll_up(now)
    assert rolled == 8 * 24  # the history the dashboard can show, up to the current hour
    progress = StatsProgress.objects.get()
    assert progress.rolled_until == stats.hour_of(now)
    rows = DeliveryStat.objects.count()
    assert stats.roll_up(now) == 0 and DeliveryStat.objects.count() == rows
    # A few minutes into the next hour the previous one is not rolled up yet (late writers).
    assert stats.roll_up(stats.hour_of(now) + timedelta(hours=1, minutes=2)) == 0
    assert stats.roll_up(stats.hour_of(now) + timedelta(hours=1, minutes=6)) == 1


def test_roll_up_counts_finished_real_deliveries_by_postback_and_hour(log):
    a, _ = log
    now = timezone.now()
    stats.roll_up(now + timedelta(hours=2))  # the current hour is over too
    rows = DeliveryStat.objects.filter(postback=a)
    assert sum(r.delivered for r in rows) == 5 and sum(r.failed for r in rows) == 3  # no test
    three_hours_ago = rows.filter(hour=stats.hour_of(now - timedelta(hours=3, minutes=1)))
    assert sorted((r.bucket, r.delivered, r.failed) for r in three_hours_ago) == [
        (stats.bucket_of(30), 0, 1),
        (stats.bucket_of(60), 1, 0),
    ]


def test_old_roll_up_rows_are_dropped(log):
    a, _ = log
    old = DeliveryStat.objects.create(
        hour=timezone.now() - timedelta(days=30), postback=a, bucket=3, delivered=1
    )
    stats.roll_up()
    assert not DeliveryStat.objects.filter(pk=old.pk).exists()


def test_percentiles_are_nearest_rank_within_five_per_cent():
    finished = stats.Finished()
    for ms in [10, 20, 30, 40, 1000]:
        finished.add(1, 0, stats.bucket_of(ms))
    assert finished.percentile(0.5) == pytest.approx(30, rel=0.05)
    assert finished.percentile(0.95) == pytest.approx(1000, rel=0.05)
    assert stats.Finished().percentile(0.5) is None


def test_a_schedule_runs_the_roll_up(log):
    schedule = Schedule.objects.get(func="postbacks.delivery.tasks.roll_up_stats")
    assert schedule.schedule_type == Schedule.MINUTES and schedule.repeats == -1
    assert tasks.roll_up_stats().startswith("rolled up ")


@pytest.mark.parametrize("behind", [timedelta(hours=1), timedelta(hours=3), timedelta(days=2)])
def test_numbers_stay_right_while_the_roll_up_is_behind(log, behind):
    """No qcluster for a while: the window sums no longer end at the current hour. The page
    takes back the hours the windows moved past, or falls back to the hourly rows."""
    now = timezone.now()
    later = now + behind
    live_only = numbers(later)
    stats.roll_up(now)
    assert StatsProgress.objects.get().summary_until == stats.hour_of(now - stats.LAG)
    assert numbers(later) == live_only
