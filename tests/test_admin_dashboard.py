"""The delivery dashboard: numbers per affiliate and postback, the hourly chart, failing
endpoints; test sends left out; a fixed number of queries however many postbacks there are."""

from datetime import timedelta

import pytest
from django.utils import timezone

from postbacks import dashboard
from postbacks.models import Delivery, DeliveryState
from tests.factories import ConversionFactory, PostbackFactory

pytestmark = pytest.mark.django_db

S, F, P = DeliveryState.SUCCESS, DeliveryState.FAILED, DeliveryState.PENDING


@pytest.fixture
def now():
    return timezone.now()


def make(postback, state, *, ago, ms=None, is_test=False, attempts=1):
    """A delivery triggered `ago`; a finished one finished at the same moment."""
    conversion = ConversionFactory(
        affiliate=postback.affiliate, click__affiliate=postback.affiliate
    )
    when = timezone.now() - ago
    return Delivery.objects.create(
        postback=postback,
        conversion=conversion,
        status="approved",
        state=state,
        created=when,
        finished_at=when if state in (S, F) else None,
        last_duration_ms=ms,
        is_test=is_test,
        attempts=attempts,
    )


def close(value):
    """Percentiles come from ten-per-cent buckets: within 5 % of the exact value."""
    return pytest.approx(value, rel=0.05)


@pytest.fixture
def postback():
    pb = PostbackFactory(name="Main")
    for state, ms in [(F, 500), (S, 10), (S, 20), (S, 30)]:
        make(pb, state, ago=timedelta(hours=1), ms=ms)
    make(pb, S, ago=timedelta(days=3), ms=40)
    make(pb, P, ago=timedelta(days=3), attempts=0)
    make(pb, S, ago=timedelta(days=10), ms=9999)  # outside both windows
    make(pb, F, ago=timedelta(minutes=5), ms=7777, is_test=True)  # a test send: left out
    return pb


def test_counts_rates_and_percentiles_per_postback(postback, now):
    [stats] = dashboard.group_stats("postback", now)
    day, week = stats.windows["24h"], stats.windows["7d"]
    assert (day.delivered, day.failed, day.pending) == (3, 1, 0)
    assert day.success_rate == 75.0 and (day.p50_ms, day.p95_ms) == (close(20), close(500))
    assert (week.delivered, week.failed, week.pending) == (4, 1, 1)
    assert week.success_rate == 80.0 and (week.p50_ms, week.p95_ms) == (close(30), close(500))
    assert stats.labels == ["Main", str(postback.affiliate)]


def test_affiliate_rows_add_up_their_postbacks(postback, now):
    other = PostbackFactory(affiliate=postback.affiliate)
    make(other, S, ago=timedelta(hours=2), ms=5)
    [stats] = dashboard.group_stats("affiliate", now)
    assert stats.key == postback.affiliate_id
    assert stats.windows["24h"].delivered == 4 and stats.windows["24h"].p50_ms == close(20)


def test_hourly_chart_counts_by_state_with_empty_hours(postback, now):
    bars = dashboard.hourly(now)
    assert len(bars) == 24 and bars[-1].hour <= now < bars[-1].hour + timedelta(hours=1)
    assert sum(bar.total for bar in bars) == 4
    hour = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    [bar] = [b for b in bars if b.hour == hour]
    assert bar.counts[S] == 3 and bar.counts[F] == 1


def test_failing_endpoints_are_those_whose_latest_attempt_failed(postback):
    healthy = PostbackFactory(name="Healthy")
    make(healthy, F, ago=timedelta(hours=3))
    make(healthy, S, ago=timedelta(hours=2))
    broken = PostbackFactory(name="Broken", url="https://down.example.net/pb?c={affS1}")
    make(broken, S, ago=timedelta(hours=3))
    make(broken, F, ago=timedelta(minutes=30))
    only_tests = PostbackFactory(name="Only tests")
    make(only_tests, F, ago=timedelta(minutes=1), is_test=True)

    failing = dashboard.failing_endpoints()
    assert [p.name for p in failing] == ["Broken"]
    assert failing[0].host == "down.example.net" and failing[0].last_state == F


def test_dashboard_page_uses_a_fixed_number_of_queries(
    admin_client, postback, django_assert_max_num_queries
):
    for n in range(15):
        pb = PostbackFactory(name=f"Extra {n}")
        make(pb, F, ago=timedelta(hours=1), ms=n)
    with django_assert_max_num_queries(15):
        page = admin_client.get("/admin/postbacks/delivery/dashboard/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Extra 14" in html and 'id="pb-chart"' in html and 'id="pb-failing"' in html


def test_admin_index_links_the_dashboard_for_support_staff(support_client):
    html = support_client.get("/admin/").content.decode()
    assert 'href="/admin/postbacks/delivery/dashboard/"' in html
    assert support_client.get("/admin/postbacks/delivery/dashboard/").status_code == 200
