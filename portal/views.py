"""The portal's pages for an affiliate user: overview (tracking links), conversions, the
postback log with its attempts, test send, account. Every query goes through access.own."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from affiliates.links import tracking_url
from conversions.models import Conversion
from postbacks.delivery.testsend import describe, send_test
from postbacks.models import Delivery, DeliveryAttempt, Postback, TrackingSettings
from trackdesk.masking import MASK, is_secret_name, mask_text

from .access import affiliate_required, current_affiliate, own, runnable_offers
from .filters import ConversionFilter, DeliveryFilter

PAGE_SIZE = 50
BODY_SHOWN_CHARS = 4000


def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _filtered(filterset, queryset):
    """The filtered rows; none for an invalid filter (its errors show above the table)."""
    if not filterset.is_bound:
        return queryset
    return filterset.qs if filterset.is_valid() else queryset.none()


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@affiliate_required
def overview(request):
    """The affiliate's tracking link for each offer they can run, ready to copy."""
    affiliate = current_affiliate(request)
    links = [
        {"offer": offer, "url": tracking_url(affiliate, offer, request)}
        for offer in runnable_offers(affiliate)
    ]
    recent = own(Delivery.objects.select_related("postback"), request, "postback__affiliate")
    return render(
        request,
        "portal/overview.html",
        {
            "affiliate": affiliate,
            "links": links,
            "postbacks": own(Postback.objects.all(), request).order_by("name"),
            "recent": recent[:5],
        },
    )


@affiliate_required
def conversions(request):
    """Their own conversions, filterable, newest first."""
    affiliate = current_affiliate(request)
    queryset = own(Conversion.objects.select_related("offer", "conversion_type"), request).order_by(
        "-created"
    )
    filterset = ConversionFilter(request.GET or None, queryset, runnable_offers(affiliate))
    return render(
        request,
        "portal/conversions.html",
        {
            "filter": filterset,
            "page": _page(request, _filtered(filterset, queryset)),
            "query": _query_without_page(request),
            "show_sale_amount": TrackingSettings.load().allow_revenue_parameters,
        },
    )


@affiliate_required
def log(request):
    """The deliveries of their own postbacks, newest first."""
    queryset = own(
        Delivery.objects.select_related("postback", "conversion"), request, "postback__affiliate"
    ).order_by("-created", "-id")
    filterset = DeliveryFilter(request.GET or None, queryset, current_affiliate(request))
    return render(
        request,
        "portal/log.html",
        {
            "filter": filterset,
            "page": _page(request, _filtered(filterset, queryset)),
            "query": _query_without_page(request),
        },
    )


@dataclass
class ShownAttempt:
    """An attempt as the affiliate sees it: always masked, no worker or node names."""

    number: int
    started_at: object
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: str
    response_status: int | None
    response_headers: list[tuple[str, str]]
    response_body: str
    duration_ms: int | None
    error: str


def shown_attempt(attempt: DeliveryAttempt) -> ShownAttempt:
    return ShownAttempt(
        number=attempt.number,
        started_at=attempt.started_at,
        method=attempt.method,
        url=mask_text(attempt.url),
        request_headers=_headers(attempt.request_headers),
        request_body=_capped(mask_text(attempt.request_body)),
        response_status=attempt.response_status,
        response_headers=_headers(attempt.response_headers),
        response_body=_capped(mask_text(attempt.response_body)),
        duration_ms=attempt.duration_ms,
        error=mask_text(attempt.error),
    )


def _headers(headers) -> list[tuple[str, str]]:
    pairs = [(str(name), str(value)) for name, value in (headers or {}).items()]
    return [(n, MASK if is_secret_name(n) and v else mask_text(v)) for n, v in pairs]


def _capped(text: str) -> str:
    return text[:BODY_SHOWN_CHARS] + "…" if len(text) > BODY_SHOWN_CHARS else text


@affiliate_required
def delivery(request, uid):
    """One delivery of their own with its attempts, newest first."""
    found = get_object_or_404(
        own(
            Delivery.objects.select_related("postback", "conversion__offer"),
            request,
            "postback__affiliate",
        ),
        uid=uid,
    )
    attempts = [shown_attempt(a) for a in found.attempt_log.order_by("-started_at", "-id")]
    return render(request, "portal/delivery.html", {"delivery": found, "attempts": attempts})


def test_sends_left(affiliate) -> int:
    """How many test sends the affiliate may make now: PORTAL_TEST_SENDS_PER_HOUR minus the
    test sends of their postbacks in the last hour (by anyone)."""
    since = timezone.now() - timedelta(hours=1)
    used = Delivery.objects.filter(
        postback__affiliate=affiliate, is_test=True, created__gte=since
    ).count()
    return max(settings.PORTAL_TEST_SENDS_PER_HOUR - used, 0)


@affiliate_required
@require_http_methods(["GET", "HEAD", "POST"])
def test_send(request, pk):
    """GET: what a test send does; POST: send the postback now with the sample conversion
    and show the result in the log."""
    postback = get_object_or_404(own(Postback.objects.all(), request), pk=pk)
    affiliate = current_affiliate(request)
    left = test_sends_left(affiliate)
    if request.method == "POST":
        if left <= 0:
            messages.error(
                request,
                f"You have used your {settings.PORTAL_TEST_SENDS_PER_HOUR} test sends for this "
                "hour. Try again later: each one counts for an hour.",
            )
            return redirect("portal:test_send", pk=postback.pk)
        sent = send_test(postback)
        messages.success(request, f"Test postback sent: {describe(sent)}.")
        return redirect("portal:delivery", uid=sent.uid)
    return render(
        request,
        "portal/test_send.html",
        {
            "postback": postback,
            "left": left,
            "per_hour": settings.PORTAL_TEST_SENDS_PER_HOUR,
        },
    )


@affiliate_required
def account(request):
    affiliate = current_affiliate(request)
    return render(
        request,
        "portal/account.html",
        {
            "affiliate": affiliate,
            "membership": request.user.affiliate_user,
            "colleagues": affiliate.portal_users.select_related("user").order_by("user__username"),
        },
    )
