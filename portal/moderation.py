"""Affiliates' postbacks under moderation: saving from the portal, approving and rejecting.

While PORTAL_POSTBACKS_NEED_APPROVAL is on, a new postback, or a change to the request a
postback sends (REQUEST_FIELDS), is stored as a PostbackProposal; the live postback keeps
firing unchanged (a new one does not exist) until a manager approves. The other settings
(AT_ONCE_FIELDS) apply at once. With the setting off everything applies at once. Every change
to a postback is audited (postbacks/audit.py).
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import capfirst

from affiliates.models import Offer
from conversions.models import ConversionType
from portal.models import PostbackProposal, ProposalState
from postbacks import audit
from postbacks.models import AuditSource, Postback
from postbacks.rendering import postback_values
from postbacks.validation import validate_postback_config

# What the receiver gets: these wait for approval.
REQUEST_FIELDS = (
    "url",
    "method",
    "body_format",
    "body_template",
    "headers",
    "currency",
    "status_map",
)
# When it fires, and its name: these apply at once.
AT_ONCE_FIELDS = ("name", "active", "scope", "statuses")
AT_ONCE_RELATIONS = ("offers", "conversion_types")


class ModerationError(Exception):
    """A decision that cannot be made, with a message the manager can act on."""


def need_approval() -> bool:
    return getattr(settings, "PORTAL_POSTBACKS_NEED_APPROVAL", True)


def request_values(postback: Postback) -> dict:
    return {name: getattr(postback, name) for name in REQUEST_FIELDS}


def pending_change(postback: Postback) -> PostbackProposal | None:
    return postback.proposals.filter(state=ProposalState.PENDING).order_by("-pk").first()


def waiting_new(affiliate, proposal: dict) -> PostbackProposal | None:
    """The affiliate's new postback waiting for approval that sends the same request (URL and
    method), or None: the assistant does not propose it twice."""
    if not proposal.get("url"):
        return None
    return PostbackProposal.objects.filter(
        affiliate=affiliate,
        is_new=True,
        state=ProposalState.PENDING,
        values__url=proposal["url"],
        values__method=proposal.get("method"),
    ).first()


def save_new(affiliate, user, cleaned: dict) -> Postback | PostbackProposal:
    """A postback the affiliate created in the portal (or the portal's assistant): a proposal
    while approval is needed, else the postback itself, audited."""
    if need_approval():
        return PostbackProposal.objects.create(
            affiliate=affiliate, is_new=True, values=_all_values(cleaned), proposed_by=user
        )
    with transaction.atomic():
        postback = Postback.objects.create(
            affiliate=affiliate,
            **{name: cleaned[name] for name in (*AT_ONCE_FIELDS, *REQUEST_FIELDS)},
        )
        _set_relations(postback, cleaned)
        audit.record(postback, {}, user=user, source=AuditSource.PORTAL)
    return postback


@transaction.atomic
def save_change(postback: Postback, user, cleaned: dict) -> PostbackProposal | None:
    """The affiliate's edit: AT_ONCE fields apply now; a changed request waits as a proposal
    (replacing one still pending) while approval is needed. Returns the pending proposal."""
    postback = Postback.objects.select_for_update().get(pk=postback.pk)
    before = audit.snapshot(postback)
    requested = {name: cleaned[name] for name in REQUEST_FIELDS}
    for name in AT_ONCE_FIELDS:
        setattr(postback, name, cleaned[name])
    pending = None
    if need_approval():
        pending = _propose(postback, user, requested)
    else:
        for name, value in requested.items():
            setattr(postback, name, value)
    postback.save()
    _set_relations(postback, cleaned)
    audit.record(postback, before, user=user, source=AuditSource.PORTAL)
    return pending


def deactivate(postback: Postback, user) -> None:
    """Stop the postback firing (the affiliate may always do that; it is audited)."""
    with transaction.atomic():
        postback = Postback.objects.select_for_update().get(pk=postback.pk)
        before = audit.snapshot(postback)
        postback.active = False
        postback.save(update_fields=["active", "updated"])
        audit.record(postback, before, user=user, source=AuditSource.PORTAL)


def _propose(postback: Postback, user, requested: dict) -> PostbackProposal | None:
    """Keep, replace or withdraw the pending proposal so it holds `requested` (none when that
    is what the live postback sends already)."""
    live = request_values(postback)
    pending = (
        PostbackProposal.objects.select_for_update()
        .filter(postback=postback, state=ProposalState.PENDING)
        .order_by("-pk")
        .first()
    )
    wanted = _as_json(requested)
    if pending is not None and pending.values == wanted:
        return pending
    if pending is not None:
        _decide(pending, ProposalState.WITHDRAWN, user)
    if wanted == _as_json(live):
        return None
    return PostbackProposal.objects.create(
        affiliate=postback.affiliate,
        postback=postback,
        values=wanted,
        base=_as_json(live),
        proposed_by=user,
    )


# --- The manager's decision -----------------------------------------------------------------


@transaction.atomic
def approve(proposal: PostbackProposal, user) -> Postback:
    """Apply the proposal through the postback validation: create the new postback, or change
    the live one. Refused (ModerationError) when it was decided already, when the live request
    changed since it was proposed (the manager rejects it and the affiliate proposes again),
    or when it no longer validates."""
    proposal = _claim(proposal, ProposalState.APPROVED, user)
    postback = _create(proposal) if proposal.is_new else _apply(proposal)
    proposal.postback = postback
    proposal.save(update_fields=["postback"])
    return postback


@transaction.atomic
def reject(proposal: PostbackProposal, user, reason: str) -> PostbackProposal:
    """Refuse the proposal; the affiliate sees the reason (required)."""
    reason = (reason or "").strip()
    if not reason:
        raise ModerationError("Give a reason: the affiliate sees it.")
    proposal = _claim(proposal, ProposalState.REJECTED, user)
    proposal.reason = reason
    proposal.save(update_fields=["reason"])
    return proposal


def _claim(proposal: PostbackProposal, state: str, user) -> PostbackProposal:
    # A conditional UPDATE: of two managers deciding at once (or a double click), one wins.
    if not _decide(proposal, state, user):
        current = PostbackProposal.objects.get(pk=proposal.pk)
        raise ModerationError(
            f"This change was decided already: {current.get_state_display().lower()}."
        )
    return PostbackProposal.objects.select_related("postback", "affiliate", "proposed_by").get(
        pk=proposal.pk
    )


def _decide(proposal: PostbackProposal, state: str, user) -> bool:
    return bool(
        PostbackProposal.objects.filter(pk=proposal.pk, state=ProposalState.PENDING).update(
            state=state, decided_by=user, decided_at=timezone.now()
        )
    )


def _create(proposal: PostbackProposal) -> Postback:
    values = _relations_from_ids(proposal.values)
    _validate(values)
    postback = Postback.objects.create(
        affiliate=proposal.affiliate,
        **{name: values[name] for name in (*AT_ONCE_FIELDS, *REQUEST_FIELDS)},
    )
    _set_relations(postback, values)
    audit.record(
        postback, {}, user=proposal.decided_by, source=AuditSource.APPROVAL, note=_note(proposal)
    )
    return postback


def _apply(proposal: PostbackProposal) -> Postback:
    postback = Postback.objects.select_for_update().get(pk=proposal.postback_id)
    if _as_json(request_values(postback)) != proposal.base:
        raise ModerationError(
            "The live postback's request changed after this was proposed. Reject this change "
            "with a reason; the affiliate can propose it again on top of the new version."
        )
    before = audit.snapshot(postback)
    values = {
        **postback_values(postback),
        **proposal.values,
        **{name: list(getattr(postback, name).all()) for name in AT_ONCE_RELATIONS},
    }
    _validate(values)
    for name in REQUEST_FIELDS:
        setattr(postback, name, proposal.values[name])
    postback.save()
    audit.record(
        postback,
        before,
        user=proposal.decided_by,
        source=AuditSource.APPROVAL,
        note=_note(proposal),
    )
    return postback


def _validate(values: dict) -> None:
    try:
        validate_postback_config(values)
    except ValidationError as error:
        messages = [message for field in error.message_dict.values() for message in field]
        raise ModerationError("It no longer passes the checks: " + " ".join(messages)) from None


def _note(proposal: PostbackProposal) -> str:
    who = proposal.proposed_by.get_username() if proposal.proposed_by else "an affiliate user"
    return f"Proposed by {who} in the portal on {proposal.proposed_at:%Y-%m-%d %H:%M} UTC."


# --- Values as stored in a proposal ---------------------------------------------------------


def _all_values(cleaned: dict) -> dict:
    values = {name: cleaned[name] for name in (*AT_ONCE_FIELDS, *REQUEST_FIELDS)}
    for name in AT_ONCE_RELATIONS:
        values[name] = sorted(item.pk for item in cleaned.get(name) or ())
    return _as_json(values)


def _relations_from_ids(values: dict) -> dict:
    return {
        **values,
        "offers": list(Offer.objects.filter(pk__in=values.get("offers") or ())),
        "conversion_types": list(
            ConversionType.objects.filter(pk__in=values.get("conversion_types") or ())
        ),
    }


def _set_relations(postback: Postback, values: dict) -> None:
    for name in AT_ONCE_RELATIONS:
        if name in values:
            getattr(postback, name).set(values[name])


def _as_json(values: dict) -> dict:
    """As a JSONField gives it back: tuples become lists, so stored and fresh values compare."""
    return {
        name: list(value) if isinstance(value, tuple) else value for name, value in values.items()
    }


# --- What the manager and the affiliate see -------------------------------------------------


def diff_rows(proposal: PostbackProposal, *, mask: bool = False) -> list[dict]:
    """Live next to proposed, one row per setting the proposal holds: {"label", "live",
    "proposed", "changed"}; secret-looking values masked when `mask` is on."""
    live = audit.snapshot(proposal.postback) if proposal.postback_id else {}
    if proposal.is_new:
        live = {}  # nothing was live before (once approved: the postback it created)
    elif proposal.state != ProposalState.PENDING:
        live = {**live, **proposal.base}  # decided: next to what was live when proposed
    proposed = dict(proposal.values)
    for name, model in (("offers", Offer), ("conversion_types", ConversionType)):
        if name in proposed:
            chosen = model.objects.filter(pk__in=proposed[name])
            proposed[name] = sorted(str(item) for item in chosen)
    rows = []
    for name in audit.FIELDS:
        if name not in proposed:
            continue
        old, new = live.get(name, ""), proposed[name]
        if mask:
            old, new = audit.masked(name, old), audit.masked(name, new)
        rows.append(
            {
                "label": capfirst(Postback._meta.get_field(name).verbose_name),
                "live": _shown(old),
                "proposed": _shown(new),
                "changed": old != new,
            }
        )
    return rows


def _shown(value) -> str:
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return "\n".join(f"{item.get('name')}: {item.get('value')}" for item in value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{key} → {item}" for key, item in value.items())
    return str(value)
