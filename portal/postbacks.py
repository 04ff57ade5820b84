"""The affiliate's postback pages: list, add, edit, deactivate, the live preview and their
changes waiting for (or decided by) a manager. Saving goes through portal/moderation.py."""

import copy
from urllib.parse import urlsplit

from django.contrib import messages
from django.db.models import Exists, OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from postbacks.admin.forms import STATUS_VALUES_HELP
from postbacks.admin.pages import PreviewForm, preview_response
from postbacks.models import Delivery, Postback

from . import moderation
from .access import affiliate_required, current_affiliate, own
from .forms import PortalPostbackForm
from .models import PostbackProposal, ProposalState

AT_ONCE_NOTE = (
    "Name, active, scope, offers, conversion types and statuses apply at once. "
    "A change to the URL, method, body, headers, currency or status values waits for your "
    "manager's approval; the live version keeps firing meanwhile."
)


def _own_postback(request, pk: int) -> Postback:
    return get_object_or_404(own(Postback.objects.select_related("affiliate"), request), pk=pk)


@affiliate_required
def postback_list(request):
    latest = Delivery.objects.filter(postback=OuterRef("pk"), is_test=False).order_by("-created")
    pending = PostbackProposal.objects.filter(postback=OuterRef("pk"), state=ProposalState.PENDING)
    postbacks = own(Postback.objects.all(), request).annotate(
        last_delivery_at=Subquery(latest.values("created")[:1]),
        last_delivery_state=Subquery(latest.values("state")[:1]),
        change_pending=Exists(pending),
    )
    rows = [(postback, urlsplit(postback.url).hostname or "") for postback in postbacks]
    waiting_new = own(
        PostbackProposal.objects.filter(is_new=True, state=ProposalState.PENDING), request
    )
    return render(
        request,
        "portal/postbacks.html",
        {
            "rows": rows,
            "waiting_new": waiting_new,
            "need_approval": moderation.need_approval(),
        },
    )


@affiliate_required
@require_http_methods(["GET", "POST"])
def postback_add(request):
    affiliate = current_affiliate(request)
    form = PortalPostbackForm(
        request.POST or None,
        instance=Postback(affiliate=affiliate),
        initial={"active": True},
        affiliate=affiliate,
    )
    if request.method == "POST" and form.is_valid():
        saved = moderation.save_new(affiliate, request.user, form.cleaned_data)
        if isinstance(saved, PostbackProposal):
            messages.success(
                request,
                f"“{saved.values['name']}” is waiting for your manager's approval. It sends "
                "nothing until it is approved.",
            )
            return redirect("portal:changes")
        messages.success(request, f"Created “{saved}”.")
        return redirect("portal:postback_edit", saved.pk)
    return _form_page(request, form, None, None)


@affiliate_required
@require_http_methods(["GET", "POST"])
def postback_edit(request, pk: int):
    postback = _own_postback(request, pk)
    affiliate = current_affiliate(request)
    pending = moderation.pending_change(postback)
    form = PortalPostbackForm(
        request.POST or None, instance=_as_proposed(postback, pending), affiliate=affiliate
    )
    if request.method == "POST" and form.is_valid():
        pending = moderation.save_change(postback, request.user, form.cleaned_data)
        if pending is not None:
            messages.success(
                request,
                "Saved. The change to the request is waiting for your manager's approval; the "
                "live version keeps firing meanwhile.",
            )
        else:
            messages.success(request, "Saved.")
        return redirect("portal:postback_edit", postback.pk)
    return _form_page(request, form, postback, pending)


def _as_proposed(postback: Postback, pending: PostbackProposal | None) -> Postback:
    """The postback as the form shows it: with the pending request change, if there is one,
    so the affiliate edits their latest version (an unsaved copy; the live row is untouched)."""
    shown = copy.copy(postback)
    if pending is not None:
        for name in moderation.REQUEST_FIELDS:
            setattr(shown, name, pending.values[name])
    return shown


def _form_page(request, form, postback, pending):
    rejected = None
    if postback is not None and pending is None:
        last = postback.proposals.exclude(state=ProposalState.WITHDRAWN).order_by("-pk").first()
        rejected = last if last and last.state == ProposalState.REJECTED else None
    return render(
        request,
        "portal/postback_form.html",
        {
            "form": form,
            "postback": postback,
            "pending": pending,
            "pending_rows": _changed_rows(pending) if pending else [],
            "rejected": rejected,
            "need_approval": moderation.need_approval(),
            "at_once_note": AT_ONCE_NOTE,
            "status_values_help": STATUS_VALUES_HELP,
            "affiliate": current_affiliate(request),
        },
    )


@affiliate_required
@require_http_methods(["GET", "POST"])
def postback_deactivate(request, pk: int):
    postback = _own_postback(request, pk)
    if request.method == "POST":
        moderation.deactivate(postback, request.user)
        messages.success(request, f"“{postback}” is inactive: it sends nothing now.")
        return redirect("portal:postbacks")
    return render(request, "portal/postback_deactivate.html", {"postback": postback})


@affiliate_required
@require_POST
def postback_preview(request):
    """The live preview for the portal's form: the admin's, with the affiliate's own
    conversions to preview with (whatever affiliate the request names)."""
    return preview_response(PreviewForm(request.POST), current_affiliate(request).pk)


@affiliate_required
def changes(request):
    """The affiliate's proposals, newest first: waiting, approved, rejected with the reason."""
    proposals = own(
        PostbackProposal.objects.select_related("postback", "proposed_by"), request
    ).exclude(state=ProposalState.WITHDRAWN)[:100]
    return render(
        request,
        "portal/changes.html",
        {"rows": [(proposal, _changed_rows(proposal)) for proposal in proposals]},
    )


def _changed_rows(proposal: PostbackProposal) -> list[dict]:
    """What the affiliate proposed: every setting of a new postback, else the changed ones."""
    rows = moderation.diff_rows(proposal)
    return rows if proposal.is_new else [row for row in rows if row["changed"]]
