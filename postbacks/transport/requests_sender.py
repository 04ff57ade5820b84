"""The one seam every outgoing postback request goes through.

It owns the timeouts (connect, read, and a cap on the whole exchange), the User-Agent, the
address check (connecting to the checked address, with the original Host header and TLS server
name), redirects (none unless the operator turns them on; then each hop is checked again), no
proxies from the environment, and a cap on how much of a response is read.
"""

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url

import trackdesk
from postbacks.transport import netguard

USER_AGENT = f"TrackdeskPostbacks/{trackdesk.__version__}"


@dataclass
class HttpResult:
    """What happened to one request. `status` is None when no response arrived."""

    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    duration_ms: int = 0
    error: str = ""
    permanent: bool = False  # retrying cannot help (refused destination, bad URL)
    redirects: list = field(default_factory=list)  # URLs followed, when following is on

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Deadline:
    """Closes the request's socket once the total time is up.

    The read timeout applies to each socket read, so a server that drips a byte every few
    seconds would hold a worker for as long as it likes; this caps the whole exchange.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sock = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self):
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        _current.deadline = None

    def watch(self, sock) -> None:
        with self._lock:
            self._sock = sock
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)


def _shutdown(sock) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


def _watch_socket(conn) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None and conn.sock is not None:
        deadline.watch(conn.sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def getresponse(self, *args, **kwargs):
        _watch_socket(self)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self, *args, **kwargs):
        _watch_socket(self)
        return super().getresponse(*args, **kwargs)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to `request.pinned_ip` and `request.pinned_port` while keeping the URL's host
    name for Host and TLS."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        # Certificates name hosts without the trailing dot of a fully qualified name
        # (`https://tracker.example.com./`); urllib3 strips it from SNI but would match the
        # certificate against the dotted name and fail.
        hostname = host_params["host"].rstrip(".")
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        host_params["host"] = str(request.pinned_ip)
        host_params["port"] = request.pinned_port
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)


_session: requests.Session | None = None


def session() -> requests.Session:
    global _session
    if _session is None:
        s = requests.Session()
        s.trust_env = False  # HTTP(S)_PROXY must not reroute postbacks around the guard
        adapter = PinnedAddressAdapter(pool_connections=50, pool_maxsize=50, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _session = s
    return _session


REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def send(method: str, url: str, *, headers: dict, body: str = "") -> HttpResult:
    """Send one request and describe the outcome; never raises for network trouble.

    Redirects are followed only when the operator turned POSTBACK_FOLLOW_REDIRECTS on, up to
    POSTBACK_MAX_REDIRECTS hops, each hop checked by the guard like the first request.
    """
    started = time.monotonic()
    with _Deadline(settings.POSTBACK_TOTAL_TIMEOUT) as deadline:
        result = _send(method, url, headers, body, deadline)
        if settings.POSTBACK_FOLLOW_REDIRECTS:
            result = _follow_redirects(result, method, url, headers, body, deadline)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _follow_redirects(result, method, url, headers, body, deadline) -> HttpResult:
    hops = []
    while (hop := next_hop(result, hops, method, url, headers, body)) is not None:
        method, url, headers, body = hop
        result = refused_hop(_send(method, url, headers, body, deadline), url)
    result.redirects = hops
    return result


def next_hop(result: HttpResult, hops: list, method, url, headers, body) -> tuple | None:
    """The request a redirect answer leads to, by the rules both senders follow: (method, url,
    headers, body), its URL added to `hops`; None when there is nothing to follow, with the
    error set when POSTBACK_MAX_REDIRECTS stopped it."""
    location = redirect_location(result)
    if result.status not in REDIRECT_STATUSES or not location:
        return None
    if len(hops) >= settings.POSTBACK_MAX_REDIRECTS:
        result.error = (
            f"HTTP {result.status}: stopped after {len(hops)} redirects "
            f"(POSTBACK_MAX_REDIRECTS); a postback succeeds on 2xx only."
        )
        return None
    url = urljoin(url, location)
    hops.append(url)
    if result.status in (301, 302, 303) and method != "GET":
        # What browsers and requests do: the next hop is a GET without the body.
        method, body = "GET", ""
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return method, url, headers, body


def refused_hop(result: HttpResult, url: str) -> HttpResult:
    if result.permanent:
        result.error = f"Redirect to {url} refused. {result.error}"
    return result


def redirect_location(result: HttpResult) -> str:
    return next((v for k, v in result.headers.items() if k.lower() == "location"), "")


def _target(url: str):
    """(parts, port, checked address) of a URL, or raise ValueError/netguard errors."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise netguard.DestinationRefused(f"Not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    # urllib3 must read the URL's host and port the way we checked them: a backslash or a
    # second "@" can make two parsers disagree about where the authority ends.
    other = parse_url(url)
    other_port = other.port or port
    if (other.host or "").strip("[]").lower() != parts.hostname or other_port != port:
        raise netguard.DestinationRefused(
            f"Destination not allowed: the URL's host is ambiguous ({parts.netloc!r})."
        )
    return parts, port, netguard.checked_address(parts.hostname, port)


def _send(method, url, headers, body, deadline) -> HttpResult:
    try:
        parts, port, ip = _target(url)
    except netguard.DestinationRefused as exc:
        return HttpResult(error=str(exc), permanent=True)
    except netguard.DestinationUnresolved as exc:
        return HttpResult(error=str(exc))
    except ValueError as exc:  # e.g. a port out of range
        return HttpResult(error=f"Invalid URL: {exc}", permanent=True)

    request = requests.Request(method, url, headers=headers, data=body.encode() or None)
    prepared = session().prepare_request(request)
    prepared.headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
    prepared.pinned_ip, prepared.pinned_port = ip, port
    timeout = (settings.POSTBACK_CONNECT_TIMEOUT, settings.POSTBACK_READ_TIMEOUT)
    try:
        response = session().send(
            prepared,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            verify=ca_bundle() or True,
        )
    except requests.exceptions.SSLError as exc:
        return HttpResult(error=tls_refused(parts.hostname, _innermost(exc)))
    except requests.exceptions.ConnectTimeout:
        return HttpResult(error=f"Connect timeout after {timeout[0]:g} s")
    except requests.exceptions.ReadTimeout:
        return HttpResult(error=f"No response within {timeout[1]:g} s (read timeout)")
    except requests.exceptions.RequestException as exc:
        if deadline.expired:
            return HttpResult(error=_over_time(deadline))
        return HttpResult(error=f"Connection failed: {_short(exc)}")
    except OSError as exc:  # e.g. POSTBACK_CA_BUNDLE names no file (postbacks.E002)
        return HttpResult(error=f"Connection failed: {_short(exc)}")
    with response:
        try:
            body_text = _read_capped(response, deadline)
        except requests.exceptions.RequestException as exc:
            why = (
                _over_time(deadline)
                if deadline.expired
                else f"Reading the body failed: {_short(exc)}"
            )
            return HttpResult(
                status=response.status_code, error=why, headers=dict(response.headers)
            )
    return HttpResult(status=response.status_code, headers=dict(response.headers), body=body_text)


def ca_bundle() -> str:
    """A CA bundle file to trust instead of the default store (POSTBACK_CA_BUNDLE; tests use
    it for their own CA). Certificates are always verified, against the URL's host name."""
    return getattr(settings, "POSTBACK_CA_BUNDLE", "") or ""


def tls_refused(hostname: str, why: object) -> str:
    """The error both senders log when the server's certificate is not accepted (retryable:
    the receiver may fix its certificate)."""
    return _short(f"TLS certificate not accepted for {hostname.rstrip('.')}: {why}")


def _innermost(exc: BaseException) -> BaseException:
    """The original error under requests' and urllib3's wrappers (the certificate's story)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__ or getattr(exc, "reason", None)
        if inner is None and exc.args:  # urllib3's SSLError(original), never raised as such
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _over_time(deadline: _Deadline) -> str:
    return f"No complete response within {deadline.seconds:g} s (total time limit)"


def _read_capped(response, deadline: _Deadline) -> str:
    limit = settings.POSTBACK_RESPONSE_BODY_LIMIT
    data = b""
    for chunk in response.iter_content(chunk_size=4096):
        data += chunk
        if len(data) >= limit or deadline.expired:
            break
    return data[:limit].decode(response.encoding or "utf-8", errors="replace")


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "…"
