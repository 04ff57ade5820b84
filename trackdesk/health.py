"""What a load balancer or an orchestrator asks: is the process up (/healthz), and can it do its
work (/readyz: the database and the broker answer, and a worker cluster is alive)."""

from datetime import timedelta

from django.db import connection
from django.db.models import Min
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule

# The heartbeat: each running qcluster's scheduler advances every due schedule's next_run about
# every 30 s (the sweeper's is every minute). A schedule overdue by longer than this means no
# cluster is ticking, so no worker sends postbacks or sweeps.
HEARTBEAT_STALE_AFTER = timedelta(seconds=180)


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def check_broker() -> str:
    # The ORM broker is the database (ping is always true); Redis answers PING.
    get_broker().ping()
    return "ok"


def check_worker(now=None) -> str:
    now = now or timezone.now()
    overdue = Schedule.objects.exclude(repeats=0).aggregate(oldest=Min("next_run"))["oldest"]
    if overdue is None:
        raise RuntimeError("no schedule to watch (the migrations create the sweeper's)")
    late = now - overdue
    if late > HEARTBEAT_STALE_AFTER:
        raise RuntimeError(f"no worker cluster: schedules overdue by {int(late.total_seconds())} s")
    return "ok"


def readiness() -> tuple[bool, dict[str, str]]:
    """(ready, what each check found): "ok", or why not in one line."""
    found = {"database": _run(check_database), "broker": _run(check_broker)}
    found["worker"] = (
        _run(check_worker) if found["database"] == "ok" else "unknown: no database to read"
    )
    return all(value == "ok" for value in found.values()), found


def _run(check) -> str:
    try:
        return check()
    except Exception as exc:  # any failure means not ready; the reason goes in the answer
        lines = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else 'failed'}"
