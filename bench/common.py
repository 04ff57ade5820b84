"""Shared bench plumbing: a separate database, servers on 127.0.0.1, the machine, the results.

Benchmarks never touch the dev database: SQLite goes to /tmp/trackdesk-bench-<name>.sqlite3 and
PostgreSQL to <the database named in BENCH_DATABASE_URL>_<name> (created if missing). Set
REDIS_URL to use the Redis broker. Each result file records the machine and the load average,
because other work on the machine (tests, other benchmarks) moves the numbers.
"""

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# The benches measure the concurrent dispatch path (the default).
os.environ.setdefault("POSTBACK_CONCURRENT_DISPATCH", "true")  # the default; kept explicit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable


def configure(name: str) -> dict:
    """Point this process (and the servers it starts) at the bench database; set up Django."""
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:////tmp/trackdesk-bench-{name}.sqlite3"
    if url.startswith("postgres"):
        # One database per benchmark, as one SQLite file each: what one leaves behind (the
        # ingest run's unsent deliveries) must not become the next one's backlog.
        url = f"{url}_{name}"
        _create_pg_database(url)
    env = {
        "DATABASE_URL": url,
        "POSTBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "Q_CLUSTER_NAME": f"bench-{name}",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP to gunicorn on loopback, no TLS proxy
        "API_THROTTLE_USER": "100000000/min",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def _create_pg_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def backend() -> str:
    from django.db import connection

    broker = "redis" if os.environ.get("REDIS_URL") else "orm"
    return f"{connection.vendor}+{broker}"


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(name: str, results: dict, load_before) -> Path:
    payload = {
        "benchmark": name,
        "backend": backend(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "note": "2-core machine shared with other test runs; numbers are noisy, see loadavg.",
        **results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{backend()}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwritten {path.relative_to(ROOT)}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FastSink:
    """bench/fastsink.py in its own process."""

    def __init__(self, delay: float = 0.0):
        self.proc = subprocess.Popen(
            [PY, str(ROOT / "bench" / "fastsink.py"), "--delay", str(delay)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().split()
        self.port = int(line[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def count(self) -> int:
        return self.get("/__stats")["count"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def start_qcluster(env: dict, log_name: str, extra: dict | None = None) -> subprocess.Popen:
    log_path = Path(f"/tmp/{log_name}.log")
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [PY, "manage.py", "qcluster"],
        cwd=ROOT,
        env={**os.environ, **env, **(extra or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # signal only the main pid (django-q2 #346)
    )
    deadline = time.monotonic() + 30
    while b"running" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"qcluster did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return proc


def stop_qcluster(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_gunicorn(env: dict, workers: int = 2) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            ROOT / ".venv" / "bin" / "gunicorn",
            "trackdesk.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/admin/login/", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("gunicorn did not start")


def stop_gunicorn(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def demo_rows(postbacks: int = 1, url: str = "", *, hang_url: str = "", hang_every: int = 0):
    """An affiliate per postback, an offer, a click per affiliate, and postbacks to `url`.

    Returns the clicks (one per affiliate/postback). With hang_every=3, every third postback
    goes to hang_url instead.
    """
    from affiliates.models import Affiliate, Offer
    from conversions.models import Click, ConversionType
    from postbacks.models import Postback

    offer = Offer.objects.create(name="Bench offer", landing_page_url="https://shop.example.com/")
    sale = ConversionType.objects.get_or_create(code="sale", defaults={"name": "Sale"})[0]
    clicks = []
    for i in range(postbacks):
        affiliate = Affiliate.objects.create(
            name=f"Bench {time.time()} {i}", email=f"b{i}@example.com"
        )
        hanging = hang_every and i % hang_every == 0
        target = hang_url if hanging else url
        postback = Postback.objects.create(
            name=f"Bench {i}",
            affiliate=affiliate,
            url=target + "/pb?txn={transactionId}&id={deliveryId}",
            statuses=["pending", "approved"],
        )
        postback.conversion_types.set([sale])
        click = Click.objects.create(affiliate=affiliate, offer=offer)
        click.hanging = bool(hanging)
        clicks.append(click)
    return clicks


def api_token() -> str:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from postbacks.roles import SERVICE

    user, _ = get_user_model().objects.get_or_create(username="bench-service")
    user.groups.add(Group.objects.get(name=SERVICE))  # the API checks the token's permissions
    return Token.objects.get_or_create(user=user)[0].key
