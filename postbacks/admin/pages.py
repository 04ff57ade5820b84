"""Admin pages beyond the model forms: the live preview (JSON), test send, the walkthrough and
the delivery dashboard. Hooked into PostbackAdmin and DeliveryAdmin through `get_urls`.
"""

import json
import re
import uuid
from decimal import Decimal, InvalidOperation
from functools import partial

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from conversions.models import Conversion, ConversionStatus
from postbacks.admin import dashboard, walkthrough
from postbacks.admin.html import STATE_COLOURS, log_url, recent_deliveries
from postbacks.delivery.testsend import describe, send_test
from postbacks.models import DeliveryState, Postback, TrackingSettings
from postbacks.placeholders import lookup
from postbacks.rendering import PLACEHOLDER_RE, RenderError, find_placeholders
from postbacks.validation import render_preview, validate_postback_config

PREVIEW_FIELDS = ("url", "method", "body_format", "body_template", "currency", "status_map")
PREVIEW_CONVERSIONS = 20
TEST_SEND_PERMISSION = "postbacks.send_test_postback"
_MARKER = re.compile(r"UNKNOWNPLACEHOLDER(\d+)END")


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
        )
    ]


def _wrap(model_admin, view):
    return model_admin.admin_site.admin_view(partial(view, model_admin=model_admin))


def _page_context(request, model_admin, title: str, **extra) -> dict:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        **extra,
    }


# --- Live preview ---------------------------------------------------------------------------


@require_POST
def preview_view(request, model_admin):
    """The request the form's current values would send, as JSON, for the live preview."""
    if not model_admin.has_view_or_change_permission(request) and not (
        model_admin.has_add_permission(request)
    ):
        raise PermissionDenied
    data = request.POST
    values = {name: data.get(name, "") for name in PREVIEW_FIELDS}
    values["statuses"] = data.getlist("statuses")
    values["scope"] = data.get("scope", "")
    values["status_map"] = _status_map(values["status_map"])
    affiliate_id = data.get("affiliate") or None
    conversions = _affiliate_conversions(affiliate_id)
    conversion = _chosen(conversions, data.get("preview_conversion"))
    payload = live_preview(values, conversion)
    payload["conversions"] = [{"id": str(c.pk), "label": conversion_label(c)} for c in conversions]
    payload["conversion"] = str(conversion.pk) if conversion else ""
    return JsonResponse(payload)


def _status_map(text: str):
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text  # validation explains what the status map must look like


def _affiliate_conversions(affiliate_id) -> list[Conversion]:
    if not (affiliate_id and str(affiliate_id).isdigit()):
        return []
    return list(
        Conversion.objects.filter(affiliate_id=affiliate_id)
        .select_related("click", "conversion_type")
        .order_by("-created")[:PREVIEW_CONVERSIONS]
    )


def _chosen(conversions: list[Conversion], pk: str | None) -> Conversion | None:
    return next((c for c in conversions if str(c.pk) == pk), None)


def conversion_label(conversion: Conversion) -> str:
    return (
        f"{conversion.created:%Y-%m-%d %H:%M} · {conversion.conversion_type} · "
        f"{conversion.get_status_display()} · {conversion.transaction_id}"
    )


def live_preview(values: dict, conversion=None, *, allow_revenue: bool | None = None) -> dict:
    """The preview's JSON: the rendered request split into segments with unknown placeholders
    marked, plus the configuration's problems. Renders with validation.render_preview, the
    delivery renderer."""
    if allow_revenue is None:
        allow_revenue = TrackingSettings.load().allow_revenue_parameters
    text = f"{values.get('url', '')} {values.get('body_template', '')}"
    unknown = [name for name in find_placeholders(text) if lookup(name) is None]
    result = {
        "errors": _config_errors(values, allow_revenue),
        "unknown": ["{" + name + "}" for name in unknown],
        "error": "",
        "method": "",
        "url": [],
        "body": [],
    }
    masked = {**values}
    for field_name in ("url", "body_template"):
        masked[field_name] = _mask_unknown(values.get(field_name) or "", unknown)
    try:
        request = render_preview(masked, conversion, allow_revenue=allow_revenue)
    except RenderError as error:
        result["error"] = str(error)
        return result
    result["method"] = request.method
    result["url"] = _segments(request.url, unknown)
    result["body"] = _segments(request.body, unknown)
    return result


def _config_errors(values: dict, allow_revenue: bool) -> list[str]:
    try:
        validate_postback_config(values, allow_revenue=allow_revenue)
    except ValidationError as error:
        return [
            message
            for name, field_messages in error.message_dict.items()
            if name in PREVIEW_FIELDS
            for message in field_messages
        ]
    return []


def _mask_unknown(template: str, unknown: list[str]) -> str:
    # Unknown names would stop the renderer; a marker of letters and digits survives every
    # encoding unchanged and is turned back into the highlighted placeholder afterwards.
    def replace(match):
        name = match.group(1)
        return f"UNKNOWNPLACEHOLDER{unknown.index(name)}END" if name in unknown else match[0]

    return PLACEHOLDER_RE.sub(replace, template)


def _segments(text: str, unknown: list[str]) -> list[dict]:
    parts = _MARKER.split(text)
    segments = []
    for i, part in enumerate(parts):
        if i % 2:
            segments.append({"text": "{" + unknown[int(part)] + "}", "unknown": True})
        elif part:
            segments.append({"text": part, "unknown": False})
    return segments


# --- Test send ------------------------------------------------------------------------------


@require_POST
def test_send_view(request, object_id: int, model_admin):
    """Send the saved postback now for the chosen conversion (or the sample); JSON or redirect."""
    if not request.user.has_perm(TEST_SEND_PERMISSION):
        raise PermissionDenied
    postback = get_object_or_404(Postback.objects.select_related("affiliate"), pk=object_id)
    conversion, problem = _test_conversion(postback, request.POST.get("conversion", ""))
    wants_json = "application/json" in request.headers.get("Accept", "")
    if problem:
        if wants_json:
            return JsonResponse({"error": problem}, status=400)
        return HttpResponseBadRequest(problem)
    delivery = send_test(postback, conversion)
    if wants_json:
        return JsonResponse(test_result(delivery))
    level = messages.SUCCESS if delivery.state == DeliveryState.SUCCESS else messages.WARNING
    messages.add_message(request, level, f"Test postback {describe(delivery)}.")
    return redirect("admin:postbacks_delivery_change", delivery.pk)


def _test_conversion(postback: Postback, pk: str) -> tuple[Conversion | None, str]:
    if not pk:
        return None, ""
    try:
        uuid.UUID(pk)
    except ValueError:
        return None, f"{pk!r} is not a conversion ID."
    conversion = (
        Conversion.objects.filter(pk=pk, affiliate=postback.affiliate)
        .select_related("click", "conversion_type")
        .first()
    )
    if conversion is None:
        return None, f"No conversion {pk} of affiliate {postback.affiliate}."
    return conversion, ""


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


# --- Walkthrough ----------------------------------------------------------------------------


def walkthrough_view(request, object_id: int, model_admin):
    postback = get_object_or_404(Postback.objects.select_related("affiliate"), pk=object_id)
    if not model_admin.has_view_or_change_permission(request, postback):
        raise PermissionDenied
    can_act = request.user.has_perm(TEST_SEND_PERMISSION)
    if request.method == "POST":
        if not can_act:
            raise PermissionDenied
        return _walkthrough_step(request, postback)
    context = _page_context(
        request,
        model_admin,
        f"Walkthrough: {postback}",
        postback=postback,
        original=postback,
        can_act=can_act,
        sample_click_id=walkthrough.sample_click_id(),
        conversion_types=postback.conversion_types.all(),
        statuses=ConversionStatus.choices,
        default_status=postback.statuses[0] if postback.statuses else "approved",
        **_walkthrough_progress(request, postback),
    )
    return TemplateResponse(request, "admin/postbacks/walkthrough.html", context)


def _walkthrough_progress(request, postback: Postback) -> dict:
    """Where the walkthrough stands: each step is done only when its row exists."""
    click = walkthrough.find_click(postback, request.GET.get("click"))
    conversion = walkthrough.find_conversion(click, request.GET.get("conversion"))
    offers = list(walkthrough.offers_in_scope(postback))
    offer = _pick(offers, request.GET.get("offer")) or (click.offer if click else None)
    offer = offer or (offers[0] if offers else None)
    deliveries = walkthrough.deliveries_for(postback, conversion)
    delivery = deliveries.first()
    reason = walkthrough.why_no_delivery(postback, conversion) if conversion else ""
    field = walkthrough.click_field(postback)
    return {
        "offers": offers,
        "offer": offer,
        "click_field": field,
        "click_id": walkthrough.click_id_of(click, field) if click else "",
        "tracking_url": postback.affiliate.tracking_url(offer, request, field) if offer else "",
        "click": click,
        "conversion": conversion,
        "delivery": delivery,
        "reason": reason,
        "deliveries": recent_deliveries(
            deliveries, show="postback", conversion__id__exact=conversion.pk
        )
        if conversion
        else "",
        # The page reloads itself until the delivery is there and finished.
        "waiting": bool(conversion and not reason)
        and (delivery is None or not delivery.is_finished),
        "steps": [
            walkthrough.Step("Tracking link", offer is not None),
            walkthrough.Step("Simulated click", click is not None),
            walkthrough.Step("Test conversion", conversion is not None),
            walkthrough.Step("Delivery", delivery is not None),
        ],
    }


def _pick(objects, pk):
    return next((o for o in objects if str(o.pk) == str(pk)), None)


def _walkthrough_step(request, postback: Postback):
    here = reverse("admin:postbacks_postback_walkthrough", args=[postback.pk])
    action = request.POST.get("action")
    if action == "click":
        offer = _pick(walkthrough.offers_in_scope(postback), request.POST.get("offer"))
        click_id = request.POST.get("click_id", "").strip()
        if offer is None or not click_id or len(click_id) > 255:
            messages.error(request, "Choose an offer in the postback's scope and a click ID.")
            return redirect(here)
        click = walkthrough.simulate_click(postback, offer, click_id)
        return redirect(f"{here}?{urlencode({'click': click.pk, 'offer': offer.pk})}")
    if action == "conversion":
        click = walkthrough.find_click(postback, request.POST.get("click"))
        ctype = _pick(postback.conversion_types.all(), request.POST.get("conversion_type"))
        status = request.POST.get("status")
        payout = _decimal(request.POST.get("payout", ""))
        if click is None or ctype is None or status not in ConversionStatus.values:
            messages.error(request, "Simulate a click first, then pick a type and a status.")
            return redirect(here)
        if payout is False:
            messages.error(request, "The payout must be a number such as 12.50, or blank.")
            return redirect(f"{here}?{urlencode({'click': click.pk})}")
        conversion = walkthrough.create_test_conversion(click, ctype, status, payout)
        query = {"click": click.pk, "conversion": conversion.pk}
        return redirect(f"{here}?{urlencode(query)}")
    return HttpResponseBadRequest("Unknown walkthrough step.")


def _decimal(text: str):
    if not text.strip():
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return False
    return value if value.is_finite() and value >= 0 else False


# --- Dashboard ------------------------------------------------------------------------------


def dashboard_view(request, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    snapshot = dashboard.take_snapshot(now)
    hours = dashboard.hourly(now, snapshot=snapshot)
    peak = max((bar.total for bar in hours), default=0) or 1
    chart = [
        {
            "hour": bar.hour,
            "total": bar.total,
            "parts": [
                {
                    "state": DeliveryState(state).label,
                    "count": count,
                    "colour": STATE_COLOURS[state],
                    "percent": round(100 * count / peak, 2),
                }
                for state, count in bar.counts.items()
                if count
            ],
        }
        for bar in hours
    ]
    context = _page_context(
        request,
        model_admin,
        "Delivery dashboard",
        by_affiliate=dashboard.group_stats("affiliate", now, snapshot),
        by_postback=dashboard.group_stats("postback", now, snapshot),
        windows=list(dashboard.WINDOWS),
        chart=chart,
        peak=peak,
        legend=[(DeliveryState(s).label, STATE_COLOURS[s]) for s in dashboard.CHART_STATES],
        failing=dashboard.failing_endpoints(),
        log_url=log_url(),
    )
    return TemplateResponse(request, "admin/postbacks/dashboard.html", context)
