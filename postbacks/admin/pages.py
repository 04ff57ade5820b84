"""The admin's own URLs, hooked into PostbackAdmin and DeliveryAdmin through `get_urls`, and the
two JSON endpoints the postback form calls: the live preview and the test send. The walkthrough
and the dashboard pages are in walkthrough.py and dashboard.py.
"""

import uuid
from functools import partial

from django import forms
from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from conversions.models import Conversion, ConversionStatus
from postbacks import export
from postbacks.admin.dashboard import dashboard_view
from postbacks.admin.forms import HeaderLinesField, status_map_from
from postbacks.admin.html import log_url
from postbacks.admin.walkthrough import walkthrough_view
from postbacks.delivery.testsend import describe, send_test
from postbacks.models import DeliveryState, Postback
from postbacks.preview import (
    PREVIEW_FIELDS,
    conversion_label,
    live_preview,
    parse_status_map,
    recent_conversions,
)


def postback_urls(model_admin) -> list:
    wrap = partial(_wrap, model_admin)
    return [
        path("preview/", wrap(preview_view), name="postbacks_postback_preview"),
        path(
            "<int:object_id>/test-send/",
            wrap(test_send_view),
            name="postbacks_postback_test_send",
        ),
        path(
            "<int:object_id>/walkthrough/",
            wrap(walkthrough_view),
            name="postbacks_postback_walkthrough",
        ),
    ]


def delivery_urls(model_admin) -> list:
    return [
        path(
            "dashboard/",
            _wrap(model_admin, dashboard_view),
            name="postbacks_delivery_dashboard",
        ),
        path("export/", _wrap(model_admin, export_view), name="postbacks_delivery_export"),
    ]


def export_view(request, model_admin):
    """The log as the list page shows it (same filters, search and order) as a CSV file."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        return HttpResponseBadRequest("These filters do not apply to the postback log.")
    return export.csv_response(changelist.queryset)


def _wrap(model_admin, view):
    return model_admin.admin_site.admin_view(partial(view, model_admin=model_admin))


# --- Live preview ---------------------------------------------------------------------------


class PreviewForm(forms.Form):
    """The postback form's current values, as typed: the preview renders whatever is there and
    lists its problems, so text is taken unstripped and checked by the postback validation."""

    url = forms.CharField(required=False, strip=False)
    method = forms.CharField(required=False, strip=False)
    body_format = forms.CharField(required=False, strip=False)
    body_template = forms.CharField(required=False, strip=False)
    currency = forms.CharField(required=False, strip=False)
    status_map = forms.CharField(required=False, strip=False)
    headers = HeaderLinesField()
    statuses = forms.MultipleChoiceField(choices=ConversionStatus.choices, required=False)
    affiliate = forms.IntegerField(required=False, min_value=1)
    preview_conversion = forms.UUIDField(required=False)

    def clean_status_map(self):
        text = self.cleaned_data["status_map"]
        if not text.strip():  # the form's rows, one per status (postbacks/admin/forms.py)
            return status_map_from(self.data, self.data.getlist("statuses"))
        return parse_status_map(text)

    def values(self) -> dict:
        """The settings as validation and rendering take them."""
        return {name: self.cleaned_data[name] for name in (*PREVIEW_FIELDS, "statuses")}


@require_POST
def preview_view(request, model_admin):
    """The request the form's current values would send, as JSON, for the live preview."""
    if not model_admin.has_view_or_change_permission(request) and not (
        model_admin.has_add_permission(request)
    ):
        raise PermissionDenied
    return preview_response(PreviewForm(request.POST))


def preview_response(form: PreviewForm, affiliate_id: int | None = None) -> JsonResponse:
    """The live preview's answer to `form`, with the conversions of `affiliate_id` (default:
    the form's affiliate) to choose from. The portal's preview calls it with its affiliate."""
    if not form.is_valid():
        return JsonResponse({"fields": form.errors}, status=400)
    conversions = recent_conversions(affiliate_id or form.cleaned_data["affiliate"])
    chosen = form.cleaned_data["preview_conversion"]
    conversion = next((c for c in conversions if c.pk == chosen), None)
    payload = live_preview(form.values(), conversion)
    payload["conversions"] = [{"id": str(c.pk), "label": conversion_label(c)} for c in conversions]
    payload["conversion"] = str(conversion.pk) if conversion else ""
    return JsonResponse(payload)


# --- Test send ------------------------------------------------------------------------------


class SendTestForm(forms.Form):
    """The conversion to send with: blank for the sample, else one of the postback's affiliate."""

    conversion = forms.CharField(required=False)

    def __init__(self, data, *, postback: Postback):
        super().__init__(data)
        self.postback = postback

    def clean_conversion(self) -> Conversion | None:
        pk = self.cleaned_data["conversion"]
        if not pk:
            return None
        try:
            uuid.UUID(pk)
        except ValueError:
            raise ValidationError(f"{pk!r} is not a conversion ID.") from None
        conversion = (
            Conversion.objects.filter(pk=pk, affiliate=self.postback.affiliate)
            .select_related("click", "conversion_type")
            .first()
        )
        if conversion is None:
            raise ValidationError(f"No conversion {pk} of affiliate {self.postback.affiliate}.")
        return conversion


@require_POST
def test_send_view(request, object_id: int, model_admin):
    """Send the saved postback now for the chosen conversion (or the sample); JSON or redirect."""
    if not model_admin.has_send_test_permission(request):
        raise PermissionDenied
    postback = get_object_or_404(Postback.objects.select_related("affiliate"), pk=object_id)
    form = SendTestForm(request.POST, postback=postback)
    wants_json = "application/json" in request.headers.get("Accept", "")
    if not form.is_valid():
        problem = form.errors["conversion"][0]
        if wants_json:
            return JsonResponse({"error": problem}, status=400)
        return HttpResponseBadRequest(problem)
    delivery = send_test(postback, form.cleaned_data["conversion"])
    if wants_json:
        return JsonResponse(test_result(delivery))
    level = messages.SUCCESS if delivery.state == DeliveryState.SUCCESS else messages.WARNING
    messages.add_message(request, level, f"Test postback {describe(delivery)}.")
    return redirect("admin:postbacks_delivery_change", delivery.pk)


def test_result(delivery) -> dict:
    """What the test send panel shows: the request, the response and where the log row is."""
    attempt = delivery.attempt_log.first()
    return {
        "state": delivery.state,
        "state_label": DeliveryState(delivery.state).label,
        "delivery_url": reverse("admin:postbacks_delivery_change", args=[delivery.pk]),
        "log_url": log_url(is_test__exact=1, postback__id__exact=delivery.postback_id),
        "request": {
            "method": attempt.method,
            "url": attempt.url,
            "headers": attempt.request_headers,
            "body": attempt.request_body,
        },
        "response": {
            "status": attempt.response_status,
            "headers": attempt.response_headers,
            "body": attempt.response_body,
            "duration_ms": attempt.duration_ms,
            "error": attempt.error,
        },
    }
