"""Admin: the postback log (list, searches, CSV export) and the delivery dashboard with
1,000,000 delivery rows.

    .venv/bin/python bench/admin.py [--rows 1000000] [--runs 5]

Seeds the bench database once (50 postbacks over 10 affiliates; conversions BENCH-1, BENCH-2, ...
each with a click (affS1 sub-1, sub-2, ...) and 35 deliveries spread over the last 10 days: 90 %
delivered, 5 % failed, 3 % retrying, 2 % pending; later runs reuse the rows), then times each
page through Django's test client as a logged-in superuser (min, median and max of --runs). The
baseline is the affiliate change list (10 rows) in the same run: the floor of any admin page.
The dashboard is timed after the roll-up has run (what the schedule keeps up to date) and once
with the roll-up reset (everything counted live: the page's first minutes after installing).
The CSV export is read to the end once, filtered and whole, with the process's memory growth."""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common  # noqa: E402

POSTBACKS = 50
STATUSES = ["pending", "approved", "on_hold", "rejected", "refunded", "fraud", "not_allowed"]


def seed(rows: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from affiliates.models import Affiliate, Offer
    from conversions.models import Click, Conversion, ConversionType
    from postbacks.models import Delivery, Postback

    have = Delivery.objects.filter(is_test=False).count()
    if have >= rows:
        print(f"reusing {have:,} delivery rows")
        return
    print(f"seeding {rows:,} delivery rows (once) ...", flush=True)
    started = time.monotonic()
    rng = random.Random(7)
    sale = ConversionType.objects.get(code="sale")
    affiliates = [
        Affiliate.objects.create(name=f"Bench affiliate {i}", email=f"a{i}@example.com")
        for i in range(10)
    ]
    offer = Offer.objects.create(
        name="Bench offer", landing_page_url="https://shop.example.com/", default_currency="USD"
    )
    postbacks = [
        Postback.objects.create(
            name=f"Bench postback {i}",
            affiliate=affiliates[i % 10],
            url=f"https://tracker{i}.example.com/pb?c={{affS1}}&p={{payout}}",
        )
        for i in range(POSTBACKS)
    ]
    now = timezone.now()
    made = 0
    conversion_no = 0
    while made < rows:
        batch = []
        with transaction.atomic():
            for affiliate in affiliates:
                conversion_no += 1
                click = Click.objects.create(
                    affiliate=affiliate, offer=offer, aff_s1=f"sub-{conversion_no}"
                )
                conversion = Conversion.objects.create(
                    affiliate=affiliate,
                    offer=offer,
                    click=click,
                    conversion_type=sale,
                    transaction_id=f"BENCH-{conversion_no}",
                )
                mine = [p for p in postbacks if p.affiliate_id == affiliate.pk]
                for postback in mine:
                    for status in STATUSES:
                        created = now - timedelta(seconds=rng.uniform(0, 10 * 86400))
                        roll = rng.random()
                        state = (
                            "success"
                            if roll < 0.90
                            else "failed"
                            if roll < 0.95
                            else "retrying"
                            if roll < 0.98
                            else "pending"
                        )
                        finished = state in ("success", "failed")
                        batch.append(
                            Delivery(
                                postback=postback,
                                conversion=conversion,
                                status=status,
                                state=state,
                                attempts=0 if state == "pending" else 1,
                                created=created,
                                finished_at=created + timedelta(seconds=1) if finished else None,
                                last_status_code=200 if state == "success" else 503,
                                last_duration_ms=int(rng.lognormvariate(4.5, 0.8)),
                            )
                        )
            Delivery.objects.bulk_create(batch, batch_size=5000)
        made += len(batch)
        if conversion_no % 500 == 0:
            print(f"  {made:,} rows", flush=True)
    print(f"seeded in {time.monotonic() - started:.0f} s")


def timed(client, url: str, runs: int) -> dict:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, secure=True)  # DEBUG off: the deploy settings want https
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return {
        "url": url,
        "min_ms": round(min(times), 1),
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
    }


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def streamed(client, url: str) -> dict:
    """One CSV export read to the end: rows, seconds, and how far the process's memory grew
    (sampled at each piece of the stream) above what it used before."""
    before = rss_mb()
    peak = before
    rows = -1  # the header
    started = time.perf_counter()
    response = client.get(url, secure=True)
    assert response.status_code == 200, (url, response.status_code)
    for piece in response.streaming_content:
        rows += piece.count(b"\n")
        peak = max(peak, rss_mb())
    return {
        "url": url,
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_before_mb": round(before),
        "rss_growth_mb": round(peak - before, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1")
    common.configure("admin")
    load = os.getloadavg()
    seed(args.rows)
    from django.db import connection

    if connection.vendor == "postgresql":  # what autovacuum does on its own after a bulk load
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from postbacks import stats
    from postbacks.models import Delivery, StatsProgress

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)

    StatsProgress.objects.update(rolled_until=None)
    started = time.monotonic()
    hours = stats.roll_up()
    roll_up_s = round(time.monotonic() - started, 2)
    print(f"roll-up of {hours} hours (the first run; then one hour at a time): {roll_up_s} s")

    week = timezone.now() - timedelta(days=7)
    failed_txn = Delivery.objects.filter(state="failed").values_list(
        "conversion__transaction_id", flat=True
    )[0]
    number = failed_txn.split("-")[1]
    pages = {
        "floor: affiliate change list": "/admin/affiliates/affiliate/",
        "log: change list": "/admin/postbacks/delivery/",
        "log: state=failed": "/admin/postbacks/delivery/?state__exact=failed",
        "log: search a transaction id": f"/admin/postbacks/delivery/?q={failed_txn}",
        # bench-1234 matches BENCH-1234 and BENCH-12340..12349: 11 conversions, 385 rows.
        "log: search a lower-case transaction id prefix": (
            f"/admin/postbacks/delivery/?q={failed_txn.lower()[:-1]}"
        ),
        "log: search an affiliate click id prefix": (
            f"/admin/postbacks/delivery/?q=SUB-{number[:-1]}"
        ),
        # Matches every conversion: the search stops at 1,000 of them and says so.
        "log: search a one-letter prefix": "/admin/postbacks/delivery/?q=b",
        "log: triggered in the past 7 days": (
            f"/admin/postbacks/delivery/?created__gte={week:%Y-%m-%d}"
        ),
        "dashboard (roll-up up to date)": "/admin/postbacks/delivery/dashboard/",
    }
    results = {name: timed(client, url, args.runs) for name, url in pages.items()}
    exports = {
        "export CSV: state=failed": "/admin/postbacks/delivery/export/?state__exact=failed",
        "export CSV: the whole log": "/admin/postbacks/delivery/export/",
    }
    export_results = {name: streamed(client, url) for name, url in exports.items()}
    StatsProgress.objects.update(rolled_until=None)
    results["dashboard (roll-up not run yet: all live)"] = timed(
        client, "/admin/postbacks/delivery/dashboard/", 1
    )
    stats.roll_up()

    for name, r in export_results.items():
        print(
            f"{name}: {r['rows']:,} rows in {r['seconds']} s, "
            f"memory +{r['rss_growth_mb']} MB (RSS {r['rss_before_mb']} MB before)"
        )
    floor = results["floor: affiliate change list"]["median_ms"]
    print(f"\n{Delivery.objects.count():,} delivery rows, backend {common.backend()}")
    print(f"{'page':48} {'min ms':>8} {'median ms':>10} {'max ms':>8} {'× floor':>8}")
    for name, r in results.items():
        print(
            f"{name:48} {r['min_ms']:>8} {r['median_ms']:>10} {r['max_ms']:>8} "
            f"{r['median_ms'] / floor:>8.1f}"
        )
    common.write_results(
        "admin",
        {
            "delivery_rows": Delivery.objects.count(),
            "target": "log list (with searches) and dashboard <= 300 ms with 1,000,000 rows",
            "first_roll_up_seconds": roll_up_s,
            "pages": results,
            "csv_export": export_results,
            "ratio_to_floor": {n: round(r["median_ms"] / floor, 1) for n, r in results.items()},
        },
        load,
    )


if __name__ == "__main__":
    main()
