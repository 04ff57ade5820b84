"""A small HTTP server standing in for an affiliate's tracker: it records what it receives.

Used by the demo (it prints each request), the end-to-end tests and the benchmarks.
Listens on loopback only (127.0.0.1 unless another 127.x address is given). Its answer can be
changed while it runs: status, delay, body, and the faults the tests need (hang, reset the
connection, a huge or dripping body, a redirect).
"""

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict
    body: str
    received_at: float

    @property
    def query(self) -> dict:
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))


@dataclass
class SinkBehaviour:
    status: int = 200
    delay: float = 0.0
    body: str = "OK"
    headers: dict = field(default_factory=dict)
    hang: bool = False  # never answer (until the sink stops or `release()` is called)
    reset: bool = False  # drop the connection with a TCP reset instead of answering
    body_size: int = 0  # send this many bytes of body instead of `body`
    drip: float = 0.0  # seconds between body bytes
    redirect_to: str = ""  # answer `status` (default 302 when 200) with this Location


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections when a few hundred postbacks arrive
    # at once; the kernel then retries them seconds later. Real trackers queue far more.
    request_queue_size = 1024


class Sink:
    """Start with `with Sink() as sink:`; `sink.url` is its base URL."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", echo=None):
        if not host.startswith("127."):
            raise ValueError("The sink listens on loopback only (127.0.0.0/8).")
        self.requests: list[ReceivedRequest] = []
        self.behaviour = SinkBehaviour()
        self._lock = threading.Lock()
        self._echo = echo
        self._released = threading.Event()
        self._server = _Server((host, port), self._handler_class())
        self._server.handle_error = lambda request, address: None  # resets are on purpose
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "Sink":
        self._thread.start()
        return self

    def release(self) -> None:
        """Let hanging requests go (they are dropped without an answer)."""
        self._released.set()

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests arrived (or the timeout passed); return all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    break
            time.sleep(0.05)
        with self._lock:
            return list(self.requests)

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)
        if self._echo:
            self._echo(request)

    def _handler_class(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                sink._record(
                    ReceivedRequest(self.command, self.path, dict(self.headers), body, time.time())
                )
                behaviour = sink.behaviour
                if behaviour.hang:
                    sink._released.wait(300)
                    self.close_connection = True
                    return
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                if behaviour.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                self._answer(behaviour)

            def _answer(self, behaviour):
                status = behaviour.status
                headers = dict(behaviour.headers)
                if behaviour.redirect_to:
                    status = 302 if status == 200 else status
                    headers["Location"] = behaviour.redirect_to
                payload = (
                    b"x" * behaviour.body_size if behaviour.body_size else behaviour.body.encode()
                )
                size = len(payload)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    if behaviour.drip:
                        for byte in payload:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(behaviour.drip)
                    else:
                        for start in range(0, size, 65536):
                            self.wfile.write(payload[start : start + 65536])
                except OSError:  # the client stopped reading (body cap, time limit)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args):
                pass

        return Handler
