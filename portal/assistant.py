"""The postback assistant in the portal: the affiliate picks their platform or pastes the URL it
gave them, reads the analysis, and saves the proposed postback: a proposal for their manager
while approval is needed (portal/moderation.py). The analysis and checks are the admin
assistant's (postbacks/assistant/)."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from affiliates.models import DEFAULT_CLICK_FIELD
from conversions.models import ConversionStatus, ConversionType
from postbacks.assistant.analysis import analyse
from postbacks.assistant.create import existing_postback, refusals_by_field
from postbacks.models import BodyFormat, Scope, TrackingSettings

from . import moderation
from .access import affiliate_required, current_affiliate
from .forms import AssistantStartForm


class SaveForm(forms.Form):
    """The proposal's name, types and statuses (scope: all offers; editable afterwards)."""

    name = forms.CharField(max_length=200)
    conversion_types = forms.ModelMultipleChoiceField(
        ConversionType.objects.order_by("pk"),
        widget=forms.CheckboxSelectMultiple,
        to_field_name="code",
        error_messages={"required": "Pick at least one conversion type."},
    )
    statuses = forms.MultipleChoiceField(
        label="Conversion statuses",
        choices=ConversionStatus.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one conversion status."},
    )


@affiliate_required
@require_http_methods(["GET", "POST"])
def assistant(request):
    affiliate = current_affiliate(request)
    saving = request.method == "POST"
    start = AssistantStartForm(request.POST if saving else (request.GET or None))
    context = {"start": start}
    if start.is_bound and start.is_valid():
        analysis = analyse(
            start.cleaned_data["url"],
            start.cleaned_data["platform"],
            affiliate=affiliate,
            click_field=affiliate.click_field or DEFAULT_CLICK_FIELD,
            allow_revenue=TrackingSettings.load().allow_revenue_parameters,
            conversion_types=ConversionType.objects.order_by("pk").values_list("code", flat=True),
            keep=start.cleaned_data["keep"].split(","),
        )
        proposal = analysis.postback or {}
        save = SaveForm(
            request.POST if saving else None,
            initial={
                "name": proposal.get("name", ""),
                "conversion_types": proposal.get("conversion_types", []),
                "statuses": proposal.get("statuses", []),
            },
        )
        existing = existing_postback(affiliate, proposal)
        waiting = moderation.waiting_new(affiliate, proposal)
        if saving and not (existing or waiting) and analysis.ok and save.is_valid():
            saved = _save(request, affiliate, analysis, save)
            if saved is not None:
                return saved
        context |= {
            "analysis": analysis,
            "save": save,
            "existing": existing,
            "waiting": waiting,
        }
    return render(
        request,
        "portal/assistant.html",
        {**context, "need_approval": moderation.need_approval()},
    )


def _save(request, affiliate, analysis, save: SaveForm):
    choices = {
        "conversion_types": list(save.cleaned_data["conversion_types"]),
        "statuses": save.cleaned_data["statuses"],
    }
    problems = refusals_by_field(analysis, **choices)
    for field, field_messages in problems.items():
        save.add_error(field if field in save.fields else None, field_messages)
    if problems:
        return None
    cleaned = {
        **choices,
        "name": save.cleaned_data["name"],
        "active": True,
        "scope": Scope.GLOBAL,
        "offers": [],
        "url": analysis.postback["url"],
        "method": analysis.postback["method"],
        "body_format": BodyFormat.FORM,
        "body_template": "",
        "headers": [],
        "currency": "",
        "status_map": analysis.postback["status_map"],
    }
    saved = moderation.save_new(affiliate, request.user, cleaned)
    if not affiliate.click_id_token and analysis.click_id_token:
        # Their tracking links carry the token their platform fills (as the admin assistant).
        affiliate.click_id_token = analysis.click_id_token
        affiliate.save(update_fields=["click_id_token"])
    if moderation.need_approval():
        messages.success(
            request,
            f"“{cleaned['name']}” is waiting for your manager's approval. It sends nothing "
            "until it is approved.",
        )
        return redirect("portal:changes")
    messages.success(request, f"Created “{saved}”.")
    return redirect("portal:postback_edit", saved.pk)
