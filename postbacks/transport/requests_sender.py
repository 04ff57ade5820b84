"""The requests sender: one postback request at a time (test sends, the walkthrough, and
deliveries when POSTBACK_CONCURRENT_DISPATCH is off).

The rules it shares with the concurrent sender are in postbacks/transport/policy.py; this module
owns how requests and urllib3 apply them: connecting to the checked address with the URL's Host
header and TLS server name, connect and read timeouts plus a timer that closes the socket when
POSTBACK_TOTAL_TIMEOUT is up, no proxies from the environment, and streaming the capped body.
"""

import contextlib
import socket
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util import parse_url

from postbacks import conf
from postbacks.transport import netguard, policy
from postbacks.transport.policy import HttpResult


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


def send(method: str, url: str, *, headers: dict, body: str = "") -> HttpResult:
    """Send one request and describe the outcome; never raises for network trouble.

    Redirects are followed only when the operator turned POSTBACK_FOLLOW_REDIRECTS on, up to
    POSTBACK_MAX_REDIRECTS hops, each hop checked by the guard like the first request.
    """
    started = time.monotonic()
    with _Deadline(conf.total_timeout()) as deadline:
        result = _send(method, url, headers, body, deadline)
        if conf.follow_redirects():
            result = _follow_redirects(result, method, url, headers, body, deadline)
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _follow_redirects(result, method, url, headers, body, deadline) -> HttpResult:
    hops = []
    while (hop := policy.next_hop(result, hops, method, url, headers, body)) is not None:
        method, url, headers, body = hop
        result = policy.refused_hop(_send(method, url, headers, body, deadline), url)
    result.redirects = hops
    return result


def _urllib3_reading(url: str) -> tuple:
    """(host, port) as urllib3, which opens the connection, reads the URL."""
    parsed = parse_url(url)
    return parsed.host, parsed.port


def _send(method, url, headers, body, deadline) -> HttpResult:
    try:
        where = policy.destination(url, _urllib3_reading)
        ip = netguard.checked_address(where.hostname, where.port)
    except policy.UNSENDABLE as exc:
        return policy.refusal(exc)

    request = requests.Request(method, url, headers=headers, data=body.encode() or None)
    prepared = session().prepare_request(request)
    prepared.headers["Host"] = where.netloc.rsplit("@", 1)[-1]
    prepared.pinned_ip, prepared.pinned_port = ip, where.port
    timeout = (conf.connect_timeout(), conf.read_timeout())
    try:
        response = session().send(
            prepared,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            verify=policy.ca_bundle() or True,
        )
    except requests.exceptions.SSLError as exc:
        return HttpResult(error=policy.tls_refused(where.hostname, _innermost(exc)))
    except requests.exceptions.ConnectTimeout:
        return HttpResult(error=policy.connect_timed_out(timeout[0]))
    except requests.exceptions.ReadTimeout:
        return HttpResult(error=policy.read_timed_out(timeout[1]))
    except requests.exceptions.RequestException as exc:
        if deadline.expired:
            return HttpResult(error=policy.over_time(deadline.seconds))
        return HttpResult(error=policy.connection_failed(exc))
    except OSError as exc:  # e.g. POSTBACK_CA_BUNDLE names no file (postbacks.E002)
        return HttpResult(error=policy.connection_failed(exc))
    with response:
        try:
            body_text = _read_capped(response, deadline)
        except requests.exceptions.RequestException as exc:
            why = (
                policy.over_time(deadline.seconds)
                if deadline.expired
                else policy.short(f"Reading the body failed: {exc}")
            )
            return HttpResult(
                status=response.status_code, error=why, headers=dict(response.headers)
            )
    return HttpResult(status=response.status_code, headers=dict(response.headers), body=body_text)


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


def _read_capped(response, deadline: _Deadline) -> str:
    body = policy.CappedBody()
    for chunk in response.iter_content(chunk_size=4096):
        if body.add(chunk) or deadline.expired:
            break
    return body.text(response.headers.get("Content-Type", ""))
