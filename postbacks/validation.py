"""Validation of a postback's configuration, shared by the admin form, the API and the assistant.

`validate_postback_config` checks a plain dict of settings and raises one ValidationError with
a message per problem, keyed by field.
"""

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from conversions.models import Conversion, ConversionStatus
from postbacks.models import BodyFormat, Method, Scope, TrackingSettings
from postbacks.placeholders import RenderContext, lookup, valid_names
from postbacks.rendering import (
    PLACEHOLDER_RE,
    RenderError,
    find_placeholders,
    is_header_safe,
    render_json,
)
from postbacks.sample import sample_context
from postbacks.transport import netguard
from trackdesk import currencies, parsers

REVENUE_SETTING_MESSAGE = (
    "{token} needs 'Allow revenue and sale amount parameters in affiliate postbacks' turned on "
    "under Tracking settings (Admin → Affiliate postbacks → Tracking settings)."
)
STATUS_MAP_VALUE_MAX = 64
PORT_MESSAGE = "The URL's port must be a number between 1 and 65535."
MAX_HEADERS = 20
HEADER_NAME_MAX = 64
HEADER_VALUE_MAX = 1024
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
# Headers the connection, the HTTP library or we ourselves set: a postback may not override them.
HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
OURS = {"host", "content-length", "content-type", "user-agent", "x-postback-id"}
OURS_PREFIXES = ("proxy-", "webhook-", "x-postback-")


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
        "headers": _headers_errors(values.get("headers"), allow_revenue),
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
        return [PORT_MESSAGE]
    if parts.port == 0:  # urllib reads it, but no request can go to port 0
        return [PORT_MESSAGE]
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
            parsers.loads(render_json(template, ctx))
        except RenderError:
            return []  # reported by the placeholder check
        except parsers.JSONTooDeep:
            limit = parsers.MAX_JSON_DEPTH
            return [f"The body template nests deeper than {limit} levels; {limit} are allowed."]
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


def _headers_errors(headers, allow_revenue: bool) -> list[str]:
    if headers in (None, "", []):
        return []
    shape = 'Headers are a list of {"name": "X-Api-Key", "value": "..."} objects.'
    if not isinstance(headers, list) or not all(
        isinstance(h, dict)
        and set(h) == {"name", "value"}
        and all(isinstance(h[k], str) for k in h)
        for h in headers
    ):
        return [shape]
    if len(headers) > MAX_HEADERS:
        return [f"At most {MAX_HEADERS} headers; remove {len(headers) - MAX_HEADERS}."]
    errors, seen = [], set()
    for header in headers:
        name, value = header["name"], header["value"]
        errors += _header_name_errors(name, seen)
        seen.add(name.lower())
        errors += _header_value_errors(name, value, allow_revenue)
    return errors


def _header_name_errors(name: str, seen: set) -> list[str]:
    lowered = name.lower()
    if not name:
        return ["A header needs a name, e.g. X-Api-Key."]
    if len(name) > HEADER_NAME_MAX or not HEADER_NAME_RE.fullmatch(name):
        return [
            f"{name[:HEADER_NAME_MAX]!r} is not a header name: at most {HEADER_NAME_MAX} "
            "letters, digits and - (no spaces or colons), e.g. X-Api-Key."
        ]
    if lowered in HOP_BY_HOP or lowered in OURS or lowered.startswith(OURS_PREFIXES):
        return [
            f"The header {name} cannot be set on a postback: the connection or Trackdesk sets "
            "it (Host, Content-Type, Content-Length, User-Agent, X-Postback-*, webhook-*, "
            "Proxy-* and hop-by-hop headers such as Connection)."
        ]
    if lowered in seen:
        return [f"The header {name} is listed twice; keep one."]
    return []


def _header_value_errors(name: str, value: str, allow_revenue: bool) -> list[str]:
    if not value.strip():
        return [f"Enter a value for the header {name}."]
    if len(value) > HEADER_VALUE_MAX:
        return [f"The header {name}'s value is longer than {HEADER_VALUE_MAX} characters."]
    if not is_header_safe(value):
        return [
            f"The header {name}'s value may hold printable ASCII characters only (no line "
            "breaks, control or non-ASCII characters)."
        ]
    errors = _placeholder_errors(value, allow_revenue) + _stray_brace_errors(value)
    return [f"Header {name}: {message}" for message in errors]


def _short_text(value) -> bool:
    return isinstance(value, str) and len(value) <= STATUS_MAP_VALUE_MAX


def _missing_context() -> RenderContext:
    # An empty unsaved conversion without a click: every placeholder reads as missing.
    return RenderContext(conversion=Conversion(id=None), status="")
