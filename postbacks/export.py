"""The postback log as CSV, streamed: the admin's Export CSV button and the API's
?format=csv send any filtered list of deliveries through here. Rows are read in chunks and
written as they come, so memory stays flat however many rows there are; secrets in error
texts are masked as on the page. The derived columns (affiliate click id, endpoint, waiting)
are defined here once for the CSV and the admin's list."""

import csv
import io
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

from django.http import StreamingHttpResponse
from django.utils import timezone

from affiliates.models import DEFAULT_CLICK_FIELD, Affiliate
from postbacks import conf
from postbacks.models import Delivery
from trackdesk.masking import mask

CHUNK = 2000
HEADER = [
    "delivery_id",
    "id",
    "triggered",
    "state",
    "waiting_for",
    "conversion_id",
    "transaction_id",
    "conversion_status",
    "click_id",
    "affiliate_click_id",
    "affiliate",
    "postback_id",
    "postback",
    "endpoint_host",
    "method",
    "last_http_status",
    "attempts",
    "next_try",
    "last_error",
    "finished",
    "is_test",
]


# --- How a log row reads: the admin's list (admin/log_list.py) shows the same. ---------------


def click_model_field(click_field: str) -> str:
    """affS3 -> aff_s3, the Click field holding it."""
    return f"aff_s{click_field[-1]}"


def other_click_fields() -> list[str]:
    """The affS fields other than affS1 that some affiliate's links carry its click ID in."""
    others = Affiliate.objects.exclude(click_field=DEFAULT_CLICK_FIELD).order_by()
    return list(others.values_list("click_field", flat=True).distinct())


def affiliate_click_id(delivery) -> str:
    """The affiliate's own click id for the delivery's conversion: the click's affS field
    their tracking links carry it in (Affiliate.click_field, affS1 unless set otherwise)."""
    conversion = delivery.conversion
    if conversion is None or conversion.click is None:
        return ""
    field = click_model_field(delivery.postback.affiliate.click_field)
    return getattr(conversion.click, field)


def endpoint_host(delivery) -> str:
    return urlsplit(delivery.postback.url).hostname or ""


def max_attempts() -> int:
    """The first attempt and one per retry in the schedule."""
    return len(conf.retry_schedule()) + 1


def waiting_note(delivery) -> str:
    """Why an open delivery is not sent yet, if it waits for something but its time."""
    if delivery.is_finished:
        return ""
    if getattr(delivery, "waiting_for_id", None):
        return "waiting for an earlier status"
    if delivery.waiting_for_rate:
        return f"waiting for a rate ({delivery.waiting_for_rate})"
    return ""


# --- The CSV ---------------------------------------------------------------------------------


def export_queryset(queryset):
    """What each row reads, in one query per chunk (no attempts, no per-row queries)."""
    queryset = queryset.prefetch_related(None).select_related(
        "postback__affiliate", "conversion__click"
    )
    if "waiting_for_id" not in queryset.query.annotations:
        queryset = queryset.with_waiting_for()
    return queryset


def row(delivery: Delivery) -> list:
    conversion = delivery.conversion
    return [
        delivery.uid,
        delivery.pk,
        _when(delivery.created),
        delivery.state,
        waiting_note(delivery),
        conversion.pk if conversion else "",
        conversion.transaction_id if conversion else "",
        delivery.status,
        conversion.click.cid if conversion and conversion.click else "",
        affiliate_click_id(delivery),
        delivery.postback.affiliate.name,
        delivery.postback_id,
        delivery.postback.name,
        endpoint_host(delivery),
        delivery.postback.method,
        delivery.last_status_code or "",
        delivery.attempts,
        "" if delivery.is_finished else _when(delivery.next_attempt_at),
        mask(delivery.last_error),
        _when(delivery.finished_at),
        "yes" if delivery.is_test else "",
    ]


# A cell a spreadsheet would run as a formula (=, +, -, @, or a tab/CR that hides one) gets a
# leading apostrophe: transaction and click ids come from outside and may be crafted (OWASP
# "CSV injection"). Numbers stay numbers: only text cells are guarded.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _when(value) -> str:
    return timezone.localtime(value).isoformat(timespec="seconds") if value else ""


def lines(deliveries: Iterable[Delivery]) -> Iterator[str]:
    """The CSV text, a header and then one piece per CHUNK rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for n, delivery in enumerate(deliveries, 1):
        writer.writerow([cell(value) for value in row(delivery)])
        if n % CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def csv_response(queryset) -> StreamingHttpResponse:
    """The deliveries of `queryset`, in its order, as a CSV download."""
    deliveries = export_queryset(queryset).iterator(chunk_size=CHUNK)
    response = StreamingHttpResponse(lines(deliveries), content_type="text/csv; charset=utf-8")
    name = f"postback-log-{timezone.localtime():%Y%m%d-%H%M%S}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
