"""API throttles that let a request through when their cache (Redis) cannot be reached.

Throttle counts live in the cache; with REDIS_URL that is Redis, also the broker. DRF's own
throttles raise when it is down, so a broker outage refused every API call and pixel with a 500
before the conversion was stored. A rate limit is a guard, not a record: during the outage
requests go unthrottled (one warning per request) and are stored as usual.
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


class UserRateThrottle(FailOpenMixin, throttling.UserRateThrottle):
    pass


class AnonRateThrottle(FailOpenMixin, throttling.AnonRateThrottle):
    pass
