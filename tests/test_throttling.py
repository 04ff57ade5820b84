"""API throttles counted per window (trackdesk/throttling.py): the rate holds, the previous
window slides out, the count takes constant space, and a cache outage lets requests through."""

import uuid

import pytest
from django.core.cache.backends.locmem import LocMemCache

from trackdesk.throttling import UserRateThrottle


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def throttle_of(monkeypatch):
    """A user throttle at `rate`, on a private cache and a clock the test moves."""
    cache = LocMemCache(f"throttle-{uuid.uuid4()}", {})  # locmem caches of one name share rows

    def make(rate: str, clock: Clock):
        throttle = UserRateThrottle()
        throttle.rate = rate
        throttle.num_requests, throttle.duration = throttle.parse_rate(rate)
        throttle.cache, throttle.timer = cache, clock
        throttle.get_cache_key = lambda request, view: "throttle_user_1"
        return throttle

    make.cache = cache
    return make


def allowed(throttle, times: int) -> int:
    return sum(throttle.allow_request(None, None) for _ in range(times))


def test_the_rate_holds_within_a_window(throttle_of):
    throttle = throttle_of("10/min", Clock(30.0))

    assert allowed(throttle, 15) == 10
    assert 0 < throttle.wait() <= 60


def test_the_previous_window_slides_out_instead_of_resetting(throttle_of):
    clock = Clock(59.0)  # the end of a window: all 10 spent there
    throttle = throttle_of("10/min", clock)
    assert allowed(throttle, 10) == 10

    clock.now = 60.0  # a new window, but the last minute still holds 10 requests
    assert allowed(throttle, 1) == 0
    clock.now = 90.0  # half of the previous window has slid out: room for 5
    assert allowed(throttle, 10) == 5
    clock.now = 200.0  # nothing within the last two windows
    assert allowed(throttle, 12) == 10


def test_the_wait_is_until_the_estimate_lets_one_through(throttle_of):
    clock = Clock(90.0)
    throttle = throttle_of("10/min", clock)
    assert allowed(throttle, 11) == 10

    clock.now += throttle.wait()  # this window is full: the next one, as its previous
    assert allowed(throttle, 1) == 1


def test_the_count_takes_constant_space_however_many_requests(throttle_of):
    throttle = throttle_of("100000/min", Clock(10.0))
    assert allowed(throttle, 5000) == 5000

    stored = throttle_of.cache.get("throttle_user_1:window")
    assert stored == (0, 5000, 0)  # DRF's own throttle would hold 5,000 timestamps


def test_a_cache_outage_lets_requests_through(throttle_of, monkeypatch):
    throttle = throttle_of("1/min", Clock(10.0))

    def down(*args, **kwargs):
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(throttle_of.cache, "get", down)
    assert allowed(throttle, 3) == 3


def test_a_list_left_by_drfs_own_throttle_does_not_break_counting(throttle_of):
    throttle = throttle_of("2/min", Clock(10.0))
    throttle_of.cache.set("throttle_user_1:window", [1.0, 2.0, 3.0])

    assert allowed(throttle, 3) == 2
