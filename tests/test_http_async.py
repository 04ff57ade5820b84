"""The concurrent sender keeps the seam's promises: checked address, timeouts, no redirects."""

import ipaddress

import pytest

from demo.sink import Sink
from postbacks.transport import netguard
from postbacks.transport.aiohttp_sender import ConcurrentSender


@pytest.fixture
def loopback_allowed(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def send(url, *, headers=None, method="GET", body=""):
    with ConcurrentSender() as sender:
        return sender.submit(method, url, headers or {}, body).result(timeout=30)


def test_refuses_a_name_resolving_to_a_private_address(monkeypatch):
    monkeypatch.setattr(netguard, "resolve", lambda host, port: [ipaddress.ip_address("10.0.0.7")])
    result = send("https://innocent.example.com/pb")
    assert result.permanent and "10.0.0.7" in result.error and result.status is None


def test_refuses_loopback_unless_allowed():
    with Sink() as sink:
        result = send(sink.url + "/pb")
        assert result.permanent and "not allowed" in result.error
        assert sink.requests == []


def test_connects_to_the_checked_address_keeping_host_and_url(loopback_allowed, monkeypatch):
    """DNS is asked once per host; connections go to that address, Host stays the URL's name."""
    lookups = []

    def resolve_once(host, port):
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netguard, "resolve", resolve_once)
    with Sink() as sink, ConcurrentSender() as sender:
        url = f"http://tracker.invalid:{sink.port}/pb?a=1&b=%2F%20x"
        futures = [sender.submit("GET", url, {"X-Postback-Id": str(i)}) for i in range(20)]
        results = [f.result(timeout=30) for f in futures]
        assert all(r.status == 200 for r in results), results[0].error
        assert len(sink.requests) == 20
        assert sink.requests[0].headers["Host"] == f"tracker.invalid:{sink.port}"
        assert sink.requests[0].path == "/pb?a=1&b=%2F%20x"  # sent exactly as rendered
    assert lookups == ["tracker.invalid"]


def test_posts_the_body_with_its_headers(loopback_allowed):
    with Sink() as sink:
        result = send(
            sink.url + "/pb",
            method="POST",
            body="a=1&b=2",
            headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "T/1"},
        )
        assert result.status == 200
        received = sink.requests[0]
        assert received.method == "POST" and received.body == "a=1&b=2"
        assert received.headers["User-Agent"] == "T/1"


def test_redirects_are_not_followed(loopback_allowed):
    with Sink() as sink:
        sink.behaviour.status = 302
        sink.behaviour.headers = {"Location": "http://169.254.169.254/latest/meta-data"}
        result = send(sink.url + "/pb")
        assert result.status == 302 and not result.ok
        assert len(sink.requests) == 1


def test_response_body_is_read_up_to_the_cap(loopback_allowed, settings):
    settings.POSTBACK_RESPONSE_BODY_LIMIT = 100
    with Sink() as sink:
        sink.behaviour.body = "x" * 100_000
        result = send(sink.url + "/pb")
    assert result.status == 200 and len(result.body) == 100


def test_read_timeout_is_reported_and_retryable(loopback_allowed, settings):
    settings.POSTBACK_READ_TIMEOUT = 0.3
    with Sink() as sink:
        sink.behaviour.delay = 2
        result = send(sink.url + "/pb")
    assert result.status is None and not result.permanent
    assert "timeout" in result.error.lower()


def test_connection_refused_is_retryable(loopback_allowed):
    with Sink() as sink:
        url = sink.url + "/pb"
    result = send(url)  # the sink is gone: nothing listens on that port
    assert result.status is None and not result.permanent
    assert result.error.startswith("Connection failed")


def test_proxy_environment_variables_are_ignored(loopback_allowed, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with Sink() as sink:
        result = send(sink.url + "/pb")
    assert result.status == 200


def test_non_http_urls_are_refused():
    result = send("ftp://tracker.example.com/pb")
    assert result.permanent and "http" in result.error


def test_a_dropped_connection_is_not_silently_resent(loopback_allowed):
    """aiohttp resends a GET on its own when a reused connection drops; the receiver may have
    counted the first one, so a postback would arrive twice. It is one failed attempt instead."""
    with Sink() as sink, ConcurrentSender() as sender:
        assert sender.submit("GET", sink.url + "/pb?n=1", {}).result(timeout=30).status == 200
        sink.behaviour.reset = True  # records the request, then drops the kept-alive connection
        result = sender.submit("GET", sink.url + "/pb?n=2", {}).result(timeout=30)
        assert result.status is None and "Connection failed" in result.error
        assert [r.query["n"] for r in sink.requests] == ["1", "2"]


def test_total_time_limit_ends_an_answer_that_drips(loopback_allowed, settings):
    """Each byte arrives within the read timeout; the total limit still frees the slot."""
    settings.POSTBACK_READ_TIMEOUT = 2
    settings.POSTBACK_TOTAL_TIMEOUT = 0.5
    with Sink() as sink:
        sink.behaviour.status, sink.behaviour.body, sink.behaviour.drip = 500, "x" * 100, 0.1
        result = send(sink.url + "/pb")
    assert result.status is None and not result.permanent
    assert result.error == "No complete response within 0.5 s (total time limit)"
    assert result.duration_ms < 2000


def test_a_url_two_parsers_read_differently_is_refused(loopback_allowed):
    with Sink() as sink:
        result = send(f"http://127.0.0.1:{sink.port}\\@169.254.169.254/pb")
        assert result.permanent and result.status is None
        assert sink.requests == []
