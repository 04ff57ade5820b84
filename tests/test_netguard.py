"""Where postbacks may go: public addresses only unless the operator allows a network."""

import ipaddress
import socket

import pytest

from demo.sink import Sink
from postbacks.transport import netguard, policy, requests_sender
from postbacks.transport.aiohttp_sender import ConcurrentSender

BLOCKED = [
    "127.0.0.1",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "168.63.129.16",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1",
    "fd00:ec2::254",
    "fe80::1",
    "ff02::1",
    "100.127.255.254",
    "198.18.0.1",
    "240.0.0.1",
    "192.0.0.8",
    "fc00::1",
    "::ffff:10.0.0.1",
    "::ffff:100.64.0.1",
    "::127.0.0.1",
]


@pytest.fixture(autouse=True)
def no_allowed_networks(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address):
    assert netguard.is_blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert not netguard.is_blocked(ipaddress.ip_address(address))


def test_allowed_network_lets_loopback_through(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert not netguard.is_blocked(ipaddress.ip_address("127.0.0.1"))
    assert netguard.is_blocked(ipaddress.ip_address("10.0.0.1"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/pb",
        "http://2130706433/pb",
        "http://0x7f.1/pb",
        "http://0177.0.0.1/pb",
        "http://0/pb",
        "http://[::ffff:127.0.0.1]/pb",
        "http://good.com@127.0.0.1/pb",
        "http://localhost./pb",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_literal_blocked_addresses_are_named_at_save_time(url):
    assert netguard.refusal_for_url(url)


def test_public_hostnames_are_not_refused_at_save_time():
    assert netguard.refusal_for_url("https://tracker.example.com/pb?x=1") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/pb",
        "http://2130706433:9/pb",
        "http://localhost:9/pb",
        "http://[::1]:9/pb",
    ],
)
def test_send_refuses_loopback_without_connecting(url, send):
    result = send("GET", url, headers={})
    assert result.permanent and result.status is None
    assert "not allowed" in result.error


@pytest.mark.parametrize(
    "url",
    [
        "http://0x7f.1:9/pb",
        "http://0177.0.0.1:9/pb",
        "http://0:9/pb",
        "http://[::ffff:127.0.0.1]:9/pb",
        "http://tracker.example.com@127.0.0.1:9/pb",
        "http://127.0.0.1.:9/pb",
        "http://localhost.:9/pb",
        "http://sub.localhost:9/pb",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_send_refuses_odd_spellings_of_blocked_addresses(url, monkeypatch, send):
    def no_dns(host, *args, **kwargs):
        raise AssertionError(f"{host} should not need DNS")

    monkeypatch.setattr("socket.getaddrinfo", no_dns)
    result = send("GET", url, headers={})
    assert result.permanent and result.status is None
    assert "not allowed" in result.error


def test_send_refuses_a_url_two_parsers_read_differently(monkeypatch, send):
    """urllib3 would connect to port 22 where urlsplit saw port 80 of a public host."""
    monkeypatch.setattr(netguard, "resolve", lambda host, port: [ipaddress.ip_address("8.8.8.8")])
    result = send("GET", "http://127.0.0.1:22\\@8.8.8.8/pb", headers={})
    assert result.permanent and result.status is None
    assert result.error.startswith("Destination not allowed: the URL's host is ambiguous")


def test_send_refuses_when_any_resolved_address_is_private(monkeypatch, send):
    addresses = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.7")]
    monkeypatch.setattr(netguard, "resolve", lambda host, port: addresses)
    result = send("GET", "https://tracker.example.com/pb", headers={})
    assert result.permanent and "10.0.0.7" in result.error


def test_send_refuses_a_name_resolving_to_a_private_address(monkeypatch, send):
    monkeypatch.setattr(netguard, "resolve", lambda host, port: [ipaddress.ip_address("10.0.0.7")])
    result = send("GET", "https://innocent.example.com/pb", headers={})
    assert result.permanent and "10.0.0.7" in result.error


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://tracker.example.com:8080/pb", 8080),
        ("https://tracker.example.com:22/pb", 22),
        ("http://tracker.example.com.:6379/pb", 6379),
        ("http://8.8.8.8:6379/pb", 6379),
        ("http://good.com@8.8.8.8:25/pb", 25),
    ],
)
def test_send_refuses_non_standard_ports_on_public_addresses(monkeypatch, send, url, port):
    def public_dns(host, port, *args, **kwargs):
        assert not host.startswith("8."), f"{host} should not need DNS"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port))]

    monkeypatch.setattr("socket.getaddrinfo", public_dns)
    result = send("GET", url, headers={})
    assert result.permanent and result.status is None
    assert f"Destination not allowed: port {port}." in result.error


def test_port_0_is_not_read_as_the_default_port_at_save(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = []
    assert netguard.port_refusal_for_url("http://tracker.example.com/pb") is None
    refusal = netguard.port_refusal_for_url("http://tracker.example.com:0/pb")
    assert refusal.startswith("Port 0 is not allowed")


def test_send_connects_to_the_checked_address_with_the_original_host_header(settings, monkeypatch):
    """DNS is asked once; the request goes to that address, Host stays the URL's name."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    lookups = []

    def resolve_once(host, port):
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netguard, "resolve", resolve_once)
    with Sink() as sink:
        result = requests_sender.send(
            "GET", f"http://tracker.invalid:{sink.port}/pb?a=1", headers={}
        )
        assert result.status == 200, result.error
        assert sink.requests[0].headers["Host"] == f"tracker.invalid:{sink.port}"
        assert sink.requests[0].path == "/pb?a=1"
    assert lookups == ["tracker.invalid"]


def test_redirects_are_not_followed(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as sink:
        sink.behaviour.status = 302
        sink.behaviour.headers = {"Location": "http://169.254.169.254/latest/meta-data"}
        result = requests_sender.send("GET", sink.url + "/pb", headers={})
        assert result.status == 302 and not result.ok
        assert len(sink.requests) == 1


def test_response_body_is_read_up_to_the_cap(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.POSTBACK_RESPONSE_BODY_LIMIT = 100
    with Sink() as sink:
        sink.behaviour.body = "x" * 100_000
        result = requests_sender.send("GET", sink.url + "/pb", headers={})
    assert result.status == 200 and len(result.body) == 100


def test_read_timeout_is_reported_and_retryable(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.POSTBACK_READ_TIMEOUT = 0.3
    with Sink() as sink:
        sink.behaviour.delay = 2
        result = requests_sender.send("GET", sink.url + "/pb", headers={})
    assert result.status is None and not result.permanent
    assert "timeout" in result.error.lower()


def test_a_dropped_connection_is_not_silently_resent(settings):
    """A kept-alive connection that drops after the tracker read the request is one failed
    attempt, never a second request sent behind our back (that would be a duplicate)."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with Sink() as sink:
        assert requests_sender.send("GET", sink.url + "/pb?n=1", headers={}).status == 200
        sink.behaviour.reset = True
        result = requests_sender.send("GET", sink.url + "/pb?n=2", headers={})
        assert result.status is None and result.error
        assert [r.query["n"] for r in sink.requests] == ["1", "2"]


def test_proxy_environment_variables_are_ignored(settings, monkeypatch):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with Sink() as sink:
        result = requests_sender.send("GET", sink.url + "/pb", headers={})
    assert result.status == 200


def test_total_time_limit_ends_an_answer_that_drips(settings):
    """Each byte arrives within the read timeout; the total limit still ends the exchange."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.POSTBACK_READ_TIMEOUT = 2
    settings.POSTBACK_TOTAL_TIMEOUT = 0.5
    with Sink() as sink:
        sink.behaviour.status, sink.behaviour.body, sink.behaviour.drip = 500, "x" * 100, 0.1
        result = requests_sender.send("GET", sink.url + "/pb", headers={})
    assert result.status == 500 and not result.permanent
    assert result.error == "No complete response within 0.5 s (total time limit)"


# --- redirects ------------------------------------------------------------------------------


@pytest.fixture
def follow_redirects(settings):
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.POSTBACK_FOLLOW_REDIRECTS = True
    settings.POSTBACK_MAX_REDIRECTS = 2


def test_redirect_is_followed_when_the_operator_turns_it_on(follow_redirects, send):
    with Sink() as first, Sink() as second:
        first.behaviour.redirect_to = second.url + "/final"
        result = send("GET", first.url + "/pb", headers={"X-Postback-Id": "abc"})
        assert result.ok and result.redirects == [second.url + "/final"]
        assert second.requests[0].path == "/final"
        assert second.requests[0].headers["X-Postback-Id"] == "abc"
        assert second.requests[0].headers["Host"] == f"127.0.0.1:{second.port}"


def test_each_redirect_hop_is_checked_by_the_guard(follow_redirects, send):
    with Sink() as sink:
        sink.behaviour.redirect_to = "http://169.254.169.254/latest/meta-data"
        result = send("GET", sink.url + "/pb", headers={})
    assert result.permanent and result.status is None
    assert result.error.startswith("Redirect to http://169.254.169.254/latest/meta-data refused.")


def test_redirects_stop_after_the_maximum_hops(follow_redirects, send):
    with Sink() as sink:
        sink.behaviour.redirect_to = "/again"
        result = send("GET", sink.url + "/pb", headers={})
        assert len(sink.requests) == 3  # the request and two hops
    assert result.status == 302 and not result.ok and not result.permanent
    assert "stopped after 2 redirects" in result.error


@pytest.mark.parametrize(("status", "method"), [(302, "GET"), (303, "GET"), (307, "POST")])
def test_post_redirect_keeps_the_method_only_for_307_and_308(
    follow_redirects, send, status, method
):
    with Sink() as first, Sink() as second:
        first.behaviour.status, first.behaviour.redirect_to = status, second.url + "/final"
        send("POST", first.url + "/pb", headers={}, body="a=1")
        assert second.requests[0].method == method
        assert second.requests[0].body == ("a=1" if method == "POST" else "")


# --- one policy: both senders apply a shared rule the same way -------------------------------


def each_sender(method: str, url: str, *, body: str = "") -> tuple:
    """The same request through the requests sender, then through the concurrent sender."""
    with ConcurrentSender() as concurrent:
        return (
            requests_sender.send(method, url, headers={}, body=body),
            concurrent.submit(method, url, {}, body).result(timeout=30),
        )


ADDRESSES = {"inside.example.com": "10.0.0.7", "public.example.com": "8.8.8.8"}


@pytest.mark.parametrize(
    "url",
    [
        "ftp://public.example.com/pb",
        "http://public.example.com:99999/pb",
        "http://127.0.0.1:22\\@public.example.com/pb",
        "https://inside.example.com/pb",
        "https://public.example.com:22/pb",
    ],
)
def test_both_senders_refuse_a_url_in_the_same_words(monkeypatch, url):
    """None of these is sent: each is refused before a connection is made."""
    monkeypatch.setattr(netguard, "resolve", lambda h, p: [ipaddress.ip_address(ADDRESSES[h])])
    by_requests, by_aiohttp = each_sender("GET", url)
    assert by_requests.permanent and by_aiohttp.permanent
    assert by_requests.error == by_aiohttp.error


def test_both_senders_word_a_refused_and_a_stopped_redirect_alike(follow_redirects):
    with Sink() as sink:
        sink.behaviour.redirect_to = "http://169.254.169.254/latest/meta-data"
        refused = each_sender("GET", sink.url + "/pb")
        sink.behaviour.redirect_to = "/again"
        stopped = each_sender("POST", sink.url + "/pb", body="a=1")
    assert refused[0].error == refused[1].error
    assert refused[0].error.startswith("Redirect to http://169.254.169.254/latest/meta-data")
    assert stopped[0].error == stopped[1].error
    assert [r.redirects for r in stopped] == [[sink.url + "/again"] * 2] * 2


def test_both_senders_keep_the_same_capped_body(settings):
    """The cap cuts the last "é" in half; both keep the same bytes and decode them alike."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.POSTBACK_RESPONSE_BODY_LIMIT = 101
    with Sink() as sink:
        sink.behaviour.body = "é" * 1000
        by_requests, by_aiohttp = each_sender("GET", sink.url + "/pb")
    assert by_requests.body == by_aiohttp.body == "é" * 50 + "\ufffd"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain; charset=no-such-charset", "application/json"]
)
def test_a_body_without_a_known_charset_is_read_as_utf8(settings, content_type):
    """requests alone would read text/plain as Latin-1 and fail on an unknown charset."""
    body = policy.CappedBody()
    body.add("café".encode())
    assert body.text(content_type) == "café"


# --- a malformed POSTBACK_ALLOWED_NETWORKS ---------------------------------------------------

BAD_NETWORKS = [["10.1.0.0/33"], ["abc"], ["127.0.0.0/8", " 10.1.0.0/33 "], ["fd00::/129"]]


@pytest.mark.parametrize("networks", BAD_NETWORKS)
def test_check_refuses_to_start_naming_the_bad_entry(settings, networks):
    from postbacks.checks import allowed_networks_are_networks

    settings.POSTBACK_ALLOWED_NETWORKS = networks
    (error,) = allowed_networks_are_networks(None)
    bad = networks[-1].strip()
    assert error.id == "postbacks.E001" and error.is_serious()  # an Error, not a Warning
    assert error.msg.startswith(f"POSTBACK_ALLOWED_NETWORKS has an invalid entry {bad!r}: ")
    assert "CIDR" in error.hint


@pytest.mark.parametrize("networks", [[], ["127.0.0.0/8", "10.1.0.0/16", "::1", "10.0.0.1/8"]])
def test_check_accepts_valid_networks(settings, networks):
    from postbacks.checks import allowed_networks_are_networks

    settings.POSTBACK_ALLOWED_NETWORKS = networks
    assert allowed_networks_are_networks(None) == []


def test_manage_py_check_and_qcluster_fail_on_a_bad_network(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django_q.management.commands.qcluster import Command as QCluster

    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8", "10.1.0.0/33"]
    with pytest.raises(SystemCheckError, match=r"postbacks\.E001.*'10\.1\.0\.0/33'"):
        call_command("check")
    assert QCluster.requires_system_checks  # qcluster runs the same checks before it starts
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    call_command("check")


@pytest.mark.parametrize("url", ["http://10.1.2.3/pb", "http://[::1]/pb", "http://8.8.8.8/pb"])
def test_save_time_check_survives_a_bad_network(settings, url):
    """No ValueError (a 500 in the admin and the API): a bad entry allows nothing."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["10.1.0.0/33"]
    refusal = netguard.refusal_for_url(url)
    if url == "http://8.8.8.8/pb":
        assert refusal is None
    else:
        assert refusal.startswith("Postback URLs may not point at a non-public address")
        assert "invalid entries that allow nothing ('10.1.0.0/33')" in refusal


@pytest.mark.django_db
def test_api_answers_400_not_500_for_an_ip_url_with_a_bad_network(settings, api_client):
    from tests.factories import AffiliateFactory

    settings.POSTBACK_ALLOWED_NETWORKS = ["abc"]
    payload = {
        "name": "Tracker",
        "affiliate": AffiliateFactory().pk,
        "scope": "global",
        "statuses": ["approved"],
        "conversion_types": ["lead"],
        "method": "GET",
        "url": "http://10.1.2.3/pb?c={affS1}",
    }
    response = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert response.status_code == 400, response.content
    assert "'abc'" in response.json()["url"][0]


def test_valid_entries_still_apply_next_to_a_bad_one(settings, send):
    """Public destinations and the valid networks keep working (a bad entry used to fail every
    delivery with "Invalid URL"); what the bad entry meant to allow is refused, naming it."""
    settings.POSTBACK_ALLOWED_NETWORKS = ["127.0.0.0/8", "10.1.0.0/33"]
    with Sink() as sink:
        assert send("GET", sink.url + "/pb", headers={}).status == 200
    assert netguard.checked_address("8.8.8.8", 443) == ipaddress.ip_address("8.8.8.8")
    result = send("GET", "http://10.1.2.3/pb", headers={})
    assert result.permanent and result.status is None
    assert result.error.startswith("Destination not allowed: 10.1.2.3 resolves")
    assert "'10.1.0.0/33'" in result.error
