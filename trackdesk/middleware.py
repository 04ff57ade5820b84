"""Request-level guards: health probes, the body size limit, a clear answer when the database
is down, and the client address behind our proxies."""

import ipaddress
import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

from trackdesk import health

log = logging.getLogger(__name__)


class RequestSizeLimitMiddleware:
    """Answer 413 to a body declared larger than DATA_UPLOAD_MAX_MEMORY_SIZE, before reading it.

    Django checks that limit only where it reads `request.body`/`request.POST`; DRF's parsers
    read the stream, so without this a JSON body of any size would be read into memory.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and declared_length(request) > limit:
            message = f"The request body is larger than the limit of {limit} bytes."
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain")
        return self.get_response(request)


def declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def client_ip(request) -> str | None:
    """The client's address: the socket's, or the one our TRUSTED_PROXY_COUNT proxies saw.

    Each trusted proxy appends the address it received from to X-Forwarded-For, so the client is
    the entry that many places from the right; anything further left is what the client claims.
    None when that is not an IP address (REMOTE_ADDR of a unix socket, say): the address is
    stored in IP columns (clicks, axes' login attempts).
    """
    address = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= count:
            address = hops[-count]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class HealthCheckMiddleware:
    """Answer GET /healthz and /readyz (trackdesk/health.py) before anything else.

    First in MIDDLEWARE, so a load balancer probing by IP address over plain HTTP is not refused
    by ALLOWED_HOSTS or redirected to HTTPS, and a probe never needs a session or the database
    (/healthz touches nothing).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return HttpResponse("ok", content_type="text/plain")
        if request.path == "/readyz":
            ready, checks = health.readiness()
            answer = {"status": "ready" if ready else "not ready", "checks": checks}
            return JsonResponse(answer, status=200 if ready else 503)
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """Answer 503 with Retry-After, not 500 with a stack, when the database cannot be reached.

    The client (an internal service, a shop's pixel, a browser following a tracking link) can
    act on a 503: try again shortly. A short JSON body under /api/, plain text elsewhere.
    """

    RETRY_AFTER = 30  # seconds; about how long a database restart or fail-over takes

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        message = "The database is unavailable; try again shortly."
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain")
        response["Retry-After"] = str(self.RETRY_AFTER)
        return response
