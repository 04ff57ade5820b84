"""The delivery page: the timeline of attempts (masked for display), and the Retry now and
Resend buttons with their confirmation pages (GET shows, POST acts)."""

from dataclasses import dataclass
from functools import partial

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.text import Truncator

from postbacks import conf
from postbacks.delivery import queue
from postbacks.delivery.resend import CannotResend, resend, resend_refusal
from postbacks.models import Delivery, DeliveryAttempt, DeliveryState
from trackdesk.masking import MASK, is_secret_name, mask, masking_on

BODY_SHOWN_CHARS = 4000  # stored bodies are capped already (POSTBACK_RESPONSE_BODY_LIMIT)


@dataclass
class AttemptView:
    """One attempt as the timeline shows it: every text masked while masking is on."""

    title: str
    attempt: DeliveryAttempt
    url: str
    request_headers: list[tuple[str, str]]
    request_body: str
    response_headers: list[tuple[str, str]]
    response_body: str
    error: str


def attempts_allowed() -> int:
    """The first attempt and one per step of the retry schedule (8 by default)."""
    return len(conf.retry_schedule()) + 1


def attempt_title(number: int) -> str:
    """ "Attempt 2 of 8"; past the schedule (a Retry now after the last one) "Attempt 9"."""
    allowed = attempts_allowed()
    return f"Attempt {number} of {allowed}" if number <= allowed else f"Attempt {number}"


def timeline(delivery: Delivery) -> list[AttemptView]:
    """The delivery's attempts, newest first."""
    return [
        AttemptView(
            title=attempt_title(attempt.number),
            attempt=attempt,
            url=mask(attempt.url),
            request_headers=shown_headers(attempt.request_headers),
            request_body=_capped(mask(attempt.request_body)),
            response_headers=shown_headers(attempt.response_headers),
            response_body=_capped(mask(attempt.response_body)),
            error=mask(attempt.error),
        )
        for attempt in delivery.attempt_log.order_by("-started_at", "-id")
    ]


def shown_headers(headers) -> list[tuple[str, str]]:
    """Header pairs for display: secret-looking names (Authorization, X-Api-Key,
    webhook-signature) show ******** and secret-looking values inside others are masked, as
    shown_header_list does for a postback's headers, unless POSTBACK_MASK_SECRETS is off."""
    pairs = [(str(name), str(value)) for name, value in (headers or {}).items()]
    if not masking_on():
        return pairs
    return [
        (name, MASK if is_secret_name(name) and value else mask(value)) for name, value in pairs
    ]


def _capped(text: str) -> str:
    return Truncator(text).chars(BODY_SHOWN_CHARS) if text else ""


# --- Retry now and Resend -------------------------------------------------------------------


def delivery_page_urls(model_admin) -> list:
    def wrap(view):
        return model_admin.admin_site.admin_view(partial(view, model_admin=model_admin))

    return [
        path("<int:object_id>/retry/", wrap(retry_view), name="postbacks_delivery_retry"),
        path("<int:object_id>/resend/", wrap(resend_view), name="postbacks_delivery_resend"),
    ]


def buttons(request, delivery: Delivery, model_admin) -> list[dict]:
    """The buttons the delivery page shows this user: each with its link, or the reason it is
    not offered now."""
    if not model_admin.has_retry_permission(request):
        return []
    shown = []
    if retry_offered(delivery):
        shown.append(_button("Retry now", "retry", delivery, queue.retry_refusal(delivery)))
    if resend_offered(delivery):
        shown.append(_button("Resend", "resend", delivery, resend_refusal(delivery)))
    return shown


def retry_offered(delivery: Delivery) -> bool:
    """Open and failed deliveries (not test sends) may be retried."""
    return not delivery.is_test and delivery.state != DeliveryState.SUCCESS


def resend_offered(delivery: Delivery) -> bool:
    """Finished deliveries (delivered or failed, not test sends) may be resent."""
    return not delivery.is_test and delivery.is_finished


def _button(label: str, action: str, delivery: Delivery, refusal: str) -> dict:
    url = reverse(f"admin:postbacks_delivery_{action}", args=[delivery.pk])
    return {"label": label, "url": url, "refusal": refusal}


def retry_view(request, object_id: int, model_admin):
    """Confirm, then make the delivery due now and queue it (queue.retry_deliveries)."""
    delivery = _delivery_for_action(request, object_id, model_admin, retry_offered)
    refusal = queue.retry_refusal(delivery)
    if request.method == "POST" and not refusal:
        if queue.retry_deliveries(Delivery.objects.filter(pk=delivery.pk)):
            messages.success(
                request, "Queued for a retry now: the attempt shows on this page in a moment."
            )
        else:  # a worker claimed it between the page and the click
            messages.warning(request, queue.retry_refusal(Delivery.objects.get(pk=delivery.pk)))
        return _back(delivery)
    return _confirm(
        request,
        model_admin,
        delivery,
        title="Retry this delivery now?",
        action="Yes, retry now",
        refusal=refusal,
        explanation=(
            "The next attempt is made at once instead of at its scheduled time, and logged on "
            "this delivery's timeline as one more attempt. A failed delivery gets one more "
            "attempt; if it fails again it stays failed."
        ),
    )


def resend_view(request, object_id: int, model_admin):
    """Confirm, then create a new delivery of the same status change with the same id."""
    delivery = _delivery_for_action(request, object_id, model_admin, resend_offered)
    refusal = resend_refusal(delivery)
    if request.method == "POST" and not refusal:
        try:
            copy = resend(delivery)
        except CannotResend as exc:  # changed between the page and the click
            messages.warning(request, str(exc))
            return _back(delivery)
        messages.success(
            request,
            f"Resent as a new delivery with the same id ({copy.sent_id}): this is its page.",
        )
        return _back(copy)
    return _confirm(
        request,
        model_admin,
        delivery,
        title="Resend this delivery?",
        action="Yes, resend",
        refusal=refusal,
        explanation=(
            "A new delivery of the same postback and status change is sent now and logged on "
            f"its own page, linked to this one. It carries this delivery's id "
            f"(X-Postback-Id {delivery.sent_id}, also {{deliveryId}}), so a receiver that "
            "already has it can drop the copy. The request is rendered again from the "
            "postback's settings as they are now."
        ),
    )


def _delivery_for_action(request, object_id, model_admin, offered) -> Delivery:
    if not model_admin.has_retry_permission(request):
        raise PermissionDenied
    delivery = get_object_or_404(
        Delivery.objects.select_related("postback__affiliate", "conversion", "resend_of"),
        pk=object_id,
    )
    if not offered(delivery):
        raise PermissionDenied
    return delivery


def _back(delivery: Delivery):
    return redirect("admin:postbacks_delivery_change", delivery.pk)


def _confirm(request, model_admin, delivery, *, title, action, refusal, explanation):
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Delivery._meta,
        "title": title,
        "delivery": delivery,
        "action": action,
        "refusal": refusal,
        "explanation": explanation,
        "change_url": reverse("admin:postbacks_delivery_change", args=[delivery.pk]),
        "now": timezone.now(),
    }
    return TemplateResponse(request, "admin/postbacks/delivery/confirm_action.html", context)
