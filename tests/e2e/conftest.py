"""Real servers for end-to-end tests: a sink on 127.0.0.1 and a `qcluster` worker process.

The worker is a separate process on the test database (a file for SQLite), so the tests that
use it run with transaction=True: their rows are committed where the worker can read them.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from demo.sink import Sink

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def sink():
    with Sink() as server:
        yield server


def start_qcluster(log_path: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "POSTBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log = open(log_path, "ab")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so only the main pid gets our SIGTERM (django-q2 #346)
    )
    proc.log_path = log_path
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if b"running" in log_path.read_bytes() or proc.poll() is not None:
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        raise RuntimeError(f"qcluster exited early:\n{log_path.read_text()}")
    return proc


def stop_qcluster(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def qcluster(transactional_db, tmp_path):
    """A running `manage.py qcluster` on the test database and the configured broker."""
    from django_q.brokers import get_broker

    get_broker().purge_queue()  # nothing left over from an earlier run (Redis keeps it)
    proc = start_qcluster(tmp_path / "qcluster.log")
    yield proc
    stop_qcluster(proc)


def kill_qcluster(proc: subprocess.Popen) -> None:
    """SIGKILL the cluster and all its processes at once, as the OOM killer or a power cut
    would (SIGKILL is safe on the group; only SIGTERM hangs it, django-q2 #346)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_until(condition, timeout: float = 30.0, every: float = 0.2, also=None):
    """Poll `condition()` until it is truthy (returned) or the timeout passes (returns None).

    `also` runs on every round, e.g. the sweeper standing in for its once-a-minute schedule.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if also is not None:
            also()
        value = condition()
        if value:
            return value
        time.sleep(every)
    return None
