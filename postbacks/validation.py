"""Validation of a postback's configuration, shared by the admin form and the API, and previews.

`validate_postback_config` checks a plain dict of settings; `render_preview` renders one with a
built-in sample conversion (unsaved objects: nothing is written) for the admin and the assistant.
"""

import json
import re
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from affiliates.models import Affiliate, Offer
from conversions.models import Click, Conversion, ConversionStatus, ConversionType
from postbacks.models import BodyFormat, Method, Scope, TrackingSettings
from postbacks.placeholders import RenderContext, lookup, valid_names
from postbacks.rendering import (
    PLACEHOLDER_RE,
    RenderedRequest,
    RenderError,
    amount_fields_used,
    build_context,
    find_placeholders,
    postback_values,
    render_json,
    render_template,
)
from postbacks.transport import netguard
from trackdesk import currencies

REVENUE_SETTING_MESSAGE = (
    "{token} needs 'Allow revenue and sale amount parameters in affiliate postbacks' turned on "
    "under Tracking settings (Admin → Affiliate postbacks → Tracking settings)."
)
STATUS_MAP_VALUE_MAX = 64
SAMPLE_CURRENCY = "USD"
SAMPLE_DELIVERY_UID = "5f0c3b0e-8d1a-4c4e-9a57-2b6f1d7e9c31"


def validate_postback_fields(postback) -> None:
    """Postback.clean: validate the instance's own fields (the form checks its M2M choices)."""
    validate_postback_config(postback_values(postback))


def validate_postback_config(values: dict, *, allow_revenue: bool | None = None) -> None:
    """Raise ValidationError({field: [messages]}) for every problem in a postback's settings.

    `values` holds url, method, body_format, body_template, statuses, scope, currency and
    status_map; offers and conversion_types are checked only when present.
    """
    if allow_revenue is None:
        allow_revenue = TrackingSettings.load().allow_revenue_parameters
    errors = {
        "url": _url_errors(values.get("url"), allow_revenue),
        "method": _method_errors(values.get("method")),
        "body_format": _body_format_errors(values),
        "body_template": _body_template_errors(values, allow_revenue),
        "statuses": _statuses_errors(values.get("statuses")),
        "scope": _choice_errors(values.get("scope"), Scope, "scope"),
        "offers": _offers_errors(values),
        "conversion_types": _conversion_types_errors(values),
        "currency": _currency_errors(values.get("currency")),
        "status_map": _status_map_errors(values.get("status_map")),
    }
    errors = {name: messages for name, messages in errors.items() if messages}
    if errors:
        raise ValidationError(errors)


def _url_errors(url, allow_revenue: bool) -> list[str]:
    if not isinstance(url, str) or not url.strip():
        return ["Enter the postback URL."]
    if any(char.isspace() for char in url):
        return ["The URL may not contain spaces or line breaks; values are encoded when sent."]
    errors = _url_shape_errors(url)
    return errors + _placeholder_errors(url, allow_revenue) + _stray_brace_errors(url)


def _url_shape_errors(url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return ["The URL must start with http:// or https://."]
    in_host = find_placeholders(parts.netloc)
    if in_host:
        tokens = ", ".join("{" + name + "}" for name in in_host)
        return [
            f"{tokens}: placeholders may not appear in the host (nor the port or user info); "
            "put them in the path or the query."
        ]
    try:
        _ = parts.port  # urllib parses the port lazily and raises on a bad one
    except ValueError:
        return ["The URL's port must be a number between 0 and 65535."]
    if not parts.hostname:
        return ["The URL must name a host, e.g. https://tracker.example.com/postback."]
    refusal = netguard.refusal_for_url(url) or netguard.port_refusal_for_url(url)
    return [refusal] if refusal else []


def _placeholder_errors(text: str, allow_revenue: bool) -> list[str]:
    names = find_placeholders(text)
    errors = []
    unknown = ["{" + name + "}" for name in names if lookup(name) is None]
    if unknown:
        label = "Unknown placeholder" if len(unknown) == 1 else "Unknown placeholders"
        errors.append(f"{label} {', '.join(unknown)}. Valid placeholders: {valid_names()}.")
    if not allow_revenue:
        gated = dict.fromkeys(p for p in map(lookup, names) if p is not None and p.gated)
        errors += [REVENUE_SETTING_MESSAGE.format(token=p.token) for p in gated]
    return errors


def _stray_brace_errors(text: str) -> list[str]:
    """Braces that are not part of a {name} placeholder (`{click-id}`, `{affS1`, `{{affS1}}`):
    they would be sent as they are, so the affiliate would get a literal brace, not a value."""
    stray = [m for m in _BRACED.findall(text) if not PLACEHOLDER_RE.fullmatch(m)]
    if not stray:
        return []
    shown = ", ".join(list(dict.fromkeys(stray))[:3])
    return [
        f"Not a placeholder: {shown}. Placeholders are one name in single braces, made of "
        f"letters, digits and _ (for a literal brace write %7B or %7D). Valid placeholders: "
        f"{valid_names()}."
    ]


_BRACED = re.compile(r"\{+[^{}]{0,40}\}*|\}+")


def _method_errors(method) -> list[str]:
    return [] if method in Method.values else ["Choose GET or POST."]


def _choice_errors(value, choices, label: str) -> list[str]:
    if value in choices.values:
        return []
    valid = ", ".join(choices.values)
    if not value:
        return [f"Choose a {label}: {valid}."]
    return [f"Unknown {label} {value!r}; choose one of: {valid}."]


def _body_format_errors(values: dict) -> list[str]:
    if values.get("method") != Method.POST or not values.get("body_format"):
        return []
    return _choice_errors(values.get("body_format"), BodyFormat, "body format")


def _body_template_errors(values: dict, allow_revenue: bool) -> list[str]:
    template = values.get("body_template") or ""
    if not isinstance(template, str):
        return ["The body template must be text."]
    if values.get("method") != Method.POST:
        if template.strip():
            return [
                "A body template is only sent with POST; clear it or switch the method to POST."
            ]
        return []
    if values.get("body_format") != BodyFormat.JSON:
        return _placeholder_errors(template, allow_revenue) + _stray_brace_errors(template)
    if not template.strip():
        return [
            'A JSON body needs a body template, e.g. {"click_id": "{affS1}", "payout": {payout}}.'
        ]
    return _placeholder_errors(template, allow_revenue) or _json_errors(template, values)


def _json_errors(template: str, values: dict) -> list[str]:
    """The body must be JSON both with sample values and with every value missing."""
    trials = (
        ("with sample values", sample_context(values, allow_revenue=True)),
        ('with every value missing (null, or "" inside quotes)', _missing_context()),
    )
    for when, ctx in trials:
        try:
            json.loads(render_json(template, ctx))
        except RenderError:
            return []  # reported by the placeholder check
        except ValueError as exc:
            return [f"The body template is not valid JSON once rendered {when}: {exc}."]
    return []


def _statuses_errors(statuses) -> list[str]:
    if not isinstance(statuses, list | tuple) or not statuses:
        return ["Pick at least one conversion status."]
    unknown = [repr(status) for status in statuses if status not in ConversionStatus.values]
    if unknown:
        valid = ", ".join(ConversionStatus.values)
        return [f"Unknown conversion status {', '.join(unknown)}; valid statuses: {valid}."]
    return []


def _offers_errors(values: dict) -> list[str]:
    if values.get("scope") == Scope.OFFERS and "offers" in values and not values["offers"]:
        return ["Offer scope needs at least one offer."]
    return []


def _conversion_types_errors(values: dict) -> list[str]:
    if "conversion_types" in values and not values["conversion_types"]:
        return ["Pick at least one conversion type."]
    return []


def _currency_errors(currency) -> list[str]:
    if not currency or currencies.is_valid(currency):
        return []
    return [f"'{currency}' is not an ISO 4217 currency code (for example USD, EUR)."]


def _status_map_errors(status_map) -> list[str]:
    if status_map in (None, ""):
        return []
    if not isinstance(status_map, dict):
        return ['The status map must be a JSON object, e.g. {"approved": "1", "rejected": "2"}.']
    errors = [
        f"Unknown status {key!r} in the status map; valid statuses: "
        f"{', '.join(ConversionStatus.values)}."
        for key in status_map
        if key not in ConversionStatus.values
    ]
    if any(not _short_text(value) for value in status_map.values()):
        errors.append(
            f"Status map values must be text of at most {STATUS_MAP_VALUE_MAX} characters, "
            'e.g. {"approved": "1"}.'
        )
    return errors


def _short_text(value) -> bool:
    return isinstance(value, str) and len(value) <= STATUS_MAP_VALUE_MAX


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


def sample_context(values: dict, *, allow_revenue: bool) -> RenderContext:
    """The sample conversion's event, in the configured currency (no conversion, no queries)."""
    currency = values.get("currency") or SAMPLE_CURRENCY
    statuses = values.get("statuses")
    status = statuses[0] if isinstance(statuses, list | tuple) and statuses else "approved"
    return build_context(
        sample_conversion(currency),
        status=str(status),
        currency=currency,
        status_map=values.get("status_map"),
        delivery_uid=SAMPLE_DELIVERY_UID,
        allow_revenue=allow_revenue,
    )


def sample_conversion(currency: str = SAMPLE_CURRENCY) -> Conversion:
    """A fully filled conversion with its click, built from unsaved objects."""
    affiliate = Affiliate(id=7, name="Sample affiliate")
    offer = Offer(id=42, name="Sample offer", default_currency=currency)
    click = Click(
        cid="q8Z1sAmPlEcLiCkId0w2Xg",
        affiliate=affiliate,
        offer=offer,
        **{f"aff_s{n}": value for n, value in enumerate(_SAMPLE_AFF_S, 1)},
    )
    return Conversion(
        id=uuid.UUID("0b9d6a52-3f7e-4c1a-8e25-6d4b1f0a9c73"),
        affiliate=affiliate,
        offer=offer,
        click=click,
        conversion_type=ConversionType(code="sale", name="Sale"),
        status=ConversionStatus.APPROVED,
        transaction_id="ORDER-10042",
        payout=_sample_amount("12.50", currency),
        revenue=_sample_amount("40.00", currency),
        sale_amount=_sample_amount("99.90", currency),
        currency=currency,
        external_cid="ext-5501",
        adv_s1="spring-campaign",
        adv_s2="banner-a",
        customer_id="CUST-77",
        created=datetime(2026, 11, 25, 14, 3, 9, tzinfo=UTC),
    )


_SAMPLE_AFF_S = ("AFF-CLICK-123", "sub2", "sub3", "", "")


def _sample_amount(amount: str, currency: str) -> Decimal:
    return Decimal(amount).quantize(currencies.quantum(currency), rounding=ROUND_HALF_UP)


def _missing_context() -> RenderContext:
    # An empty unsaved conversion without a click: every placeholder reads as missing.
    return RenderContext(conversion=Conversion(id=None), status="")
