"""A missing exchange rate: the delivery waits for it (retried, never failed for it, not the
endpoint's fault) and goes as soon as the rate is saved; saving such a postback warns; the
dashboard lists the waits; the ECB import runs daily from ECB_RATES_SOURCE."""

import http.server
import threading
from concurrent.futures import Future
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_q.models import Schedule

from conversions import tasks as conversion_tasks
from conversions.management.commands.import_ecb_rates import import_rates
from conversions.models import ExchangeRate
from postbacks.admin import dashboard
from postbacks.delivery import batch, single
from postbacks.models import Delivery, DeliveryState, EndpointHealth
from postbacks.transport.policy import HttpResult
from tests.factories import (
    AffiliateFactory,
    ConversionFactory,
    OfferFactory,
    PostbackFactory,
    postback_form_data,
)

pytestmark = pytest.mark.django_db

ECB_CSV = "Date, USD, GBP, \n2026-01-02, 1.10, 0.85, \n"


class Seam:
    """The requests sender's send: records the URLs, answers 200."""

    def __init__(self):
        self.urls = []

    def __call__(self, method, url, *, headers, body=""):
        self.urls.append(url)
        return HttpResult(status=200, body="ok")


class ConcurrentSeam(Seam):
    """The concurrent sender's interface, answering at once."""

    def submit(self, method, url, headers, body=""):
        future = Future()
        future.set_result(self(method, url, headers=headers, body=body))
        return future

    def close(self):
        pass


@pytest.fixture
def seam(monkeypatch):
    fake = Seam()
    monkeypatch.setattr("postbacks.transport.requests_sender.send", fake)
    return fake


@pytest.fixture
def waiting(settings):
    """A EUR conversion for a postback in GBP, with no rate between them."""
    settings.POSTBACK_BREAKER_THRESHOLD = 1  # one counted failure would open the breaker
    conversion = ConversionFactory(click__aff_s1="abc", currency="EUR", payout=Decimal("10.00"))
    postback = PostbackFactory(
        affiliate=conversion.affiliate,
        currency="GBP",
        url="https://tracker.example.com/pb?clickid={affS1}&payout={payout}",
    )
    return Delivery.objects.create(postback=postback, conversion=conversion, status="pending")


def assert_waits_for_eur_gbp(delivery):
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.RETRYING and delivery.finished_at is None
    assert delivery.waiting_for_rate == "EUR→GBP"
    assert delivery.last_error.startswith(
        "Waiting for a rate: No exchange rate from EUR to GBP on or before "
    )
    assert delivery.attempt_log.get().error == delivery.last_error
    # Not the endpoint's fault: no retry used up, no failure counted against it.
    assert delivery.attempts == 0
    assert not EndpointHealth.objects.filter(consecutive_failures__gt=0).exists()


def test_a_missing_rate_makes_the_delivery_wait_on_the_schedule_and_sends_nothing(
    seam, waiting, settings
):
    settings.POSTBACK_RETRY_SCHEDULE = (60, 300)
    single.attempt_delivery(waiting.pk)
    assert seam.urls == []
    assert_waits_for_eur_gbp(waiting)
    wait = (waiting.next_attempt_at - waiting.created).total_seconds()
    assert 59 <= wait <= 61  # the schedule's first step, counted from the trigger


def test_the_batch_path_waits_for_the_rate_the_same_way(waiting):
    sender = ConcurrentSeam()
    batch.drain(sender=sender)
    assert sender.urls == []
    assert_waits_for_eur_gbp(waiting)


def test_past_the_schedule_it_keeps_waiting_at_the_last_step_and_never_fails(
    seam, waiting, settings
):
    settings.POSTBACK_RETRY_SCHEDULE = (60, 300)
    long_ago = timezone.now() - timedelta(days=3)
    Delivery.objects.filter(pk=waiting.pk).update(created=long_ago, next_attempt_at=long_ago)
    for _ in range(4):  # more tries than the schedule has steps
        Delivery.objects.filter(pk=waiting.pk).update(next_attempt_at=long_ago)
        single.attempt_delivery(waiting.pk)
    waiting.refresh_from_db()
    assert waiting.state == DeliveryState.RETRYING and waiting.attempts == 0
    assert waiting.attempt_log.count() == 4
    wait = (waiting.next_attempt_at - timezone.now()).total_seconds()
    assert 298 <= wait <= 300


def test_saving_the_rate_sends_the_waiting_delivery_with_the_converted_amount(
    seam, waiting, broker_calls, django_capture_on_commit_callbacks
):
    single.attempt_delivery(waiting.pk)
    with django_capture_on_commit_callbacks(execute=True):
        ExchangeRate.objects.create(base="EUR", quote="GBP", rate="0.85", valid_on="2026-01-02")
    assert broker_calls == [waiting.pk]  # queued now, not at its next retry
    single.attempt_delivery(waiting.pk)
    waiting.refresh_from_db()
    assert waiting.state == DeliveryState.SUCCESS and waiting.waiting_for_rate == ""
    assert seam.urls == ["https://tracker.example.com/pb?clickid=abc&payout=8.50"]
    assert waiting.attempts == 1  # the waits used up no retry


def test_an_ecb_import_sends_the_deliveries_waiting_for_its_currencies(
    seam, waiting, broker_calls, tmp_path, django_capture_on_commit_callbacks
):
    single.attempt_delivery(waiting.pk)
    source = tmp_path / "eurofxref.csv"
    source.write_text(ECB_CSV)
    with django_capture_on_commit_callbacks(execute=True):
        import_rates(str(source))
    assert broker_calls == [waiting.pk]
    waiting.refresh_from_db()
    assert waiting.next_attempt_at <= timezone.now()


def test_a_rate_for_other_currencies_leaves_the_wait_alone(
    seam, waiting, broker_calls, django_capture_on_commit_callbacks
):
    single.attempt_delivery(waiting.pk)
    waiting.refresh_from_db()
    due = waiting.next_attempt_at
    with django_capture_on_commit_callbacks(execute=True):
        ExchangeRate.objects.create(base="USD", quote="JPY", rate="150", valid_on="2026-01-02")
    assert broker_calls == []
    waiting.refresh_from_db()
    assert waiting.next_attempt_at == due


def test_a_test_send_without_a_rate_fails_with_the_reason(seam, waiting):
    Delivery.objects.filter(pk=waiting.pk).update(is_test=True)
    single.attempt_delivery(waiting.pk)
    waiting.refresh_from_db()
    assert waiting.state == DeliveryState.FAILED and waiting.waiting_for_rate == ""
    assert "No exchange rate from EUR to GBP" in waiting.last_error


def test_dashboard_lists_the_wait_apart_from_failing_endpoints(seam, waiting):
    single.attempt_delivery(waiting.pk)
    assert dashboard.failing_endpoints() == []
    [row] = dashboard.waiting_for_rates()
    assert (row.postback, row.pair, row.deliveries) == (waiting.postback, "EUR→GBP", 1)


def test_dashboard_page_shows_postbacks_waiting_for_a_rate(seam, waiting, admin_client):
    single.attempt_delivery(waiting.pk)
    page = admin_client.get("/admin/postbacks/delivery/dashboard/").content.decode()
    assert "Postbacks waiting for a rate" in page and "EUR→GBP" in page
    assert "No endpoint is failing" in page


# --- the warning when saving ----------------------------------------------------------------


def test_a_custom_currency_without_a_rate_from_an_offer_currency_warns_through_the_api(
    api_client,
):
    affiliate = AffiliateFactory()
    OfferFactory(default_currency="EUR")
    payload = {
        "name": "GBP tracker",
        "affiliate": affiliate.pk,
        "conversion_types": ["sale"],
        "statuses": ["approved"],
        "currency": "GBP",
        "url": "https://tracker.example.com/pb?payout={payout}",
    }
    response = api_client.post("/api/v1/postbacks/", payload, format="json")
    assert response.status_code == 201, response.json()
    [warning] = response.json()["warnings"]
    assert warning.startswith("No exchange rate from EUR to GBP")
    postback_url = f"/api/v1/postbacks/{response.json()['id']}/"
    assert api_client.get(postback_url).json()["warnings"] == []  # a read does not warn
    ExchangeRate.objects.create(base="EUR", quote="GBP", rate="0.85", valid_on=date.today())
    patched = api_client.patch(postback_url, {"name": "GBP"}, format="json")
    assert patched.json()["warnings"] == []


def test_a_recent_conversion_currency_without_a_rate_warns_on_the_admin_form(admin_client):
    conversion = ConversionFactory(currency="JPY")
    conversion.offer.default_currency = "GBP"
    conversion.offer.save()
    data = postback_form_data(conversion.affiliate, currency="GBP")
    response = admin_client.post("/admin/postbacks/postback/add/", data, follow=True)
    assert response.status_code == 200
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert any(
        level == "warning" and text.startswith("No exchange rate from JPY to GBP")
        for level, text in messages
    )
    assert data["name"] in [p.name for p in conversion.affiliate.postbacks.all()]  # saved anyway


def test_no_warning_without_a_custom_currency_or_with_the_rates(admin_client):
    from postbacks.money import missing_rate_warnings

    OfferFactory(default_currency="EUR")
    postback = PostbackFactory(currency="")
    assert missing_rate_warnings(postback) == []
    postback.currency = "USD"
    assert missing_rate_warnings(postback)[0].startswith("No exchange rate from EUR to USD")
    ExchangeRate.objects.create(base="EUR", quote="USD", rate="1.1", valid_on=date.today())
    assert missing_rate_warnings(postback) == []


# --- the scheduled ECB import ---------------------------------------------------------------


def test_the_daily_import_is_scheduled():
    schedule = Schedule.objects.get(func="conversions.tasks.import_ecb_rates")
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1


def test_the_scheduled_import_does_nothing_and_says_so_without_a_source(settings):
    settings.ECB_RATES_SOURCE = ""
    assert "ECB_RATES_SOURCE is empty" in conversion_tasks.import_ecb_rates()
    assert not ExchangeRate.objects.exists()


def test_the_scheduled_import_reads_a_file_path(settings, tmp_path):
    source = tmp_path / "eurofxref.csv"
    source.write_text(ECB_CSV)
    settings.ECB_RATES_SOURCE = str(source)
    assert conversion_tasks.import_ecb_rates().startswith("Imported 2 exchange rates")
    assert ExchangeRate.objects.get(quote="GBP").rate == Decimal("0.85")


@pytest.fixture
def ecb_server():
    """The ECB's file served on 127.0.0.1 (never the internet)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ECB_CSV.encode()
            self.send_response(200 if self.path == "/eurofxref.csv" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_scheduled_import_downloads_a_url(settings, ecb_server):
    settings.ECB_RATES_SOURCE = f"{ecb_server}/eurofxref.csv"
    assert "Imported 2 exchange rates" in conversion_tasks.import_ecb_rates()
    assert ExchangeRate.objects.get(quote="USD").rate == Decimal("1.10")


def test_a_source_that_answers_an_error_fails_the_task_with_the_reason(settings, ecb_server):
    from django.core.management.base import CommandError

    settings.ECB_RATES_SOURCE = f"{ecb_server}/missing.csv"
    with pytest.raises(CommandError, match="Cannot download .*404"):
        conversion_tasks.import_ecb_rates()
