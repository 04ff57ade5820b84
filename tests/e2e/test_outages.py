"""Broker and database outages (issue 13, items 6 and 7), each with a real qcluster and sink.

A Redis outage refuses and loses nothing: conversions are answered 201 and stored with their
deliveries, and are sent once Redis is back. A worker started while the database is unreachable
stays up and sends once it is back. Both bring their own servers, on 127.0.0.1 only, so they run
on SQLite and on PostgreSQL alike.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
from django.db import connection
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conversions.models import Conversion
from postbacks.delivery import queue
from postbacks.models import Delivery, DeliveryState
from tests.e2e.conftest import start_qcluster, stop_qcluster, wait_until
from tests.factories import ClickFactory, PostbackFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throw-away redis-server on 127.0.0.1 that the test stops and starts again."""

    def __init__(self, port: int):
        self.port, self.url, self.proc = port, f"redis://127.0.0.1:{port}/0", None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        assert wait_until(lambda: self._answers(client), timeout=10), "redis-server did not start"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @staticmethod
    def _answers(client) -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False


@pytest.fixture
def redis_server():
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def on_our_redis(redis_server, settings, monkeypatch):
    """This process's broker and cache (API throttles) on the test's own Redis."""
    settings.CACHES = {
        "default": {
            "BACKEND": "trackdesk.cache.RedisCache",
            "LOCATION": redis_server.url,
        }
    }
    monkeypatch.setattr(Conf, "REDIS", redis_server.url)
    broker = Redis()
    monkeypatch.setattr(queue, "broker", lambda: broker)
    return redis_server


def service_client(django_user_model) -> APIClient:
    user = django_user_model.objects.create_superuser("svc", password="not-used")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_redis_outage_accepts_conversions_and_sends_them_when_redis_is_back(
    on_our_redis, sink, tmp_path, settings, django_user_model
):
    settings.POSTBACK_STALE_AFTER = 1  # for the sweeps run here, standing in for the schedule
    redis_server = on_our_redis
    clicks = [ClickFactory() for _ in range(3)]
    for click in clicks:
        PostbackFactory(
            affiliate=click.affiliate, url=sink.url + "/pb?id={deliveryId}", statuses=["pending"]
        )
    api = service_client(django_user_model)
    cluster = start_qcluster(tmp_path / "cluster.log", {"REDIS_URL": redis_server.url})
    try:
        redis_server.stop()
        answers = [
            api.post(
                "/api/v1/conversions/",
                {"cid": click.cid, "transaction_id": f"outage-{n}", "conversion_type": "sale"},
                format="json",
            )
            for n, click in enumerate(clicks)
        ]
        assert [a.status_code for a in answers] == [201, 201, 201], answers[0].content[:500]
        assert Conversion.objects.count() == 3 and Delivery.objects.count() == 3
        assert queue.sweep() == 0  # the broker is still down: nothing queued, nothing raised
        assert cluster.poll() is None, "the worker exited during the Redis outage"

        redis_server.start()
        done = wait_until(
            lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).count() == 3,
            timeout=60,
            every=0.5,
            also=queue.sweep,
        )
    finally:
        stop_qcluster(cluster)

    assert done, (tmp_path / "cluster.log").read_text()[-3000:]
    received = sink.wait_for(4, timeout=1)
    assert sorted(r.headers["X-Postback-Id"] for r in received) == sorted(
        str(uid) for uid in Delivery.objects.values_list("uid", flat=True)
    )


class Forwarder:
    """A TCP relay on 127.0.0.1 to the test's PostgreSQL, started when the test says so."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self.server, self.sockets = None, []
        self.ports = []  # the relay's own ends towards PostgreSQL: its sessions' client ports

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        """Close the relay and every connection through it, so none outlives the test."""
        if self.server:
            self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            self.ports.append(upstream.getsockname()[1])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, not only close: the other thread's recv() keeps a closed socket open.
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@pytest.fixture
def database_away(tmp_path):
    """(a DATABASE_URL for the test database that does not answer yet, a function that makes
    it answer). SQLite: the file behind a folder link not made yet. PostgreSQL: a relay on a
    free 127.0.0.1 port, not listening yet."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        real = Path(db["NAME"])
        link = tmp_path / "db"
        yield f"sqlite:///{link / real.name}", lambda: os.symlink(real.parent, link)
        return
    relay = Forwarder((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    yield f"postgres://{auth}@127.0.0.1:{relay.port}/{db['NAME']}", relay.start
    relay.stop()
    # PostgreSQL ends those sessions a moment later; dropping the test database needs them gone.
    wait_until(lambda: not sessions_from(relay.ports), timeout=10)


def sessions_from(ports: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s)", [ports])
        return cursor.fetchone()[0]


def test_worker_started_while_the_database_is_unreachable_stays_up_and_sends_when_it_is_back(
    database_away, sink, tmp_path, settings
):
    settings.POSTBACK_STALE_AFTER = 1
    url, bring_back = database_away
    click = ClickFactory()
    PostbackFactory(
        affiliate=click.affiliate, url=sink.url + "/pb?id={deliveryId}", statuses=["pending"]
    )
    cluster = start_qcluster(tmp_path / "cluster.log", {"DATABASE_URL": url})
    try:
        fired = APIClient().get(  # the pixel: stored and queued here; the worker cannot read it
            "/tracking/conversion/v1",
            {"cid": click.cid, "token": click.offer.pixel_secret, "conversionTypeCode": "sale"},
        )
        assert fired.status_code == 201, fired.content[:500]
        time.sleep(3)  # a few of the worker's retries
        assert cluster.poll() is None, (tmp_path / "cluster.log").read_text()[-3000:]
        assert sink.requests == []

        bring_back()
        done = wait_until(
            lambda: Delivery.objects.filter(state=DeliveryState.SUCCESS).first(),
            timeout=60,
            every=0.5,
            also=queue.sweep,  # with Redis the failed task is gone; the sweeper queues it again
        )
    finally:
        stop_qcluster(cluster)

    log = (tmp_path / "cluster.log").read_text()
    assert done, log[-3000:]
    assert [r.headers["X-Postback-Id"] for r in sink.wait_for(2, timeout=1)] == [str(done.uid)]
    if "REDIS_URL" not in os.environ:  # the ORM broker waits with back-off, one line each
        assert "Database unreachable" in log and "next try in 2 s" in log
