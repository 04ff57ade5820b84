"""The tracking link an affiliate sends traffic to: built here and nowhere else.

The link carries the affiliate's click-id token in one of the affS fields, so the click id comes
back to them in the postback that returns that field (Affiliate.click_field).
"""

from django.conf import settings
from django.urls import reverse

from .models import DEFAULT_CLICK_FIELD

NO_TOKEN = "{your click id token}"
# The URL pattern takes numbers: stand-ins, reversed, then named, for a link not chosen yet.
_MISSING = {"offer": (999999991, "<offer id>"), "affiliate": (999999992, "<affiliate id>")}


def public_url(path: str, request=None) -> str:
    """`path` as an absolute link: on PUBLIC_BASE_URL, else on the host `request` came in on,
    else left relative. The path's query is kept as written, so a token's braces stay readable
    (request.build_absolute_uri would percent-encode them)."""
    base = (getattr(settings, "PUBLIC_BASE_URL", "") or "").strip().rstrip("/")
    if not base and request is not None:
        base = request.build_absolute_uri("/").rstrip("/")
    return f"{base}{path}"


def tracking_path(affiliate, offer, field: str | None = None, token: str | None = None) -> str:
    """Our tracking link for `affiliate` and `offer`, with `token` (default: their click-id
    token) in `field` (default: their click field). An affiliate or offer not chosen yet (None
    or unsaved) is named in the path instead: /t/<offer id>/<affiliate id>/."""
    field = field or getattr(affiliate, "click_field", DEFAULT_CLICK_FIELD)
    token = token or getattr(affiliate, "click_id_token", "") or NO_TOKEN
    ids = {"offer": getattr(offer, "pk", None), "affiliate": getattr(affiliate, "pk", None)}
    path = reverse(
        "track-click",
        args=[ids[name] or _MISSING[name][0] for name in ("offer", "affiliate")],
    )
    for name, (stand_in, label) in _MISSING.items():
        if not ids[name]:
            path = path.replace(str(stand_in), label)
    return f"{path}?{field}={token}"


def tracking_url(
    affiliate, offer, request=None, field: str | None = None, token: str | None = None
) -> str:
    """The tracking link ready to copy: absolute, see public_url."""
    return public_url(tracking_path(affiliate, offer, field, token), request)
