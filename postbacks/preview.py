"""Previews of a postback's configuration: the request it would send, for the built-in sample
conversion or a real one, and the live preview's answer (the request in segments, unknown
placeholders marked, the configuration's problems). Plain functions, no views: the admin's
live preview calls them, and any other page can show the same preview with them.
"""

import re

from django.core.exceptions import ValidationError

from conversions.models import Conversion
from postbacks.models import TrackingSettings
from postbacks.placeholders import lookup
from postbacks.rendering import (
    PLACEHOLDER_RE,
    RenderedRequest,
    RenderError,
    amount_fields_used,
    build_context,
    find_placeholders,
    render_template,
)
from postbacks.sample import SAMPLE_DELIVERY_UID, sample_context
from postbacks.validation import validate_postback_config
from trackdesk import parsers
from trackdesk.currencies import format_amount

# The settings that shape the request; the live preview reports problems with these only.
PREVIEW_FIELDS = (
    "url",
    "method",
    "body_format",
    "body_template",
    "currency",
    "status_map",
    "headers",
)
RECENT_CONVERSIONS = 20
_MARKER = re.compile(r"UNKNOWNPLACEHOLDER(\d+)END")


def render_preview(
    values: dict, conversion=None, *, allow_revenue: bool | None = None
) -> RenderedRequest:
    """The request `values` would send: for `conversion` (its current status) or a sample one.

    Raises RenderError (unknown placeholder, placeholder in the host, missing exchange rate).
    """
    if allow_revenue is None:
        allow_revenue = TrackingSettings.load().allow_revenue_parameters
    if conversion is None:
        return render_template(values, sample_context(values, allow_revenue=allow_revenue))
    ctx = build_context(
        conversion,
        status=conversion.status,
        currency=values.get("currency") or "",
        status_map=values.get("status_map"),
        delivery_uid=SAMPLE_DELIVERY_UID,
        allow_revenue=allow_revenue,
        amount_fields=amount_fields_used(values, allow_revenue=allow_revenue),
    )
    return render_template(values, ctx)


def live_preview(values: dict, conversion=None, *, allow_revenue: bool | None = None) -> dict:
    """The live preview's JSON: the rendered request split into segments with unknown
    placeholders marked, plus the configuration's problems. An unknown placeholder would stop
    the renderer, so it is shown in place instead of failing the whole preview."""
    if allow_revenue is None:
        allow_revenue = TrackingSettings.load().allow_revenue_parameters
    text = f"{values.get('url', '')} {values.get('body_template', '')}"
    unknown = [name for name in find_placeholders(text) if lookup(name) is None]
    result = {
        "errors": _config_errors(values, allow_revenue),
        "unknown": ["{" + name + "}" for name in unknown],
        "error": "",
        "method": "",
        "url": [],
        "body": [],
        "headers": [],
    }
    masked = {**values}
    for field_name in ("url", "body_template"):
        masked[field_name] = _mask_unknown(values.get(field_name) or "", unknown)
    try:
        request = render_preview(masked, conversion, allow_revenue=allow_revenue)
    except RenderError as error:
        result["error"] = str(error)
        return result
    result["method"] = request.method
    result["url"] = _segments(request.url, unknown)
    result["body"] = _segments(request.body, unknown)
    result["headers"] = [[name, value] for name, value in request.headers.items()]
    return result


def parse_status_map(text: str) -> dict | str:
    """The status map as typed into a form: {} when blank, the object when it parses, else the
    text itself, so validation can explain what a status map must look like."""
    if not text.strip():
        return {}
    try:
        return parsers.loads(text)  # the nesting limit: deep JSON is a ValueError, not a crash
    except ValueError:
        return text


def recent_conversions(affiliate_id: int | None) -> list[Conversion]:
    """The affiliate's latest conversions, newest first: the ones a preview may be shown with."""
    if affiliate_id is None:
        return []
    return list(
        Conversion.objects.filter(affiliate_id=affiliate_id)
        .select_related("click", "conversion_type")
        .order_by("-created")[:RECENT_CONVERSIONS]
    )


def conversion_label(conversion: Conversion) -> str:
    payout = format_amount(conversion.payout, conversion.currency)
    return (
        f"{conversion.created:%Y-%m-%d %H:%M} · {conversion.conversion_type} · "
        f"{conversion.get_status_display()} · {conversion.transaction_id}"
        + (f" · payout {payout}" if payout else "")
    )


def _config_errors(values: dict, allow_revenue: bool) -> list[str]:
    try:
        validate_postback_config(values, allow_revenue=allow_revenue)
    except ValidationError as error:
        return [
            message
            for name, field_messages in error.message_dict.items()
            if name in PREVIEW_FIELDS
            for message in field_messages
        ]
    return []


def _mask_unknown(template: str, unknown: list[str]) -> str:
    # A marker of letters and digits survives every encoding unchanged and is turned back into
    # the highlighted placeholder afterwards.
    def replace(match):
        name = match.group(1)
        return f"UNKNOWNPLACEHOLDER{unknown.index(name)}END" if name in unknown else match[0]

    return PLACEHOLDER_RE.sub(replace, template)


def _segments(text: str, unknown: list[str]) -> list[dict]:
    parts = _MARKER.split(text)
    segments = []
    for i, part in enumerate(parts):
        if i % 2:
            segments.append({"text": "{" + unknown[int(part)] + "}", "unknown": True})
        elif part:
            segments.append({"text": part, "unknown": False})
    return segments
