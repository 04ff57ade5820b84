"""The click field: which affS field a postback URL returns as the click id, and storing it on
the affiliate (Affiliate.click_field) so their tracking links carry the token in that field."""

import functools
from urllib.parse import urlsplit

from affiliates.models import CLICK_FIELDS, DEFAULT_CLICK_FIELD, Affiliate
from postbacks.assistant.catalog import platforms
from postbacks.assistant.lexer import decode, norm, token_name
from postbacks.assistant.names import CLICK_ID_NAMES, is_numbered_sub
from postbacks.placeholders import lookup

# The affiliate's postbacks read for their click field, most telling first.
POSTBACKS_READ = 20


def click_field_of(template: str) -> str | None:
    """The affS field a postback URL template sends back as the click id, or None if unclear.

    Only a parameter named like a click id (clickid, subid, cid ... or a catalog platform's
    click-id parameter such as CAKE's r) carrying {affSn} counts; numbered subs such as sub2 or
    s3 do not, since affS2..affS5 are usually the affiliate's own sub ids there.
    """
    try:
        query = urlsplit(template).query if isinstance(template, str) else ""
    except ValueError:
        return None
    names = _click_parameter_names()
    found = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        placeholder = lookup(token_name(decode(value)) or "")
        key = norm(decode(name))
        if placeholder is None or placeholder.name not in CLICK_FIELDS or key not in names:
            continue
        if not is_numbered_sub(key):
            found.append((names.index(key), placeholder.name))
    return min(found)[1] if found else None


@functools.cache
def _click_parameter_names() -> list[str]:
    """Click-id parameter names, the common ones first, then the catalog's own."""
    catalog = [norm(p.params["click_id"]) for p in platforms().values() if "click_id" in p.params]
    return list(dict.fromkeys([*CLICK_ID_NAMES, *catalog]))


def remember_click_field(affiliate) -> None:
    """Store the field the affiliate's postbacks return the click id in: that of the first one
    (active first, then the newest) whose URL says, else affS1. postbacks/signals.py calls it
    whenever a postback is saved or deleted, for its affiliate and one it was moved from."""
    postbacks = affiliate.postbacks.order_by("-active", "-created", "-pk")
    urls = postbacks.values_list("url", flat=True)[:POSTBACKS_READ]
    field = next(filter(None, map(click_field_of, urls)), DEFAULT_CLICK_FIELD)
    affiliate.click_field = field
    Affiliate.objects.filter(pk=affiliate.pk).update(click_field=field)
