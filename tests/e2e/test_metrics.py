"""A real qcluster's attempts show on the web's /metrics, through the directory both share."""

import pytest
from django_q.brokers import get_broker
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import start_qcluster, stop_qcluster, wait_until
from tests.factories import ClickFactory, PostbackFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def attempts(client, endpoint: str) -> float:
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer e2e").content.decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "trackdesk_postback_attempts_total"
        and sample.labels["endpoint"] == endpoint
        and sample.labels["outcome"] == "success"
    )


def test_a_workers_attempts_show_on_the_webs_metrics(tmp_path, sink, api_client, client, settings):
    shared = tmp_path / "metrics"
    shared.mkdir()
    get_broker().purge_queue()
    worker = start_qcluster(tmp_path / "qcluster.log", {"PROMETHEUS_MULTIPROC_DIR": str(shared)})
    try:
        click = ClickFactory()
        PostbackFactory(affiliate=click.affiliate, url=sink.url + "/pb?c={affS1}")
        body = {"cid": click.cid, "conversion_type": "sale", "transaction_id": "m-1"}
        assert api_client.post("/api/v1/conversions/", body, format="json").status_code == 201
        assert sink.wait_for(1)

        settings.METRICS_TOKEN, settings.PROMETHEUS_MULTIPROC_DIR = "e2e", str(shared)
        endpoint = sink.url.split("/")[2]
        assert wait_until(lambda: attempts(client, endpoint) == 1, timeout=20)
    finally:
        stop_qcluster(worker)
