"""A fast asyncio HTTP sink for the benchmarks (one process, keep-alive, no framework).

    python bench/fastsink.py --port 0 --delay 0.1      # prints "listening <port>" when ready

It answers every request with 200 after --delay seconds, except paths starting with /hang,
which it never answers (a receiver that hangs). It records when each request arrived, keyed by
the `txn` query parameter (or the X-Postback-Id header). Control: GET /__stats -> {"count": n},
GET /__times -> {key: unix time}, GET /__reset. Listens on 127.0.0.1 only.
"""

import argparse
import asyncio
import json
import time
from urllib.parse import parse_qsl, urlsplit

received: dict[str, float] = {}
count = 0


class Handler(asyncio.Protocol):
    def __init__(self, delay: float):
        self.delay = delay
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.handle(lines[0].split(" ")[1], headers)

    def handle(self, path, headers):
        global count
        if path.startswith("/__"):
            return self.control(path)
        count += 1
        query = dict(parse_qsl(urlsplit(path).query))
        received[query.get("txn") or headers.get("x-postback-id") or str(count)] = time.time()
        if path.startswith("/hang"):
            return
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.answer, b"OK")
        else:
            self.answer(b"OK")

    def control(self, path):
        global count
        if path.startswith("/__times"):
            body = json.dumps(received).encode()
        elif path.startswith("/__reset"):
            received.clear()
            count = 0
            body = b"{}"
        else:
            body = json.dumps({"count": count}).encode()
        self.answer(body)

    def answer(self, body: bytes):
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


async def main(port: int, delay: float):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Handler(delay), "127.0.0.1", port, backlog=4096)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.delay))
