"""The audit trail of postback changes: who changed what and when, from the admin, the API, the
affiliate portal or an approval. One function writes it (`record`); every writer calls it with
the postback's `snapshot` from before the change. Secret-looking values are stored masked."""

from postbacks.models import AuditSource, Postback, PostbackAudit
from trackdesk.masking import mask_header_list, mask_text

# The settings a change is recorded for, in the order the admin form shows them.
FIELDS = (
    "name",
    "active",
    "scope",
    "offers",
    "conversion_types",
    "statuses",
    "status_map",
    "currency",
    "method",
    "url",
    "body_format",
    "body_template",
    "headers",
)
RELATIONS = ("offers", "conversion_types")


def snapshot(postback: Postback | None) -> dict:
    """The postback's audited settings as stored now ({} for None or an unsaved one). Offers
    and conversion types as sorted lists of names, so the trail reads without lookups."""
    if postback is None or postback.pk is None:
        return {}
    values = {name: getattr(postback, name) for name in FIELDS if name not in RELATIONS}
    values["offers"] = sorted(str(offer) for offer in postback.offers.all())
    values["conversion_types"] = sorted(str(kind) for kind in postback.conversion_types.all())
    return values


def stored_snapshot(pk: int) -> dict:
    """snapshot() of the postback as the database holds it, whatever a form changed in memory."""
    return snapshot(Postback.objects.filter(pk=pk).first()) if pk else {}


def masked(field: str, value):
    """A value as the trail and the approval queue show it: secret-looking parts masked."""
    if field in ("url", "body_template") and isinstance(value, str):
        return mask_text(value)
    if field == "headers":
        return mask_header_list(value)
    return value


def changes_between(before: dict, after: dict) -> list[dict]:
    """[{"field", "old", "new"}] for each audited field whose value differs, masked."""
    return [
        {"field": name, "old": masked(name, before.get(name)), "new": masked(name, after[name])}
        for name in FIELDS
        if name in after and before.get(name) != after[name]
    ]


def actor_name(user) -> str:
    return user.get_username() if user is not None and user.is_authenticated else ""


def record(
    postback: Postback, before: dict, *, user, source: AuditSource, note: str = ""
) -> PostbackAudit | None:
    """Write one audit row for the change from `before` (a snapshot; {} when just created) to
    the postback as stored now. Nothing is written when nothing audited changed."""
    after = snapshot(postback)
    changes = changes_between(before, after)
    if before and not changes and not note:
        return None
    return PostbackAudit.objects.create(
        postback=postback,
        user=user if user is not None and user.is_authenticated else None,
        actor=actor_name(user),
        source=source,
        created=not before,
        changes=changes,
        note=note,
    )
