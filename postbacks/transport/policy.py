"""The sending rules both senders share, so that a rule changed here changes both.

It owns what a request's outcome looks like (HttpResult) and every rule that is not about the
HTTP library: which URLs may be sent and where they go, how refusals, time-outs and TLS failures
read, how much of a response is kept, and how a redirect leads to the next hop.
"""

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

import trackdesk
from postbacks import conf
from postbacks.transport import netguard

USER_AGENT = f"TrackdeskPostbacks/{trackdesk.__version__}"

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# Error texts are stored on every attempt; a library's message can quote a whole response.
ERROR_CHARS = 300


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


# --- where a request may go ------------------------------------------------------------------


class Destination(NamedTuple):
    hostname: str  # as urlsplit reads it: lower case, no brackets around an IPv6 literal
    port: int
    netloc: str  # the authority as written (for the Host header)


# Raised while reading a URL or checking its address; refusal() turns each into a result.
UNSENDABLE = (netguard.DestinationRefused, netguard.DestinationUnresolved, ValueError, TypeError)


def destination(url: str, library_reading: Callable[[str], tuple]) -> Destination:
    """Where `url` goes, once the sending library agrees; raises one of UNSENDABLE.

    `library_reading(url)` is (host, port) as the library that makes the connection parses the
    URL. A backslash or a second "@" can make two parsers disagree about where the authority
    ends; the guard checks urlsplit's reading, so the library must read the same host and port.
    """
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise netguard.DestinationRefused(f"Not an http(s) URL: {url!r}")
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    # urllib3 ends the authority at a backslash, urlsplit does not, yarl refuses it: refuse it
    # here so that both senders say the same.
    if "\\" in parts.netloc or not _reads_the_same(library_reading(url), parts.hostname, port):
        raise netguard.DestinationRefused(
            f"Destination not allowed: the URL's host is ambiguous ({parts.netloc!r})."
        )
    return Destination(parts.hostname, port, parts.netloc)


def _reads_the_same(reading: tuple, hostname: str, port: int) -> bool:
    host, other_port = reading
    return (host or "").strip("[]").lower() == hostname and (other_port or port) == port


def refusal(exc: Exception) -> HttpResult:
    """The result for a URL that was not sent: one of UNSENDABLE."""
    if isinstance(exc, netguard.DestinationUnresolved):
        return HttpResult(error=str(exc))  # DNS may answer next time
    if isinstance(exc, netguard.DestinationRefused):
        return HttpResult(error=str(exc), permanent=True)
    why = str(exc).removeprefix("Invalid URL: ")  # yarl's messages say it already
    return HttpResult(error=f"Invalid URL: {why}", permanent=True)


# --- how failures read -----------------------------------------------------------------------


def short(text: object) -> str:
    text = str(text)
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS] + "…"


def connect_timed_out(seconds: float) -> str:
    return f"Connect timeout after {seconds:g} s"


def read_timed_out(seconds: float) -> str:
    return f"No response within {seconds:g} s (read timeout)"


def over_time(seconds: float) -> str:
    """POSTBACK_TOTAL_TIMEOUT ended the exchange (a receiver dripping bytes, say)."""
    return f"No complete response within {seconds:g} s (total time limit)"


def connection_failed(why: object) -> str:
    return short(f"Connection failed: {why}")


def sending_failed(exc: Exception) -> str:
    """An error no rule expected (a bug): it costs one attempt, never a worker."""
    return short(f"Sending failed: {type(exc).__name__}: {exc}")


def tls_refused(hostname: str, why: object) -> str:
    """The server's certificate was not accepted (retryable: the receiver may fix it)."""
    return short(f"TLS certificate not accepted for {hostname.rstrip('.')}: {why}")


def ca_bundle() -> str:
    """A CA bundle file to trust instead of the default store (POSTBACK_CA_BUNDLE; tests use
    it for their own CA). Certificates are always verified, against the URL's host name."""
    return conf.ca_bundle() or ""


# --- how much of a response is kept ----------------------------------------------------------


class CappedBody:
    """A response body read up to POSTBACK_RESPONSE_BODY_LIMIT bytes; the rest is never read."""

    def __init__(self):
        self.limit = conf.response_body_limit()
        self.data = b""

    @property
    def room(self) -> int:
        return max(self.limit - len(self.data), 0)

    def add(self, chunk: bytes) -> bool:
        """Keep `chunk`; True once the cap is reached and reading should stop."""
        self.data += chunk
        return not self.room

    def text(self, content_type: str) -> str:
        """The kept bytes as text, in the charset the Content-Type names, else UTF-8; a cut
        character or an undecodable byte becomes U+FFFD rather than an error."""
        return self.data[: self.limit].decode(_charset(content_type), errors="replace")


def _charset(content_type: str) -> str:
    message = Message()
    message["Content-Type"] = content_type or "application/octet-stream"
    name = message.get_content_charset() or "utf-8"
    try:
        codecs.lookup(name)
    except LookupError:  # a receiver's typo must not turn a delivered postback into a crash
        return "utf-8"
    return name


# --- redirects (followed only when the operator turned POSTBACK_FOLLOW_REDIRECTS on) ----------


def next_hop(result: HttpResult, hops: list, method, url, headers, body) -> tuple | None:
    """The request a redirect answer leads to: (method, url, headers, body), its URL added to
    `hops`; None when there is nothing to follow, with the error set when
    POSTBACK_MAX_REDIRECTS stopped it."""
    location = redirect_location(result)
    if result.status not in REDIRECT_STATUSES or not location:
        return None
    if len(hops) >= conf.max_redirects():
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
    """A hop's result, naming the hop when the guard refused it."""
    if result.permanent:
        result.error = f"Redirect to {url} refused. {result.error}"
    return result


def redirect_location(result: HttpResult) -> str:
    return next((v for k, v in result.headers.items() if k.lower() == "location"), "")
