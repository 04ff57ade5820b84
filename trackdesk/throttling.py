"""API throttles: DRF's scopes, rates and 429 with Retry-After, counted in constant space, and
letting a request through when their cache (Redis) cannot be reached.

Counting: DRF's SimpleRateThrottle keeps the time of every request of the last period in one
cache entry, read and written whole on every request: at the default 10,000/min for a token
user that is up to 10,000 timestamps pickled, sent to Redis and back per API call (a fifth of
an ingest request's time at 100/s). `SlidingWindowMixin` keeps three numbers instead (this
window's start and count, the previous window's count) and estimates the requests of the last
period as the previous window's count, weighted by how much of it still lies within the period,
plus this window's: the sliding-window counter that rate limiters use at scale. It allows at
most the rate over any period up to that estimate (it assumes the previous window's requests
were spread evenly). Like DRF's, the read and the write are two cache calls, not one atomic
step: two web workers counting the same user at the same instant may both count one request.

Failing open: throttle counts live in the cache; with REDIS_URL that is Redis, also the broker.
DRF's own throttles raise when it is down, so a broker outage refused every API call and pixel
with a 500 before the conversion was stored. A rate limit is a guard, not a record: during the
outage requests go unthrottled (one warning per request) and are stored as usual.
"""

import logging

from rest_framework import throttling

log = logging.getLogger(__name__)


class FailOpenMixin:
    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # the cache backend's own error types (redis, memcached...)
            log.warning("API throttle skipped, cache unreachable (%s: %s)", type(exc).__name__, exc)
            return True


class SlidingWindowMixin:
    """allow_request and wait for a SimpleRateThrottle, counted per window (see the module)."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        key = f"{self.key}:window"  # not DRF's list of times, which may still be cached
        self.now = self.timer()
        window = int(self.now // self.duration)
        stored = self.cache.get(key)
        start, count, previous = stored if _counts(stored) else (window, 0, 0)
        if start != window:  # a later window: the last one's count becomes the previous one
            previous = count if start == window - 1 else 0
            start, count = window, 0
        self.into = self.now / self.duration - window  # how far into this window, 0 to 1
        self.counts = (count, previous)
        if previous * (1 - self.into) + count >= self.num_requests:
            return self.throttle_failure()
        self.cache.set(key, (window, count + 1, previous), self.duration * 2)
        return True

    def wait(self):
        """Seconds until the estimate lets one more request through."""
        count, previous = self.counts
        if count < self.num_requests and previous:
            # The previous window slides out until previous * (1 - into) + count < the rate.
            needed = 1 - (self.num_requests - count) / previous
            seconds = (needed - self.into) * self.duration
        else:  # this window alone is full: the next one, where it is the previous
            seconds = (1 - self.into) * self.duration
            seconds += max(0.0, 1 - self.num_requests / count) * self.duration if count else 0
        return max(seconds, 0.0) + 0.001  # past the instant the estimate equals the rate


def _counts(stored) -> bool:
    return (
        isinstance(stored, tuple) and len(stored) == 3 and all(isinstance(n, int) for n in stored)
    )


class UserRateThrottle(FailOpenMixin, SlidingWindowMixin, throttling.UserRateThrottle):
    pass


class AnonRateThrottle(FailOpenMixin, SlidingWindowMixin, throttling.AnonRateThrottle):
    pass
