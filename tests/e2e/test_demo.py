"""README's first command, minus the web server: seed_demo, the run_sink demo tracker and a
qcluster; the README's curl body posted with the printed token makes the sink print the
postback line the README shows."""

import io
import os
import re
import socket
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from postbacks.models import Postback
from tests.e2e.conftest import ROOT
from tests.factories import conversion_type

# The README says "the demo affiliate is id 1 and the demo shop offer id 1": ids from 1, as on a
# fresh database.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, reset_sequences=True)]

# The body of README's "See a postback arrive" curl, and the line the README says the sink prints.
README_BODY = {
    "affiliate": 1,
    "offer": 1,
    "conversion_type": "sale",
    "transaction_id": "order-1001",
    "payout": "12.50",
    "currency": "USD",
}
README_LINE = (
    "[sink] GET /postback?clickid=&payout=12.50&currency=USD&status=pending&txid=order-1001"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_sink(tmp_path):
    port = free_port()
    log = tmp_path / "sink.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_sink", f"--port={port}"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 20
    while b"listening" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", log
    proc.terminate()
    proc.wait(timeout=10)


def seed(sink_url: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", sink_url=sink_url, base_url="http://127.0.0.1:8123", stdout=out)
    return out.getvalue()


def test_demo_data_and_sink_show_the_readme_postback_arriving(demo_sink, qcluster):
    sink_url, sink_log = demo_sink
    conversion_type("sale")  # seeded by a migration; the flush between e2e tests removes it
    printed = seed(sink_url)
    printed = seed(sink_url)  # run twice, as every `run` does: refreshed, not duplicated

    password = re.search(r"password '([^']+)'", printed).group(1)
    token = re.search(r"API token:\s+(\S+)", printed).group(1)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert "http://127.0.0.1:8123/admin/" in printed
    assert "Tracking link: http://127.0.0.1:8123/t/1/1/?affS1={clickid}" in printed
    assert Postback.objects.get().url.startswith(f"{sink_url}/postback?")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post("/api/v1/conversions/", README_BODY, format="json")
    assert response.status_code == 201, response.content

    deadline = time.monotonic() + 30
    while README_LINE not in sink_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sink_log.read_text().count(README_LINE) == 1, sink_log.read_text()
