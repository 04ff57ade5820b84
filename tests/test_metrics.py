"""/metrics (trackdesk/metrics.py, postbacks/metrics.py): who may read it, that its numbers move
with real events, and that the alert rules in docs/operations.md use metrics it exposes."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from conversions.models import Conversion, ConversionStatusChange
from postbacks.delivery import batch, single
from postbacks.models import Delivery, DeliveryState, EndpointHealth
from postbacks.transport.policy import HttpResult
from tests.factories import ClickFactory, ConversionFactory, OfferFactory, PostbackFactory
from tests.test_batch import FakeSender, make_deliveries

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "scrape-token-for-tests"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []


def scrape(client) -> dict:
    """Every sample of the exposition, parsed by prometheus_client's own parser."""
    response = client.get("/metrics", **AUTH)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(response.content.decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


class Change:
    """How much each sample moved between two scrapes."""

    def __init__(self, client):
        self.client, self.before = client, scrape(client)

    def __call__(self, name, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return scrape(self.client).get(key, 0) - self.before.get(key, 0)


# --- who may read it --------------------------------------------------------------------------


def test_metrics_are_off_without_a_token_or_an_allow_list(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", **AUTH).status_code == 404


def test_a_set_token_must_come_as_a_bearer_token(client, metrics_on):
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 401
    assert client.get("/metrics", **AUTH).status_code == 200


def test_the_allow_list_admits_only_its_networks(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.0.0.0/8", "::1/128"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.9").status_code == 403


def test_the_allow_list_checks_the_client_our_proxies_saw_not_what_it_claims(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.0.0.0/8"]
    settings.TRUSTED_PROXY_COUNT = 1
    behind = {"REMOTE_ADDR": "127.0.0.1"}  # the proxy
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.5", **behind).status_code == 200
    spoofed = client.get("/metrics", HTTP_X_FORWARDED_FOR="10.0.0.5, 203.0.113.7", **behind)
    assert spoofed.status_code == 403


def test_with_a_token_and_an_allow_list_a_scrape_needs_both(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5", **AUTH).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.9", **AUTH).status_code == 403


def test_a_scrape_by_ip_address_over_http_is_answered_in_production(client, metrics_on, settings):
    # Prometheus scrapes targets by address: no host name from ALLOWED_HOSTS, no TLS.
    settings.ALLOWED_HOSTS, settings.SECURE_SSL_REDIRECT = ["backoffice.example.com"], True
    response = client.get("/metrics", HTTP_HOST="10.0.0.7:8000", **AUTH)
    assert response.status_code == 200
    assert client.get("/admin/", HTTP_HOST="10.0.0.7:8000").status_code == 400  # still guarded


# --- counters move with real events -----------------------------------------------------------


def test_a_conversion_posted_to_the_api_is_counted_once(client, metrics_on, api_client):
    click = ClickFactory()
    change = Change(client)
    body = {"cid": click.cid, "conversion_type": "sale", "transaction_id": "order-1"}
    assert api_client.post("/api/v1/conversions/", body, format="json").status_code == 201
    assert api_client.post("/api/v1/conversions/", body, format="json").status_code == 200
    assert change("trackdesk_conversions_ingested_total", path="single", source="api") == 1


def test_bulk_posts_and_status_changes_are_counted_by_path(client, metrics_on, api_client):
    click = ClickFactory()
    change = Change(client)
    items = [
        {"cid": click.cid, "conversion_type": "sale", "transaction_id": f"t-{n}"} for n in range(3)
    ]
    response = api_client.post("/api/v1/conversions/bulk/", {"conversions": items}, format="json")
    assert response.status_code == 200, response.content
    conversion = Conversion.objects.get(transaction_id="t-0")
    approve = {"status": "approved"}
    url = f"/api/v1/conversions/{conversion.pk}/"
    assert api_client.patch(url, approve, format="json").status_code == 200
    assert api_client.patch(url, approve, format="json").status_code == 200  # no change
    assert change("trackdesk_conversions_ingested_total", path="bulk", source="api") == 3
    assert change("trackdesk_conversions_ingested_total", path="status", source="api") == 1


def test_a_click_on_a_tracking_link_is_counted(client, metrics_on):
    offer, click = OfferFactory(), ClickFactory()
    change = Change(client)
    response = client.get(f"/t/{offer.pk}/{click.affiliate.pk}/?affS1=x")
    assert response.status_code == 302
    assert change("trackdesk_clicks_total") == 1


def test_concurrent_dispatch_counts_attempts_by_endpoint_outcome_and_status_class(
    client, metrics_on
):
    change = Change(client)
    make_deliveries(3, url="https://ok.example.com/pb?c={affS1}")
    assert batch.drain(sender=FakeSender(HttpResult(status=200, duration_ms=40))) == 3
    make_deliveries(2, url="https://down.example.com:8443/pb?c={affS1}")
    assert batch.drain(sender=FakeSender(HttpResult(status=503, duration_ms=2000))) == 2

    attempts = "trackdesk_postback_attempts_total"
    assert change(attempts, endpoint="ok.example.com:443", outcome="success", http_class="2xx") == 3
    assert (
        change(attempts, endpoint="down.example.com:8443", outcome="failure", http_class="5xx") == 2
    )
    latency = "trackdesk_postback_attempt_duration_seconds_bucket"
    assert change(latency, outcome="success", le="0.05") == 3
    assert change(latency, outcome="failure", le="1.0") == 0
    assert change(latency, outcome="failure", le="2.5") == 2
    assert change("trackdesk_deliveries_finished_total", state="success") == 3
    assert change("trackdesk_deliveries_finished_total", state="failed") == 0  # retried later


def test_the_one_at_a_time_path_counts_its_attempts_too(client, metrics_on, monkeypatch):
    monkeypatch.setattr(
        "postbacks.transport.requests_sender.send",
        lambda *args, **kwargs: HttpResult(status=404, duration_ms=30),
    )
    [delivery] = make_deliveries(1, url="https://gone.example.com/pb?c={affS1}")
    [inactive] = make_deliveries(1, url="https://off.example.com/pb?c={affS1}")
    inactive.postback.active = False
    inactive.postback.save()
    change = Change(client)
    single.attempt_delivery(delivery.pk)
    single.attempt_delivery(inactive.pk)

    attempts = "trackdesk_postback_attempts_total"
    assert (
        change(attempts, endpoint="gone.example.com:443", outcome="failure", http_class="4xx") == 1
    )
    assert (
        change(attempts, endpoint="off.example.com:443", outcome="not_sent", http_class="none") == 1
    )
    assert change("trackdesk_deliveries_finished_total", state="failed") == 1  # the inactive one


# --- gauges read at scrape time ---------------------------------------------------------------


def test_open_deliveries_the_queue_and_the_oldest_due_are_read_from_the_tables(client, metrics_on):
    now = timezone.now()
    postback = PostbackFactory()

    def add(**fields):
        conversion = ConversionFactory(click__affiliate=postback.affiliate)
        Delivery.objects.create(
            postback=postback, conversion=conversion, status="pending", **fields
        )

    add(next_attempt_at=now - timedelta(minutes=10))  # due for ten minutes
    add(next_attempt_at=now - timedelta(minutes=1))
    add(next_attempt_at=now - timedelta(hours=1), claimed_until=now + timedelta(minutes=1))
    add(state=DeliveryState.RETRYING, next_attempt_at=now + timedelta(minutes=5))
    add(state=DeliveryState.SUCCESS, finished_at=now)

    values = scrape(client)
    assert values[("trackdesk_deliveries_open", (("state", "pending"),))] == 3
    assert values[("trackdesk_deliveries_open", (("state", "retrying"),))] == 1
    assert values[("trackdesk_deliveries_due", ())] == 2  # the claimed one is being sent
    assert 600 <= values[("trackdesk_oldest_due_delivery_age_seconds", ())] < 700
    assert values[("trackdesk_task_queue_depth", ())] == 0
    assert values[("trackdesk_metrics_database_up", ())] == 1


def test_nothing_due_reads_as_zero_age(client, metrics_on):
    assert scrape(client)[("trackdesk_oldest_due_delivery_age_seconds", ())] == 0


def test_a_delivery_held_back_for_an_earlier_status_change_is_not_late(client, metrics_on):
    # approved waits until the pending postback, retrying in an hour, is final: not a backlog.
    now = timezone.now()
    conversion = ConversionFactory()
    postback = PostbackFactory(affiliate=conversion.affiliate)
    for to_status, state, next_attempt_at in [
        ("pending", DeliveryState.RETRYING, now + timedelta(hours=1)),
        ("approved", DeliveryState.PENDING, now - timedelta(minutes=30)),
    ]:
        change = ConversionStatusChange.objects.create(
            conversion=conversion, from_status="", to_status=to_status, source="api"
        )
        Delivery.objects.create(
            postback=postback,
            conversion=conversion,
            status=to_status,
            status_change=change,
            state=state,
            next_attempt_at=next_attempt_at,
        )
    values = scrape(client)
    assert values[("trackdesk_deliveries_due", ())] == 1
    assert values[("trackdesk_oldest_due_delivery_age_seconds", ())] == 0


def test_each_failing_endpoint_shows_its_breaker_and_streak(client, metrics_on):
    now = timezone.now()
    EndpointHealth.objects.create(
        host="dead.example.com:443",
        consecutive_failures=9,
        opened_at=now,
        opened_until=now + timedelta(seconds=30),
    )
    EndpointHealth.objects.create(host="flaky.example.com:443", consecutive_failures=2)
    EndpointHealth.objects.create(host="healed.example.com:443")
    values = scrape(client)
    breaker = "trackdesk_endpoint_breaker_open"
    assert values[(breaker, (("endpoint", "dead.example.com:443"),))] == 1
    assert values[(breaker, (("endpoint", "flaky.example.com:443"),))] == 0
    assert (breaker, (("endpoint", "healed.example.com:443"),)) not in values
    streak = ("trackdesk_endpoint_consecutive_failures", (("endpoint", "dead.example.com:443"),))
    assert values[streak] == 9


# --- several processes ------------------------------------------------------------------------


def test_counts_of_worker_processes_show_on_the_web_in_multiprocess_mode(
    client, metrics_on, settings, tmp_path
):
    # A qcluster worker stands in: its own process, recording into the shared directory.
    worker = (
        "import django; django.setup()\n"
        "from types import SimpleNamespace as N\n"
        "from postbacks import metrics\n"
        "from postbacks.delivery.single import NotSent\n"
        "from postbacks.transport.policy import HttpResult\n"
        "d = N(is_test=False, state='success', postback=N(url='https://w.example.com/pb'))\n"
        "metrics.record_attempts([(d, None, HttpResult(status=204, duration_ms=80))] * 4,"
        " not_sent=NotSent)\n"
    )
    web = "import django; django.setup()\nfrom trackdesk import metrics\nmetrics.click()\n"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "trackdesk.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    for code in (worker, web, web):
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)

    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    values = scrape(client)
    key = (("endpoint", "w.example.com:443"), ("http_class", "2xx"), ("outcome", "success"))
    assert values[("trackdesk_postback_attempts_total", key)] == 4
    assert values[("trackdesk_clicks_total", ())] == 2
    assert ("trackdesk_deliveries_due", ()) in values  # the gauges still come from the tables


# --- the documented alert rules ---------------------------------------------------------------


def documented_rules() -> list[dict]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    return [rule for group in yaml.safe_load(block)["groups"] for rule in group["rules"]]


def exposed_names(client) -> set[str]:
    text = client.get("/metrics", **AUTH).content.decode()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def test_the_documented_alert_rules_use_only_metrics_the_endpoint_exposes(client, metrics_on):
    rules = documented_rules()
    assert {rule["alert"] for rule in rules} >= {
        "PostbackDeliveryBacklog",
        "PostbackSuccessRateLow",
        "PostbackEndpointBackedOff",
    }
    exposed = exposed_names(client)
    for rule in rules:
        expr = rule["expr"]
        used = set(re.findall(r"\btrackdesk_[a-z_]+", expr))
        assert used and used <= exposed, (rule["alert"], used - exposed)
        for pair in ("()", "[]", "{}"):
            assert expr.count(pair[0]) == expr.count(pair[1]), rule["alert"]


def test_every_exposed_metric_is_documented(client, metrics_on):
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    families = re.findall(r"^# TYPE (\S+) ", client.get("/metrics", **AUTH).content.decode(), re.M)
    assert [name for name in families if f"`{name}`" not in section] == []


def test_an_attempt_metric_failure_never_stops_the_recording(monkeypatch):
    from postbacks import metrics

    monkeypatch.setattr(metrics.metrics, "ATTEMPTS", None)  # any error inside
    delivery = SimpleNamespace(is_test=False, state="success", postback=SimpleNamespace(url="x"))
    metrics.record_attempts([(delivery, None, HttpResult(status=200))], not_sent=single.NotSent)
