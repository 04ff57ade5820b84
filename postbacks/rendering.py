"""Template → request: a postback's URL and body with every {placeholder} replaced by its value.

How values are written, wherever a placeholder stands:

- **URL** (path, query or fragment): percent-encoded with nothing left safe (a space is `%20`,
  `&` is `%26`, `/` is `%2F`, `#` is `%23`), so a value can never add a parameter or change the
  path, host or fragment. Placeholders in the scheme, host, port or user info are refused.
- **POST, form body**: form-encoded (a space is `+`, `&` is `%26`). With no body template, the
  URL's query parameters become the body and the URL is sent without them.
- **POST, JSON body**: inside a JSON string, JSON-escaped; where a JSON value goes, a JSON literal:
  amounts as numbers, text as a string, missing values as `null`.
- **Missing values** (no click, a blank field, or `{revenue}`/`{saleAmount}` while the tracking
  setting is off) render as an empty string (`null` as a JSON literal).
- **Amounts** (`{payout}`, `{revenue}`, `{saleAmount}`) are plain decimals in the postback's
  currency (its custom currency, else the conversion's), never an exponent: at least the
  currency's minor-unit decimals, more only when the value has more non-zero digits
  (12.5 USD → `12.50`, 0.125 USD → `0.125`, 1500 JPY → `1500`, 12.500000 USD → `12.50`).
  Converted amounts use the latest stored rate on or before the conversion's date and are
  rounded half up to the currency's minor unit; with no rate the postback is not sent (a
  `WaitingForRate`: the delivery waits for the rate, see postbacks/delivery/single.py), nor
  with an amount too large to convert or one its field refuses (stored before the digit limits).
- **`{timestamp}`**: the conversion's creation time in UTC, ISO 8601 to the second
  (`2026-11-25T14:03:09Z`).
- **Custom headers**: values are written as they are (not URL-encoded), with spaces and tabs at
  either end removed; a value that holds a line break, another control character or a non-ASCII
  character once its placeholders are filled in is not sent (it could split the header, and
  receivers read such bytes differently).
"""

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC
from decimal import Decimal, InvalidOperation, localcontext
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from django.core.exceptions import ValidationError
from django.utils import timezone

from conversions.exchange import ConversionError, MissingRate, convert_rounded
from postbacks.models import TrackingSettings
from postbacks.placeholders import AMOUNT_FIELDS, Placeholder, RenderContext, lookup, valid_names
from trackdesk.currencies import minor_units

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z0-9_]+)\}")
# A JSON body is read token by token: escapes first, so \" never opens or closes a string.
_JSON_TOKENS = re.compile(r'\\.|"|' + PLACEHOLDER_RE.pattern, re.DOTALL)

ALL_AMOUNT_FIELDS = tuple(AMOUNT_FIELDS.values())
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"


class RenderError(ValueError):
    """A postback cannot be rendered; the message says what to fix."""


class WaitingForRate(RenderError):
    """No stored rate converts the conversion's currency into the postback's yet: not the
    configuration's fault, and fixed by adding the rate, so the delivery waits for it."""

    def __init__(self, from_code: str, to_code: str, message: str):
        super().__init__(message)
        self.from_code, self.to_code = from_code, to_code

    @property
    def pair(self) -> str:
        return f"{self.from_code}→{self.to_code}"


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    headers: dict = field(default_factory=dict)
    body: str = ""
    content_type: str = ""


def find_placeholders(text: str) -> list[str]:
    """Placeholder names as written in `text`, each once, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER_RE.findall(text or "")))


def render_request(
    postback, conversion, *, status: str, delivery_uid="", allow_revenue: bool | None = None
) -> RenderedRequest:
    """The request a postback sends for one event of `conversion` (entering `status`)."""
    if allow_revenue is None:
        allow_revenue = TrackingSettings.load().allow_revenue_parameters
    values = postback_values(postback)
    ctx = build_context(
        conversion,
        status=status,
        currency=postback.currency,
        status_map=postback.status_map,
        delivery_uid=delivery_uid,
        allow_revenue=allow_revenue,
        amount_fields=amount_fields_used(values, allow_revenue=allow_revenue),
    )
    return render_template(values, ctx)


CONFIG_FIELDS = (
    "url",
    "method",
    "body_format",
    "body_template",
    "statuses",
    "scope",
    "currency",
    "status_map",
    "headers",
)


def postback_values(postback) -> dict:
    """A postback's configuration as the plain dict validation and rendering take."""
    return {name: getattr(postback, name) for name in CONFIG_FIELDS}


def amount_fields_used(values: dict, *, allow_revenue: bool) -> tuple[str, ...]:
    """Conversion amount fields the templates send: only these need an exchange rate."""
    text = f"{values.get('url')} {values.get('body_template')} {header_text(values)}"
    used = filter(None, map(lookup, find_placeholders(text)))
    return tuple(
        AMOUNT_FIELDS[p.name] for p in used if p.kind == "amount" and (allow_revenue or not p.gated)
    )


def build_context(
    conversion,
    *,
    status: str,
    currency: str = "",
    status_map: dict | None = None,
    delivery_uid="",
    allow_revenue: bool = False,
    amount_fields=ALL_AMOUNT_FIELDS,
) -> RenderContext:
    """The values of one event, amounts converted into `currency` (blank: the conversion's)."""
    target = currency or conversion.currency
    return RenderContext(
        conversion=conversion,
        status=status,
        delivery_uid=str(delivery_uid or ""),
        allow_revenue=allow_revenue,
        currency=target,
        amounts={name: _amount_in(conversion, name, target) for name in amount_fields},
        status_map=status_map if isinstance(status_map, dict) else {},
    )


def _amount_in(conversion, field_name: str, target: str) -> Decimal | None:
    amount = getattr(conversion, field_name)
    if amount is None:
        return None
    _check_stored_amount(conversion, field_name, amount)
    if conversion.currency == target:
        return amount
    try:
        return convert_rounded(amount, conversion.currency, target, _rate_date(conversion))
    except MissingRate as exc:
        raise WaitingForRate(conversion.currency, target, str(exc)) from exc
    except ConversionError as exc:
        raise RenderError(str(exc)) from exc


def _check_stored_amount(conversion, field_name: str, amount: Decimal) -> None:
    """An amount its field would refuse (one stored before the digit limits) is never sent."""
    field = conversion._meta.get_field(field_name)
    try:
        field.run_validators(amount)
    except ValidationError as exc:
        raise RenderError(
            f"The conversion's {field.verbose_name} {amount} is not a valid amount: "
            f"{' '.join(exc.messages)} Correct it on the conversion's admin page."
        ) from None


def _rate_date(conversion):
    created = conversion.created or timezone.now()
    return created.astimezone(UTC).date()


def render_template(values: dict, ctx: RenderContext) -> RenderedRequest:
    """Render a configuration (the keys of `postback_values`) for the event in `ctx`."""
    request = _render_url_and_body(values, ctx)
    return replace(request, headers=render_headers(values.get("headers"), ctx))


def _render_url_and_body(values: dict, ctx: RenderContext) -> RenderedRequest:
    url = values.get("url") or ""
    _check_url(url)
    method = (values.get("method") or "GET").upper()
    if method == "GET":
        return RenderedRequest("GET", render_url(url, ctx))
    if method != "POST":
        raise RenderError(f"Unsupported HTTP method {method!r}; use GET or POST.")
    body_template = values.get("body_template") or ""
    if values.get("body_format") == "json":
        body = render_json(body_template, ctx)
        return RenderedRequest(
            "POST", render_url(url, ctx), body=body, content_type=JSON_CONTENT_TYPE
        )
    if not body_template.strip():
        # Trackdesk's POST sends the URL's parameters in the body.
        parts = urlsplit(url)
        url, body_template = urlunsplit(parts._replace(query="")), parts.query
    body = render_form(body_template, ctx)
    return RenderedRequest("POST", render_url(url, ctx), body=body, content_type=FORM_CONTENT_TYPE)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise RenderError("The postback URL must start with http:// or https:// and name a host.")
    if PLACEHOLDER_RE.search(parts.netloc):
        raise RenderError("Placeholders may not appear in the host, port or user info of the URL.")


def header_pairs(headers) -> list[tuple[str, str]]:
    """(name, value) pairs of a postback's `headers` ([{"name": ..., "value": ...}, ...])."""
    if not isinstance(headers, list):
        return []
    return [
        (h.get("name"), h.get("value"))
        for h in headers
        if isinstance(h, dict) and all(isinstance(h.get(key), str) for key in ("name", "value"))
    ]


def header_text(values: dict) -> str:
    """Every header value of a configuration, for the placeholder checks."""
    return " ".join(value for _, value in header_pairs(values.get("headers")))


def render_headers(headers, ctx: RenderContext) -> dict:
    """The custom headers with their placeholders filled in, values as they are (no encoding)."""
    rendered = {}
    for name, template in header_pairs(headers):
        value = PLACEHOLDER_RE.sub(lambda m: _text(m.group(1), ctx), template).strip(" \t")
        if not is_header_safe(value):
            raise RenderError(
                f"The header {name} would hold a line break, a control character or a "
                "non-ASCII character once its placeholders are filled in; not sent. Use a "
                "placeholder whose values are plain text, or move it into the URL."
            )
        rendered[name] = value
    return rendered


def is_header_safe(value: str) -> bool:
    """Printable ASCII, spaces and tabs only: nothing that could end or split a header."""
    return all(char == "\t" or " " <= char <= "~" for char in value)


def render_url(template: str, ctx: RenderContext) -> str:
    return PLACEHOLDER_RE.sub(lambda m: quote(_text(m.group(1), ctx), safe=""), template)


def render_form(template: str, ctx: RenderContext) -> str:
    return PLACEHOLDER_RE.sub(lambda m: quote_plus(_text(m.group(1), ctx), safe=""), template)


def render_json(template: str, ctx: RenderContext) -> str:
    """A JSON body template rendered; a placeholder's form depends on where it stands."""
    in_string = False

    def replace(match: re.Match) -> str:
        nonlocal in_string
        token, name = match.group(0), match.group(1)
        if token == '"':
            in_string = not in_string
        if name is None:
            return token
        if in_string:
            return json.dumps(_text(name, ctx), ensure_ascii=False)[1:-1]
        return _json_literal(name, ctx)

    return _JSON_TOKENS.sub(replace, template)


def _json_literal(name: str, ctx: RenderContext) -> str:
    placeholder = _placeholder(name)
    value = placeholder.value(ctx)
    if value is None:
        return "null"
    if placeholder.kind == "amount":
        return format_amount(value, ctx.currency)
    return json.dumps(value, ensure_ascii=False)


def _text(name: str, ctx: RenderContext) -> str:
    placeholder = _placeholder(name)
    value = placeholder.value(ctx)
    if value is None:
        return ""
    return format_amount(value, ctx.currency) if placeholder.kind == "amount" else value


def _placeholder(name: str) -> Placeholder:
    placeholder = lookup(name)
    if placeholder is None:
        raise RenderError(f"Unknown placeholder {{{name}}}. Valid placeholders: {valid_names()}.")
    return placeholder


def format_amount(value: Decimal, currency: str) -> str:
    """A plain decimal with at least the currency's minor-unit places (see module docstring)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise RenderError(f"Amount {value!r} is not a finite decimal.")
    with localcontext() as ctx:
        ctx.prec = 60  # quantize must never run out of digits for an 18-digit amount
        exponent = value.normalize().as_tuple().exponent
        places = max(minor_units(currency), -exponent)
        try:
            return format(value.quantize(Decimal(1).scaleb(-places)), "f")
        except InvalidOperation:
            raise RenderError(f"Amount {value} is too large to send.") from None
