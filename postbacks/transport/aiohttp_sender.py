"""The concurrent sender: many postback requests in flight from one process.

An aiohttp session runs on one background event loop per process; `ConcurrentSender.submit()`
is called from ordinary (synchronous) code and returns a future of an `HttpResult`, so the
database work stays in the caller's thread. The rules it shares with the requests sender are in
postbacks/transport/policy.py; this module owns how aiohttp applies them:

- the address check: every host is resolved once and checked by netguard in a worker thread,
  and the connector's resolver only ever answers with an address that passed the check, so the
  connection goes to the checked address (Host header and TLS server name stay the URL's host);
- connect and read timeouts, and POSTBACK_TOTAL_TIMEOUT on the whole exchange (a receiver
  dripping bytes cannot hold a slot); no proxies from the environment; no silent resends;
- a limit on connections in total and per host, so one slow tracker cannot take every slot.
"""

import asyncio
import concurrent.futures
import functools
import os
import socket
import ssl
import threading
import time

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from postbacks import conf
from postbacks.transport import netguard, policy
from postbacks.transport.policy import HttpResult

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
        self.limit = limit or conf.concurrency()
        self.per_host = per_host or conf.per_host_concurrency()
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
            sock_connect=conf.connect_timeout(),
            sock_read=conf.read_timeout(),
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

    def submit_many(self, requests) -> list[concurrent.futures.Future]:
        """submit() for many (method, url, headers, body) at once: one wake-up of the event loop
        for all of them, where each submit() is one (a write to the loop's socket)."""
        pairs = [(request, concurrent.futures.Future()) for request in requests]
        if pairs:
            self._loop.call_soon_threadsafe(self._start_all, pairs)
        return [future for _, future in pairs]

    def _start_all(self, pairs) -> None:
        for (method, url, headers, body), future in pairs:
            if future.set_running_or_notify_cancel():
                task = self._loop.create_task(self.send(method, url, headers, body))
                task.add_done_callback(functools.partial(_settle, future))

    async def send(self, method, url, headers, body) -> HttpResult:
        started = time.monotonic()
        limit = conf.total_timeout()
        try:
            async with asyncio.timeout(limit):
                result = await self._send(method, url, headers, body)
                if conf.follow_redirects():
                    result = await self._follow_redirects(result, method, url, headers, body)
        except TimeoutError:
            result = HttpResult(error=policy.over_time(limit))
        except Exception as exc:  # a bug must cost one attempt, never the whole batch
            result = HttpResult(error=policy.sending_failed(exc))
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result

    async def _follow_redirects(self, result, method, url, headers, body) -> HttpResult:
        hops = []
        while (hop := policy.next_hop(result, hops, method, url, headers, body)) is not None:
            method, url, headers, body = hop
            result = policy.refused_hop(await self._send(method, url, headers, body), url)
        result.redirects = hops
        return result

    async def _send(self, method, url, headers, body) -> HttpResult:
        try:
            where = policy.destination(url, _yarl_reading)
            target = _yarl(url)
        except policy.UNSENDABLE as exc:
            return policy.refusal(exc)
        key = (target.raw_host, target.port)  # what the connector will ask the resolver
        checked = await self._checked(key)
        if isinstance(checked, HttpResult):
            return checked
        self._resolver.pins[key] = checked
        connect, read = conf.connect_timeout(), conf.read_timeout()
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
            return HttpResult(error=policy.connect_timed_out(connect))
        except aiohttp.ServerTimeoutError:
            return HttpResult(error=policy.read_timed_out(read))
        except aiohttp.ClientConnectorCertificateError as exc:
            return HttpResult(error=policy.tls_refused(where.hostname, exc.certificate_error))
        except aiohttp.ClientError as exc:
            return HttpResult(error=policy.connection_failed(f"{type(exc).__name__}: {exc}"))
        except OSError as exc:
            return HttpResult(error=policy.connection_failed(exc))

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


_shared: tuple[tuple, "ConcurrentSender"] | None = None


def shared_sender() -> "ConcurrentSender":
    """This process's sender, kept between drains, so a worker reuses its connections (keep-
    alive) and checked addresses from one task to the next instead of opening a session, and a
    connection per endpoint, for every task. Made anew when a setting it depends on changes."""
    global _shared
    key = (
        os.getpid(),
        conf.concurrency(),
        conf.per_host_concurrency(),
        conf.connect_timeout(),
        conf.read_timeout(),
        policy.ca_bundle(),
        tuple(conf.allowed_networks() or ()),
        tuple(conf.allowed_ports() or ()),
    )
    with _loop_lock:
        current = _shared
    if current is not None and current[0] == key:
        return current[1]
    sender = ConcurrentSender()
    with _loop_lock:
        previous, _shared = _shared, (key, sender)
    if previous is not None and previous[0][0] == os.getpid():
        previous[1].close()
    return sender


def forget_shared_sender() -> None:
    """Close this process's shared sender (tests do between cases)."""
    global _shared
    with _loop_lock:
        previous, _shared = _shared, None
    if previous is not None and previous[0][0] == os.getpid():
        previous[1].close()


def _settle(future: concurrent.futures.Future, task: asyncio.Task) -> None:
    if task.cancelled():  # the loop was stopped: the caller sees it as a sending error
        future.set_exception(concurrent.futures.CancelledError())
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


def _ssl_context() -> ssl.SSLContext | bool:
    """Verify certificates (against the URL's host name, sent as SNI), trusting
    policy.ca_bundle() instead of the default store when one is set."""
    bundle = policy.ca_bundle()
    return ssl.create_default_context(cafile=bundle) if bundle else True


def _yarl(url: str) -> URL:
    return URL(url, encoded=True)  # rendered URLs are encoded already; keep them as they are


def _yarl_reading(url: str) -> tuple:
    """(host, port) as yarl, which aiohttp connects by, reads the URL."""
    target = _yarl(url)
    return target.raw_host, target.port


def _check(host: str, port: int) -> netguard.IPAddress | HttpResult:
    try:
        return netguard.checked_address(host, port)
    except policy.UNSENDABLE as exc:
        return policy.refusal(exc)


async def _read_capped(response) -> str:
    body = policy.CappedBody()
    while body.room and (chunk := await response.content.read(body.room)):
        body.add(chunk)
    return body.text(response.headers.get("Content-Type", ""))
