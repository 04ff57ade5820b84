"""Import the ECB's euro reference rates (eurofxref.csv or eurofxref-hist.csv) as exchange rates,
from a file or an http(s) URL (conversions/tasks.py runs it daily from ECB_RATES_SOURCE)."""

import csv
import io
import zipfile
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import requests
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models.signals import post_save

from conversions.models import ExchangeRate
from trackdesk import currencies

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "eurofxref-sample.csv"
# (connect, read) seconds for a URL source, and the most bytes read from it (the full
# history zip is about 0.6 MB; its CSV about 2 MB).
URL_TIMEOUT = (5, 30)
MAX_DOWNLOAD = 20 * 1024 * 1024
MISSING_CELLS = ("", "N/A")
RATE_FIELD = ExchangeRate._meta.get_field("rate")
# English month names as the ECB writes them ("24 November 2026"), independent of the locale.
MONTHS = (
    "january february march april may june july august september october november december"
).split()


class Command(BaseCommand):
    help = (
        "Import ECB euro reference rates from a CSV (or the ECB's .zip of it): the daily "
        "eurofxref.csv or the historical eurofxref-hist.csv. Existing rates for a day are updated."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "path",
            nargs="?",
            default=str(DEFAULT_PATH),
            help="a file or an http(s) URL; default: the bundled sample file",
        )

    def handle(self, *args, path: str, **options):
        rates = import_rates(path)
        days = sorted({rate.valid_on for rate in rates})
        span = days[0].isoformat() if len(days) == 1 else f"{days[0]} to {days[-1]}"
        self.stdout.write(
            f"Imported {len(rates)} exchange rates (EUR base) for {len(days)} "
            f"day{'s' if len(days) > 1 else ''}, {span}, from {path}."
        )


def import_rates(source: str) -> list[ExchangeRate]:
    """Read, parse and save the rates of a file or URL; returns them. Raises CommandError."""
    rates = parse_ecb_csv(read_source(source))
    save_rates(rates)
    return rates


def read_source(source: str) -> list[str]:
    if source.lower().startswith(("http://", "https://")):
        return read_lines(io.BytesIO(download(source)), name=source)
    return read_lines(Path(source))


def download(url: str) -> bytes:
    """The body of a 2xx answer, at most MAX_DOWNLOAD bytes, with timeouts."""
    try:
        with requests.get(url, timeout=URL_TIMEOUT, stream=True) as response:
            response.raise_for_status()
            data = response.raw.read(MAX_DOWNLOAD + 1, decode_content=True)
    except requests.RequestException as exc:
        raise CommandError(f"Cannot download {url}: {exc}") from exc
    if len(data) > MAX_DOWNLOAD:
        raise CommandError(f"{url}: more than {MAX_DOWNLOAD} bytes; not an ECB rate file.")
    return data


def read_lines(path, *, name: str = "") -> list[str]:
    """The file's lines (a path or a binary file object); a .zip as the ECB serves it holds
    one CSV."""
    name = name or str(path)
    try:
        if zipfile.is_zipfile(path):
            if hasattr(path, "seek"):
                path.seek(0)
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
                if len(names) != 1:
                    raise CommandError(f"{name}: expected one CSV file in the archive.")
                data = archive.read(names[0])
        else:
            data = path.getvalue() if hasattr(path, "getvalue") else path.read_bytes()
        return data.decode("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise CommandError(f"Cannot read {name}: {exc}") from exc


def parse_ecb_csv(lines: list[str]) -> list[ExchangeRate]:
    """Unsaved EUR-based rates, one per currency and day; unknown codes and N/A cells skipped."""
    reader = csv.reader(lines)
    header = [cell.strip() for cell in next(reader, [])]
    if not header or header[0] != "Date":
        raise CommandError("Not an ECB reference rate file: the first row must start with 'Date'.")
    rates = {}
    try:
        for line_no, row in enumerate(reader, start=2):
            for rate in _row_rates(header[1:], [cell.strip() for cell in row], line_no):
                rates[rate.quote, rate.valid_on] = rate  # a repeated day: the last row wins
    except csv.Error as exc:
        raise CommandError(f"Not a readable CSV file: {exc}") from exc
    if not rates:
        raise CommandError("No exchange rates found in the file.")
    return list(rates.values())


def _row_rates(codes: list[str], cells: list[str], line_no: int) -> list[ExchangeRate]:
    if not any(cells):
        return []
    valid_on = _parse_date(cells[0], line_no)
    return [
        ExchangeRate(base="EUR", quote=code, rate=_parse_rate(cell, line_no), valid_on=valid_on)
        for code, cell in zip(codes, cells[1:], strict=False)
        if currencies.is_valid(code) and code != "EUR" and cell not in MISSING_CELLS
    ]


def _parse_date(cell: str, line_no: int) -> date:
    try:
        if "-" in cell:
            return date.fromisoformat(cell)
        day, month, year = cell.split()
        return date(int(year), MONTHS.index(month.lower()) + 1, int(day))
    except ValueError:
        raise CommandError(
            f"Line {line_no}: {cell!r} is not a date (expected 2026-11-24 or 24 November 2026)."
        ) from None


def _parse_rate(cell: str, line_no: int) -> Decimal:
    try:
        rate = Decimal(cell)
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or rate <= 0:
        raise CommandError(f"Line {line_no}: {cell!r} is not an exchange rate.")
    try:  # the column's digits, and no more significant ones than are stored exactly
        RATE_FIELD.run_validators(rate)
    except ValidationError as exc:
        raise CommandError(f"Line {line_no}: {cell!r}: {' '.join(exc.messages)}") from None
    return rate


def save_rates(rates: list[ExchangeRate]) -> None:
    """Insert the rates, replacing the rate of any (base, quote, day) already stored."""
    with transaction.atomic():
        ExchangeRate.objects.bulk_create(
            rates,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["base", "quote", "valid_on"],
            update_fields=["rate"],
        )
        # bulk_create sends no post_save; one per currency, its latest rate, lets receivers
        # (postbacks waiting for a rate) hear of imported rates as of saved ones.
        latest = {}
        for rate in sorted(rates, key=lambda r: r.valid_on):
            latest[rate.base, rate.quote] = rate
        for rate in latest.values():
            post_save.send(
                ExchangeRate,
                instance=rate,
                created=False,
                raw=False,
                using=rate._state.db or "default",
            )
