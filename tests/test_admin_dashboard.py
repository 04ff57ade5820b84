"""The delivery dashboard: numbers per affiliate and postback, the hourly chart, failing
endpoints; test sends left out; a fixed number of queries however many postbacks there are."""

from datetime import timedelta

import pytest
from django.utils import timezone

from postbacks.admin import dashboard
from postbacks.delivery import breaker
from postbacks.models import Delivery, DeliveryState, EndpointHealth, Postback
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

    [endpoint] = dashboard.failing_endpoints()
    assert endpoint.host == "down.example.net:443"
    assert [p.name for p in endpoint.postbacks] == ["Broken"]
    assert endpoint.postbacks[0].last_state == F
    assert endpoint.health is None and endpoint.failing_since is None  # no breaker streak


DOWN = "https://down.example.net/pb?c={affS1}"


def test_auto_paused_postbacks_stay_listed_with_their_reason(settings):
    """auto_pause sets the postbacks inactive: the endpoint must not vanish from the list."""
    settings.POSTBACK_AUTO_PAUSE_AFTER = 5
    paused = PostbackFactory(name="Paused one", url=DOWN)
    PostbackFactory(name="Paused too", url=DOWN.replace("?c=", "?other=1&c="))
    switched_off = PostbackFactory(name="Off by hand", url=DOWN, active=False)
    make(paused, F, ago=timedelta(days=6))
    since = timezone.now() - timedelta(days=6)
    health = EndpointHealth.objects.create(
        host="down.example.net:443",
        consecutive_failures=40,
        first_failure_at=since,
        last_failure_at=timezone.now() - timedelta(minutes=1),
        last_error="HTTP 503 from down.example.net?token=s3cret",
        opened_until=timezone.now() + timedelta(minutes=30),
    )
    assert breaker.auto_pause(health) == 2
    assert not Postback.objects.filter(active=True).exists()

    [endpoint] = dashboard.failing_endpoints()
    assert endpoint.host == "down.example.net:443"
    assert [p.name for p in endpoint.postbacks] == ["Paused one", "Paused too"]
    assert [p.name for p in endpoint.paused] == ["Paused one", "Paused too"]
    assert endpoint.postbacks[0].paused_reason.startswith("Paused automatically on")
    assert endpoint.failing_since == since  # the streak's start, not a delivery's time
    assert endpoint.consecutive_failures == 40
    assert endpoint.backed_off_until == health.opened_until
    assert "token=********" in endpoint.last_error and "s3cret" not in endpoint.last_error
    assert switched_off.name not in [p.name for p in endpoint.postbacks]


def test_failing_since_comes_from_endpoint_health_not_the_latest_delivery():
    broken = PostbackFactory(name="Broken", url=DOWN)
    make(broken, F, ago=timedelta(minutes=10))  # the latest delivery: 10 minutes ago
    since = timezone.now() - timedelta(days=2)
    EndpointHealth.objects.create(
        host="down.example.net:443",
        consecutive_failures=12,
        first_failure_at=since,
        last_failure_at=timezone.now() - timedelta(minutes=10),
        last_error="No response (read timeout)",
    )
    # A healthy postback on another host whose URL merely mentions the failing one.
    PostbackFactory(name="Lookalike", url="https://ok.example.com/pb?ref=down.example.net")

    [endpoint] = dashboard.failing_endpoints()
    assert endpoint.failing_since == since
    assert endpoint.consecutive_failures == 12 and endpoint.backed_off_until is None
    assert [p.name for p in endpoint.postbacks] == ["Broken"]


def test_dashboard_page_shows_paused_postbacks_and_the_streak(admin_client):
    postback = PostbackFactory(
        name="Paused one", url=DOWN, active=False, paused_reason="Paused automatically on X"
    )
    make(postback, F, ago=timedelta(hours=1))
    since = timezone.now() - timedelta(days=6)
    EndpointHealth.objects.create(
        host="down.example.net:443", consecutive_failures=40, first_failure_at=since
    )
    html = admin_client.get("/admin/postbacks/delivery/dashboard/").content.decode()
    assert "down.example.net:443" in html and "Paused one" in html
    assert "paused</strong>" in html and "Paused automatically on X" in html
    assert since.strftime("%Y-%m-%d %H:%M") in html and ">40<" in html


def test_dashboard_page_uses_a_fixed_number_of_queries(
    admin_client, postback, django_assert_max_num_queries
):
    for n in range(15):
        pb = PostbackFactory(name=f"Extra {n}", url=f"https://t{n}.example.net/pb?c={{affS1}}")
        make(pb, F, ago=timedelta(hours=1), ms=n)
        EndpointHealth.objects.create(
            host=f"t{n}.example.net:443",
            consecutive_failures=n + 1,
            first_failure_at=timezone.now(),
        )
        PostbackFactory(name=f"Paused {n}", url=pb.url, active=False, paused_reason="Paused")
    with django_assert_max_num_queries(15):
        page = admin_client.get("/admin/postbacks/delivery/dashboard/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Extra 14" in html and 'id="pb-chart"' in html and 'id="pb-failing"' in html
    assert "Paused 14" in html and "t14.example.net:443" in html


def test_admin_index_links_the_dashboard_for_support_staff(support_client):
    html = support_client.get("/admin/").content.decode()
    assert 'href="/admin/postbacks/delivery/dashboard/"' in html
    assert support_client.get("/admin/postbacks/delivery/dashboard/").status_code == 200


def test_a_failing_postback_shows_its_streak_even_past_the_most_recent_ones():
    broken = PostbackFactory(name="Broken", url=DOWN)
    make(broken, F, ago=timedelta(minutes=5))
    long_ago = timezone.now() - timedelta(days=30)
    EndpointHealth.objects.create(
        host="down.example.net:443",
        consecutive_failures=9,
        first_failure_at=long_ago,
        last_failure_at=long_ago,
    )
    for n in range(3):  # more recent streaks of endpoints nobody uses any more
        EndpointHealth.objects.create(
            host=f"gone{n}.example.org:443",
            consecutive_failures=1,
            last_failure_at=timezone.now(),
        )
    [endpoint] = dashboard.failing_endpoints(limit=2)
    assert endpoint.host == "down.example.net:443" and endpoint.failing_since == long_ago
