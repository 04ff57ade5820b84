"""A missing exchange rate against a real qcluster and sink: the delivery waits with the reason,
and the rate, once added through the API, sends it with the converted amount by itself."""

from datetime import date
from decimal import Decimal

import pytest

from postbacks.models import Delivery, DeliveryState
from tests.e2e.conftest import start_qcluster, stop_qcluster, wait_until
from tests.factories import ClickFactory, PostbackFactory, conversion_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# An hour before any retry: what arrives after the rate is added was sent because of it.
ENV = {"POSTBACK_RETRY_SCHEDULE": "3600"}


@pytest.fixture(params=["concurrent", "one-per-task"])
def cluster(request, settings, transactional_db, tmp_path):
    """A qcluster on either dispatch path; the test process enqueues the way it expects."""
    from django_q.brokers import get_broker

    concurrent = request.param == "concurrent"
    settings.POSTBACK_CONCURRENT_DISPATCH = concurrent
    get_broker().purge_queue()
    proc = start_qcluster(
        tmp_path / "qcluster.log", {**ENV, "POSTBACK_CONCURRENT_DISPATCH": str(concurrent)}
    )
    yield proc
    stop_qcluster(proc)


def test_a_delivery_waits_for_its_rate_and_goes_once_the_rate_is_added(cluster, sink, api_client):
    click = ClickFactory(aff_s1="click-7")
    PostbackFactory(
        affiliate=click.affiliate,
        currency="GBP",
        url=sink.url + "/pb?clickid={affS1}&payout={payout}&currency={currency}",
        statuses=["approved"],
        conversion_types=[conversion_type("sale")],
    )
    created = api_client.post(
        "/api/v1/conversions/",
        {
            "cid": click.cid,
            "conversion_type": "sale",
            "transaction_id": "eur-1",
            "status": "approved",
            "payout": "10.00",
            "currency": "EUR",
        },
        format="json",
    )
    assert created.status_code == 201, created.content

    def waiting():
        d = Delivery.objects.filter(waiting_for_rate="EUR→GBP").first()
        return d if d and d.attempt_log.exists() else None

    delivery = wait_until(waiting)
    assert delivery is not None, "the delivery never tried and waited"
    assert delivery.state == DeliveryState.RETRYING
    assert delivery.last_error.startswith(
        "Waiting for a rate: No exchange rate from EUR to GBP on or before "
    )
    assert sink.requests == []

    rate = {"base": "EUR", "quote": "GBP", "rate": "0.8500", "valid_on": str(date.today())}
    assert api_client.post("/api/v1/exchange-rates/", rate, format="json").status_code in (200, 201)

    [received] = sink.wait_for(1)
    assert Decimal(received.query["payout"]) == Decimal("8.50")
    assert (received.query["clickid"], received.query["currency"]) == ("click-7", "GBP")
    # The sink answers before the worker records the outcome.
    assert wait_until(lambda: Delivery.objects.filter(pk=delivery.pk, state="success").exists())
    delivery.refresh_from_db()
    assert delivery.waiting_for_rate == ""
    assert delivery.attempts == 1  # the wait used up no retry
