"""How long a Prometheus scrape of /metrics takes with 1,000,000 delivery rows.

    .venv/bin/python bench/metrics_scrape.py [--rows 1000000] [--runs 7]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python \
        bench/metrics_scrape.py

Makes a fresh database (a temporary SQLite file, or a new PostgreSQL database on the server of
DATABASE_URL, dropped afterwards), seeds it in SQL with the log's shape in bench/admin.py: 90 %
delivered, 5 % failed, 3 % retrying (due later), 2 % pending (all due now: a 20,000-row backlog
at 1,000,000 rows, the heavy case for the queue gauges), over 20,000 conversions, plus 200
failing endpoints. Then times each scrape-time query and the whole exposition (median and max
of --runs, after one warm-up); then delivers all but 1 in 1,000 and times again.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONVERSIONS = 20_000


def fresh_database() -> tuple[str, callable]:
    """A DATABASE_URL for a new, empty database, and how to drop it."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        folder = tempfile.mkdtemp(prefix="metrics-bench-")
        return f"sqlite:///{folder}/db.sqlite3", lambda: shutil.rmtree(folder)
    import psycopg

    name = f"metrics_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(base)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop():
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def seed(rows: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from affiliates.models import Affiliate, Offer
    from conversions.models import Click, Conversion, ConversionType
    from postbacks.models import Delivery, EndpointHealth, Postback

    now = timezone.now()
    affiliate = Affiliate.objects.create(name="Bench", email="bench@example.com")
    offer = Offer.objects.create(name="Bench", landing_page_url="https://shop.example.com/")
    click = Click.objects.create(affiliate=affiliate, offer=offer)
    sale = ConversionType.objects.get_or_create(code="sale", defaults={"name": "Sale"})[0]
    conversions = Conversion.objects.bulk_create(
        Conversion(
            affiliate=affiliate,
            offer=offer,
            click=click,
            conversion_type=sale,
            transaction_id=f"T-{n}",
        )
        for n in range(CONVERSIONS)
    )
    postback = Postback.objects.create(
        name="Bench", affiliate=affiliate, url="https://tracker.example.com/pb"
    )
    template = Delivery.objects.create(
        postback=postback, conversion=conversions[0], status="pending"
    )
    EndpointHealth.objects.bulk_create(
        EndpointHealth(host=f"down{n}.example.com:443", consecutive_failures=n + 1)
        for n in range(200)
    )

    table = Delivery._meta.db_table
    quote = connection.ops.quote_name
    special = {"id", "uid", "conversion_id", "state", "next_attempt_at", "created", "finished_at"}
    copied = [f.column for f in Delivery._meta.concrete_fields if f.column not in special]
    uid = "gen_random_uuid()" if connection.vendor == "postgresql" else "lower(hex(randomblob(16)))"
    at = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        key = Conversion._meta.pk
        cursor.execute(
            f"CREATE TABLE bench_conv (n integer primary key, id {key.db_type(connection)})"
        )
        cursor.executemany(
            "INSERT INTO bench_conv (n, id) VALUES (%s, %s)",
            [(n, key.get_db_prep_value(c.pk, connection)) for n, c in enumerate(conversions)],
        )
        # n % 100: 0-89 delivered, 90-94 failed, 95-97 retrying later, 98-99 pending and due.
        state = (
            "CASE WHEN s.n %% 100 < 90 THEN 'success' WHEN s.n %% 100 < 95 THEN 'failed' "
            "WHEN s.n %% 100 < 98 THEN 'retrying' ELSE 'pending' END"
        )
        cursor.execute(
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < %s) "
            f"INSERT INTO {quote(table)} (uid, conversion_id, state, next_attempt_at, created, "
            f"finished_at, {', '.join(quote(c) for c in copied)}) "
            f"SELECT {uid}, c.id, {state}, "
            f"CASE WHEN s.n %% 100 BETWEEN 95 AND 97 THEN %s ELSE %s END, %s, "
            f"CASE WHEN s.n %% 100 < 95 THEN %s END, {', '.join('t.' + quote(c) for c in copied)} "
            f"FROM s JOIN bench_conv c ON c.n = s.n %% {CONVERSIONS} "
            f"JOIN {quote(table)} t ON t.id = %s",
            [
                rows - 1,
                at(now + timedelta(hours=1)),
                at(now - timedelta(minutes=3)),
                at(now - timedelta(days=3)),
                at(now - timedelta(days=3)),
                template.pk,
            ],
        )
        cursor.execute("DROP TABLE bench_conv")
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")
        else:
            cursor.execute("ANALYZE")


def timed(fn, runs: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    url, drop = fresh_database()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trackdesk.settings")
    import django

    django.setup()
    try:
        run(args)
    finally:
        drop()


def run(args) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from postbacks.models import Delivery

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    seed(args.rows)
    print(f"seeded {Delivery.objects.count():,} deliveries in {time.monotonic() - started:.0f} s")

    measure(args.runs, "backlog: 5 % of the log open, 2 % due")
    # Most of the backlog delivered: what a scrape reads on a healthy day.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Delivery._meta.db_table} SET state = 'success', finished_at = %s "
            "WHERE state IN ('pending', 'retrying') AND id %% 2000 NOT IN (97, 99)",
            [connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    measure(args.runs, "healthy: 1 in 1,000 deliveries open, half of them due")


def measure(runs: int, label: str) -> None:
    from django.db import connection
    from django.utils import timezone

    from postbacks import metrics as postback_metrics
    from trackdesk import metrics

    def queries(name):
        return lambda: list(getattr(postback_metrics, name)(timezone.now()))

    results = {
        "open deliveries by state, due, oldest due": queries("_delivery_gauges"),
        "breakers (200 failing endpoints)": queries("_breaker_gauges"),
        "task queue depth": lambda: list(postback_metrics._task_queue_gauge()),
        "whole exposition": metrics.exposition,
    }
    print(f"\n{label}; backend {connection.vendor}, median / max of {runs} after a warm-up")
    for name, fn in results.items():
        r = timed(fn, runs)
        print(f"  {name:45} {r['median_ms']:>8} ms {r['max_ms']:>8} ms")
    text = metrics.exposition().decode()
    print("\n".join(line for line in text.splitlines() if line.startswith("trackdesk_deliver")))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
