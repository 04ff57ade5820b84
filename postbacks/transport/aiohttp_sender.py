"""The concurrent twin of postbacks/http.py: many postback requests in flight from one process.

An aiohttp session runs on one background event loop per process; `ConcurrentSender.submit()`
is called from ordinary (synchronous) code and returns a future of an `http.HttpResult`, so the
database work stays in the caller's thread. It keeps http.py's promises:

- the address check: every host is resolved once and checked by netguard in a worker thread,
  and the connector's resolver only ever answers with an address that passed the check, so the
  connection goes to the checked address (Host header and TLS server name stay the URL's host);
  IP literals are checked the same way before the request is made;
- connect and read timeouts and POSTBACK_TOTAL_TIMEOUT on the whole exchange (a receiver
  dripping bytes cannot hold a slot), no proxies from the environment, a cap on how much of a
  body is read; redirects only when the operator turned them on, each hop checked again;
- a limit on connections in total and per host, so one slow tracker cannot take every slot.
"""

import asyncio
import concurrent.futures
import os
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from django.conf import settings
from yarl import URL

from postbacks.transport import netguard
from postbacks.transport.requests_sender import (
    HttpResult,
    ca_bundle,
    next_hop,
    refused_hop,
    tls_refused,
)

# How long a host's checked address is reused before it is resolved and checked again.
CHECK_TTL = 10.0


class CheckedResolver(AbstractResolver):
    """Answers only with addresses netguard has approved (filled in by the sender)."""

    def __init__(self):
        self.pins: dict[tuple[str, int], netguard.IPAddress] = {}

    async def resolve(self, host, port=0, family=socket.AF_INET):
        ip = self.pins.get((host, port))
        if ip is None:  # never reached through ConcurrentSender; refuse rather than look it up
            raise OSError(f"{host}:{port} was not checked by the address guard")
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self):
        pass


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop thread (started on first use; a forked child starts its own)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()
            thread = threading.Thread(
                target=_run_loop, args=(loop, started), name="postback-sender", daemon=True
            )
            thread.start()
            started.wait()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def _run_loop(loop, started):
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


class ConcurrentSender:
    """One aiohttp session with connection limits; use as a context manager."""

    def __init__(self, *, limit: int | None = None, per_host: int | None = None):
        self.limit = limit or settings.POSTBACK_CONCURRENCY
        self.per_host = per_host or settings.POSTBACK_PER_HOST_CONCURRENCY
        self._loop = background_loop()
        self._resolver = CheckedResolver()
        self._checks: dict[tuple[str, int], tuple[float, asyncio.Future]] = {}
        self._ssl = _ssl_context()
        self._session = self._call(self._open())

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limit,
            limit_per_host=self.per_host,
            resolver=self._resolver,
            use_dns_cache=False,
            ssl=self._ssl,
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=settings.POSTBACK_CONNECT_TIMEOUT,
            sock_read=settings.POSTBACK_READ_TIMEOUT,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            trust_env=False,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        # aiohttp resends a GET by itself when a reused keep-alive connection drops, but the
        # tracker may have counted the first one: a duplicate postback. A drop must be one failed
        # attempt, retried on our schedule under a new claim. The switch is private (aiohttp's
        # own test client turns it off the same way); fail loudly if an upgrade removes it.
        if not hasattr(session, "_retry_connection"):
            raise RuntimeError("aiohttp no longer has ClientSession._retry_connection; see above")
        session._retry_connection = False
        return session

    def submit(
        self, method: str, url: str, headers: dict, body: str = ""
    ) -> concurrent.futures.Future:
        """Start sending; the future's result is an HttpResult (it never raises)."""
        return asyncio.run_coroutine_threadsafe(self.send(method, url, headers, body), self._loop)

    async def send(self, method, url, headers, body) -> HttpResult:
        started = time.monotonic()
        limit = settings.POSTBACK_TOTAL_TIMEOUT
        try:
            async with asyncio.timeout(limit):
                result = await self._send(method, url, headers, body)
                if settings.POSTBACK_FOLLOW_REDIRECTS:
                    result = await self._follow_redirects(result, method, url, headers, body)
        except TimeoutError:
            result = HttpResult(error=f"No complete response within {limit:g} s (total time limit)")
        except Exception as exc:  # a bug must cost one attempt, never the whole batch
            result = HttpResult(error=f"Sending failed: {type(exc).__name__}: {exc}"[:300])
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result

    async def _follow_redirects(self, result, method, url, headers, body) -> HttpResult:
        """http.py's rules: up to POSTBACK_MAX_REDIRECTS hops, each checked by the guard."""
        hops = []
        while (hop := next_hop(result, hops, method, url, headers, body)) is not None:
            method, url, headers, body = hop
            result = refused_hop(await self._send(method, url, headers, body), url)
        result.redirects = hops
        return result

    async def _send(self, method, url, headers, body) -> HttpResult:
        try:
            target = URL(url, encoded=True)  # rendered URLs are encoded already; keep them as is
            if target.scheme not in ("http", "https") or not target.raw_host:
                return HttpResult(error=f"Not an http(s) URL: {url!r}", permanent=True)
            key = (target.raw_host, target.port)
            parts = urlsplit(url)
            if (parts.hostname or "") != target.raw_host.lower() or (
                parts.port or target.port
            ) != target.port:  # two parsers must agree on where the request goes
                why = f"the URL's host is ambiguous ({parts.netloc!r})"
                return HttpResult(error=f"Destination not allowed: {why}.", permanent=True)
        except (ValueError, TypeError) as exc:
            why = str(exc).removeprefix("Invalid URL: ")  # yarl says it already
            return HttpResult(error=f"Invalid URL: {why}", permanent=True)
        checked = await self._checked(key)
        if isinstance(checked, HttpResult):
            return checked
        self._resolver.pins[key] = checked
        connect, read = settings.POSTBACK_CONNECT_TIMEOUT, settings.POSTBACK_READ_TIMEOUT
        try:
            async with self._session.request(
                method,
                target,
                headers=headers,
                data=body.encode() or None,
                allow_redirects=False,
            ) as response:
                text = await _read_capped(response)
                return HttpResult(status=response.status, headers=dict(response.headers), body=text)
        except aiohttp.ConnectionTimeoutError:
            return HttpResult(error=f"Connect timeout after {connect:g} s")
        except aiohttp.ServerTimeoutError:
            return HttpResult(error=f"No response within {read:g} s (read timeout)")
        except aiohttp.ClientConnectorCertificateError as exc:
            return HttpResult(error=tls_refused(target.raw_host, exc.certificate_error))
        except aiohttp.ClientError as exc:
            return HttpResult(error=f"Connection failed: {type(exc).__name__}: {exc}"[:300])
        except OSError as exc:
            return HttpResult(error=f"Connection failed: {exc}"[:300])

    async def _checked(self, key) -> netguard.IPAddress | HttpResult:
        """The host's checked address (resolved once per CHECK_TTL), or the refusal."""
        now = time.monotonic()
        entry = self._checks.get(key)
        if entry is None or entry[0] < now:
            future = self._loop.run_in_executor(None, _check, *key)
            entry = (now + CHECK_TTL, future)
            self._checks[key] = entry
        return await asyncio.shield(entry[1])

    def close(self) -> None:
        self._call(self._session.close())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ssl_context() -> ssl.SSLContext | bool:
    """Verify certificates (against the URL's host name, sent as SNI); with POSTBACK_CA_BUNDLE,
    trust that bundle instead of the default store, as http.py does."""
    bundle = ca_bundle()
    return ssl.create_default_context(cafile=bundle) if bundle else True


def _check(host: str, port: int) -> netguard.IPAddress | HttpResult:
    try:
        return netguard.checked_address(host, port)
    except netguard.DestinationRefused as exc:
        return HttpResult(error=str(exc), permanent=True)
    except netguard.DestinationUnresolved as exc:
        return HttpResult(error=str(exc))
    except ValueError as exc:
        return HttpResult(error=f"Invalid URL: {exc}", permanent=True)


async def _read_capped(response) -> str:
    limit = settings.POSTBACK_RESPONSE_BODY_LIMIT
    data = b""
    while len(data) < limit:
        chunk = await response.content.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data[:limit].decode(response.charset or "utf-8", errors="replace")
