"""Load balancer probes (/healthz, /readyz) and a clear 503 when the database is unreachable
(issue 13, item 7)."""

import socket
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone
from django_q.brokers.redis_broker import Redis
from django_q.models import Schedule

from tests.factories import ClickFactory

SWEEPER = "postbacks.delivery.tasks.sweep"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def heartbeat(seconds_ago: float) -> None:
    """The schedules as a running cluster leaves them: every next_run advanced on each tick
    (rows other tests restored keep their old next_run otherwise)."""
    Schedule.objects.update(next_run=timezone.now() - timedelta(seconds=seconds_ago))
    Schedule.objects.update_or_create(
        func=SWEEPER,
        defaults={
            "name": "postbacks: sweep due deliveries",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now() - timedelta(seconds=seconds_ago),
        },
    )


@pytest.fixture
def database_down():
    """The default connection pointed at a place with no database: a SQLite file in a folder
    that does not exist, or a PostgreSQL port nothing listens on (127.0.0.1 only)."""
    settings_dict = connection.settings_dict
    saved = dict(settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        settings_dict["NAME"] = "/nonexistent-trackdesk-test/db.sqlite3"
    else:
        settings_dict.update(HOST="127.0.0.1", PORT=str(free_port()))
    yield
    connection.close()
    settings_dict.clear()
    settings_dict.update(saved)


def test_healthz_answers_without_the_database_a_known_host_or_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="10.0.0.7")  # a probe by IP, over plain HTTP
    assert (response.status_code, response.content) == (200, b"ok")


@pytest.mark.django_db
def test_readyz_is_ready_with_database_broker_and_a_ticking_worker(client):
    heartbeat(seconds_ago=20)
    response = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "worker": "ok"},
    }


@pytest.mark.django_db
def test_readyz_is_not_ready_when_no_worker_cluster_ticks(client):
    heartbeat(seconds_ago=600)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"].startswith("RuntimeError: no worker cluster")


@pytest.mark.django_db
def test_readyz_is_not_ready_when_the_redis_broker_is_unreachable(client, monkeypatch):
    heartbeat(seconds_ago=0)
    dead = Redis.__new__(Redis)  # django-q2's Redis broker, on a port nothing listens on
    dead.connection = redis.Redis(host="127.0.0.1", port=free_port())
    monkeypatch.setattr("trackdesk.health.get_broker", lambda: dead)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("ConnectionError")
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_database_down_answers_503_with_retry_after_on_api_pixel_and_link(
    api_client, anon_client, client, database_down_later
):
    click = ClickFactory()
    link = f"/t/{click.offer_id}/{click.affiliate_id}/"
    pixel = {"cid": click.cid, "token": click.offer.pixel_secret, "conversionTypeCode": "sale"}
    database_down_later()

    api = api_client.post(
        "/api/v1/conversions/",
        {"cid": click.cid, "transaction_id": "t-1", "conversion_type": "sale"},
        format="json",
    )
    fired = anon_client.get("/tracking/conversion/v1", pixel)
    followed = client.get(link)
    ready = client.get("/readyz")
    alive = client.get("/healthz")

    for response in (api, fired, followed):
        assert response.status_code == 503, response.content[:300]
        assert response["Retry-After"] == "30"
    assert api.json() == {"detail": "The database is unavailable; try again shortly."}
    for response in (fired, followed):
        assert response["Content-Type"].startswith("text/plain")
        assert response.content == b"The database is unavailable; try again shortly."
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("OperationalError")
    assert ready.json()["checks"]["worker"] == "unknown: no database to read"
    assert alive.status_code == 200


@pytest.fixture
def database_down_later(request):
    """Take the database away when the test says so (after it has written its rows)."""

    def take_it_away():
        request.getfixturevalue("database_down")

    return take_it_away
