"""Fill Affiliate.click_field for existing affiliates with the rule that decided it before it
was stored: the first of their postbacks (active first, then the newest; at most 20) whose URL
returns the click id in an affS field, else affS1.

The rule is copied here as it stood (postbacks/assistant/clickfield.py click_field_of), so this
migration gives the same result whatever that module becomes.
"""

import re
from urllib.parse import unquote_plus, urlsplit

from django.db import migrations

_NAME = r"[A-Za-z_][\w.\-]*"
TOKEN_RE = re.compile(
    rf"\$?\{{\{{?(?:url\()?(?P<a>{_NAME})\)?\}}\}}?"
    rf"|\[\[\[(?P<b>{_NAME})\]\]\]|\[(?P<c>{_NAME})\]"
    rf"|##(?P<d>{_NAME})##|#(?P<e>{_NAME})#"
    rf"|%%(?P<f>{_NAME})%%|%(?P<g>[A-Za-z_][\w.\-]{{2,}})%"
    rf"|!!!(?P<h>{_NAME})!!!|<(?P<i>{_NAME})>"
)
# Click-id parameter names, normalised, the more telling first (the catalog's CAKE adds r).
CLICK_PARAMETER_NAMES = [
    "clickid",
    "cid",
    "cnvid",
    "subid",
    "affclickid",
    "affsub",
    "sub1",
    "subid1",
    "sid",
    "s2",
    "s1",
    "clickref",
    "visitorid",
    "externalid",
    "click",
    "trackingid",
    "transactionid",
    "tid",
    "r",
]
NUMBERED_SUB = re.compile(r"(?:sub|subid|affsub|s)([2-5])")
# The spellings of {affS1}..{affS5} a template may use, any case.
CLICK_FIELD_SPELLINGS = {
    spelling: f"affS{n}" for n in range(1, 6) for spelling in (f"affs{n}", f"aff_s{n}")
}
POSTBACKS_READ = 20


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _token_name(value: str) -> str:
    match = TOKEN_RE.fullmatch(value.strip())
    return next((name for name in match.groups() if name), "") if match else ""


def click_field_of(template: str) -> str | None:
    try:
        query = urlsplit(template).query
    except ValueError:
        return None
    found = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        field = CLICK_FIELD_SPELLINGS.get(_token_name(unquote_plus(value)).lower())
        key = _norm(unquote_plus(name))
        if field and key in CLICK_PARAMETER_NAMES and not NUMBERED_SUB.fullmatch(key):
            found.append((CLICK_PARAMETER_NAMES.index(key), field))
    return min(found)[1] if found else None


def fill_click_fields(apps, schema_editor):
    Affiliate = apps.get_model("affiliates", "Affiliate")
    Postback = apps.get_model("postbacks", "Postback")
    for affiliate in Affiliate.objects.filter(postbacks__isnull=False).distinct().iterator():
        postbacks = Postback.objects.filter(affiliate=affiliate).order_by(
            "-active", "-created", "-pk"
        )
        urls = postbacks.values_list("url", flat=True)[:POSTBACKS_READ]
        field = next(filter(None, map(click_field_of, urls)), "affS1")
        if field != affiliate.click_field:
            Affiliate.objects.filter(pk=affiliate.pk).update(click_field=field)


class Migration(migrations.Migration):
    dependencies = [
        ("affiliates", "0002_affiliate_click_field"),
        ("postbacks", "0013_task_paths"),
    ]

    operations = [migrations.RunPython(fill_click_fields, migrations.RunPython.noop)]
