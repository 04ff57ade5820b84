"""The admin's "Postback assistant" page: affiliate, then a platform or a pasted URL, then the
analysis and the proposal, then one click creates the postback, inactive, through the same
validation as the admin form."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from affiliates.links import public_url, tracking_url
from affiliates.models import CLICK_FIELDS, DEFAULT_CLICK_FIELD, Affiliate, Offer
from conversions.models import ConversionStatus, ConversionType
from postbacks.admin.forms import MONOSPACE
from postbacks.assistant.analysis import analyse
from postbacks.assistant.catalog import platform_choices
from postbacks.assistant.create import create_postback, existing_postback, refusals
from postbacks.models import Postback, TrackingSettings

TEMPLATE = "admin/postbacks/postback/assistant.html"
TRACKING_LINK_OFFERS = 5


class StartForm(forms.Form):
    affiliate = forms.ModelChoiceField(Affiliate.objects.all(), label="1. Affiliate")
    platform = forms.ChoiceField(
        label="2. Their platform",
        required=False,
        choices=[("", "Recognise it from the pasted URL")] + platform_choices(),
    )
    url = forms.CharField(
        label="… or the postback URL their platform gave them",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "style": MONOSPACE}),
        help_text="For example https://trk.example.com/postback?clickid=REPLACE&payout=OPTIONAL",
    )
    click_field = forms.ChoiceField(
        label="Click id travels in",
        choices=[(name, name) for name in CLICK_FIELDS],
        initial=DEFAULT_CLICK_FIELD,
        required=False,
    )
    keep = forms.CharField(
        label="Keep as written",
        required=False,
        max_length=500,
        help_text="Parameters to send exactly as pasted, comma-separated (e.g. status, sub1): "
        "your answer where the assistant cannot tell a token from a fixed value.",
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("url", "").strip() and not cleaned.get("platform"):
            raise ValidationError("Choose the affiliate's platform or paste their postback URL.")
        return cleaned


class CreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    conversion_types = forms.ModelMultipleChoiceField(
        ConversionType.objects.all(), widget=forms.CheckboxSelectMultiple, to_field_name="code"
    )
    statuses = forms.MultipleChoiceField(
        label="Conversion statuses",
        choices=ConversionStatus.choices,
        widget=forms.CheckboxSelectMultiple,
    )


def assistant_urls(model_admin) -> list:
    def view(request):
        return assistant_view(request, model_admin)

    return [
        path(
            "assistant/",
            model_admin.admin_site.admin_view(view),
            name="postbacks_postback_assistant",
        )
    ]


def assistant_view(request, model_admin):
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    creating = request.method == "POST"
    start = StartForm(request.POST if creating else (request.GET or None))
    context = {"start": start}
    if start.is_bound and start.is_valid():
        analysis = _analyse(start.cleaned_data)
        existing = existing_postback(start.cleaned_data["affiliate"], analysis.postback)
        create = CreateForm(request.POST if creating else None, initial=_initial(analysis))
        if creating and existing is not None:
            messages.info(request, _already_there(existing))
            return redirect("admin:postbacks_postback_change", existing.pk)
        if creating and analysis.ok and create.is_valid():
            postback = _create(request, model_admin, analysis, start.cleaned_data, create)
            if postback is not None:
                return redirect("admin:postbacks_postback_change", postback.pk)
        context |= {
            "analysis": analysis,
            "existing": existing,
            "create": create,
            "tracking_links": _tracking_links(request, analysis, start.cleaned_data["affiliate"]),
        }
    context |= {
        **model_admin.admin_site.each_context(request),
        "opts": Postback._meta,
        "title": "Postback assistant",
    }
    return TemplateResponse(request, TEMPLATE, context)


def _analyse(cleaned: dict):
    return analyse(
        cleaned["url"],
        cleaned["platform"],
        affiliate=cleaned["affiliate"],
        click_field=cleaned["click_field"] or DEFAULT_CLICK_FIELD,
        allow_revenue=TrackingSettings.load().allow_revenue_parameters,
        conversion_types=ConversionType.objects.values_list("code", flat=True),
        keep=cleaned.get("keep", "").split(","),
    )


def _already_there(postback) -> str:
    return format_html(
        "{} already has this postback: “{}” ({}). It was not created twice.",
        postback.affiliate,
        postback,
        "active" if postback.active else "inactive",
    )


def _initial(analysis) -> dict:
    proposal = analysis.postback or {}
    return {
        "name": proposal.get("name", ""),
        "conversion_types": proposal.get("conversion_types", []),
        "statuses": proposal.get("statuses", []),
    }


def _create(request, model_admin, analysis, cleaned: dict, create: CreateForm):
    affiliate = cleaned["affiliate"]
    problems = refusals(
        analysis,
        conversion_types=create.cleaned_data["conversion_types"],
        statuses=create.cleaned_data["statuses"],
    )
    for message in problems:
        create.add_error(None, message)
    if problems:
        return None
    had_token = bool(affiliate.click_id_token)
    postback, created = create_postback(
        analysis,
        affiliate,
        name=create.cleaned_data["name"],
        conversion_types=create.cleaned_data["conversion_types"],
        statuses=create.cleaned_data["statuses"],
    )
    if not created:  # another click created it a moment ago
        messages.info(request, _already_there(postback))
        return postback
    model_admin.log_addition(request, postback, [{"added": {}}])
    change = reverse("admin:postbacks_postback_change", args=[postback.pk])
    text = format_html(
        "Created the postback “{}”, inactive. Review it, "
        '<a href="{}#pb-test-panel">send a test postback</a> (or follow the '
        '<a href="{}">walkthrough</a>), then activate it.',
        postback,
        change,
        reverse("admin:postbacks_postback_walkthrough", args=[postback.pk]),
    )
    if not had_token and affiliate.click_id_token:
        text = format_html(
            "{} {}'s click-id token is now {}.", text, affiliate, affiliate.click_id_token
        )
    messages.success(request, text)
    return postback


def _tracking_links(request, analysis, affiliate) -> list[tuple[str, str]]:
    """Ready-to-copy links with the token in the chosen click field, as the postback reads it."""
    if not analysis.tracking_link:
        return []
    offers = Offer.objects.filter(active=True).order_by("-created")[:TRACKING_LINK_OFFERS]
    links = [
        (
            str(offer),
            tracking_url(affiliate, offer, request, analysis.click_field, analysis.click_id_token),
        )
        for offer in offers
    ]
    return links or [("any offer", public_url(analysis.tracking_link, request))]
