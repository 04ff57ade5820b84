"""Admin for postbacks, the tracking settings page and the read-only postback tracking log."""

import contextlib
import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Q, Subquery
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.text import Truncator

from affiliates.admin import DeactivateInsteadOfDeleteMixin
from conversions.models import Conversion

from . import admin_views, breaker, dispatch, signing
from .admin_html import change_link, recent_deliveries, state_badge
from .assistant_admin import assistant_urls
from .forms import PostbackForm
from .masking import mask
from .models import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    EndpointHealth,
    Postback,
    TrackingSettings,
)
from .testsend import describe, send_test

LOG_TITLE = "Affiliate postback tracking log"
BODY_PREVIEW_CHARS = 2000
WRAP = "white-space: pre-wrap; word-break: break-all; margin: 0"


@admin.register(Postback)
class PostbackAdmin(DeactivateInsteadOfDeleteMixin, admin.ModelAdmin):
    form = PostbackForm
    list_display = [
        "name",
        "affiliate",
        "scope",
        "method",
        "currency",
        "active",
        "updated",
        "last_delivery",
    ]
    list_filter = ["active", "affiliate", "method", "scope"]
    search_fields = ["name", "affiliate__name", "=id"]
    list_select_related = ["affiliate"]
    save_on_top = True
    autocomplete_fields = ["affiliate"]
    filter_horizontal = ["offers", "conversion_types"]
    radio_fields = {"scope": admin.VERTICAL, "method": admin.HORIZONTAL}
    readonly_fields = ["recent_deliveries", "paused_reason", "signing"]
    actions = ["send_test_with_sample", "rotate_signing_secret", "turn_signing_off"]
    fieldsets = [
        ("Target", {"fields": ["name", "affiliate", "active", "paused_reason"]}),
        ("Triggers", {"fields": ["scope", "offers", "conversion_types", "statuses"]}),
        (
            "Request",
            {
                "fields": [
                    "currency",
                    "method",
                    "url",
                    "body_format",
                    "body_template",
                    "status_map",
                ]
            },
        ),
        ("Signing", {"fields": ["signing"]}),
        ("Recent deliveries", {"fields": ["recent_deliveries"]}),
    ]

    def get_urls(self):
        return assistant_urls(self) + admin_views.postback_urls(self) + super().get_urls()

    def get_fieldsets(self, request, obj=None):
        # Signing and deliveries exist only for a saved postback.
        return self.fieldsets if obj else self.fieldsets[:-2]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.active and obj.paused_reason:
            breaker.resume(obj)

    def has_send_test_permission(self, request):
        return request.user.has_perm(admin_views.TEST_SEND_PERMISSION)

    def get_queryset(self, request):
        last = Delivery.objects.filter(postback=OuterRef("pk")).order_by("-created", "-pk")
        return (
            super()
            .get_queryset(request)
            .annotate(last_delivery_state=Subquery(last.values("state")[:1]))
        )

    @admin.display(description="last delivery", ordering="last_delivery_state")
    def last_delivery(self, postback):
        return state_badge(postback.last_delivery_state)

    @admin.display(description="Deliveries (newest first)")
    def recent_deliveries(self, postback):
        return recent_deliveries(
            postback.deliveries.all(), show="conversion", postback__id__exact=postback.pk
        )

    @admin.action(description="Send test postback (sample conversion)", permissions=["send_test"])
    def send_test_with_sample(self, request, queryset):
        for postback in queryset.select_related("affiliate"):
            delivery = send_test(postback)
            self.message_user(
                request,
                format_html(
                    "{}: test postback {}. {}",
                    postback,
                    describe(delivery),
                    change_link(delivery, "Open in the log"),
                ),
                messages.SUCCESS if delivery.state == DeliveryState.SUCCESS else messages.WARNING,
            )

    @admin.display(description="Signing")
    def signing(self, postback):
        return signing.describe(postback)

    @admin.action(description="Sign requests: new signing secret", permissions=["change"])
    def rotate_signing_secret(self, request, queryset):
        """Shows the new secrets on the page this POST answers, once: never in a message,
        which would carry them in the (signed, not encrypted) messages cookie."""
        rotated = []
        for postback in queryset.select_related("affiliate").order_by("pk"):
            rotated.append((postback, signing.rotate(postback)))
            self.log_change(request, postback, "New signing secret issued.")
        context = {
            **self.admin_site.each_context(request),
            "title": "New signing secrets",
            "opts": self.opts,
            "rotated": rotated,
            "changelist_url": reverse("admin:postbacks_postback_changelist"),
        }
        response = TemplateResponse(request, "admin/postbacks/signing_secret.html", context)
        add_never_cache_headers(response)  # no copy in the browser's cache or history
        return response

    @admin.action(description="Stop signing requests", permissions=["change"])
    def turn_signing_off(self, request, queryset):
        for postback in queryset:
            signing.turn_off(postback)
        self.message_user(request, f"Signing turned off for {queryset.count()} postback(s).")


@admin.register(EndpointHealth)
class EndpointHealthAdmin(admin.ModelAdmin):
    """Read-only: which endpoints are failing, since when, and whether they are backed off."""

    list_display = [
        "host",
        "consecutive_failures",
        "first_failure_at",
        "last_failure_at",
        "opened_until",
        "probing",
        "last_error",
    ]
    search_fields = ["host"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(consecutive_failures__gt=0)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TrackingSettings)
class TrackingSettingsAdmin(admin.ModelAdmin):
    """One settings page: the list goes straight to the single row, created when missing."""

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return redirect("admin:postbacks_trackingsettings_change", TrackingSettings.load().pk)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class HttpStatusClassFilter(admin.SimpleListFilter):
    title = "HTTP status class"
    parameter_name = "http"
    RANGES = {"2xx": (200, 299), "3xx": (300, 399), "4xx": (400, 499), "5xx": (500, 599)}

    def lookups(self, request, model_admin):
        return [*((name, name) for name in self.RANGES), ("none", "No response")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(last_status_code__isnull=True)
        if self.value() in self.RANGES:
            return queryset.filter(last_status_code__range=self.RANGES[self.value()])
        return queryset


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    verbose_name_plural = "attempts (newest first)"
    ordering = ["-started_at", "-id"]
    fields = [
        "started_at",
        "number",
        "method",
        "sent",
        "response_status",
        "response",
        "duration_ms",
        "error_text",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        # Attempts are part of the delivery record: whoever may see the log sees them.
        return request.user.has_perm("postbacks.view_delivery")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="full URL and body sent")
    def sent(self, attempt):
        return pre(
            mask(attempt.url + (f"\n\n{attempt.request_body}" if attempt.request_body else ""))
        )

    @admin.display(description="response body")
    def response(self, attempt):
        return pre(mask(attempt.response_body))

    @admin.display(description="error")
    def error_text(self, attempt):
        return mask(attempt.error) or "-"


def pre(text: str):
    if not text:
        return "-"
    return format_html('<pre style="{}">{}</pre>', WRAP, Truncator(text).chars(BODY_PREVIEW_CHARS))


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The postback tracking log: read-only for everyone; retry needs its own permission."""

    list_display = [
        "created",
        "state_badge",
        "conversion_link",
        "affiliate",
        "offer",
        "conversion_type",
        "status",
        "postback_link",
        "last_status_code",
        "last_duration_ms",
        "is_test",
    ]
    list_filter = [
        "state",
        "postback__affiliate",
        "postback",
        HttpStatusClassFilter,
        "is_test",
        "created",
    ]
    # Searched by get_search_results below: exact values on indexes, so it stays fast on
    # millions of rows; "url:" searches the URLs sent (a scan: slow on a large log).
    search_fields = ["=conversion__transaction_id"]
    search_help_text = (
        "Exact click ID (cid), affiliate click ID (affS1), transaction ID, conversion ID or "
        "delivery ID. Start with url: to search the URLs sent (slower on a large log)."
    )
    list_select_related = [
        "postback__affiliate",
        "conversion__offer",
        "conversion__conversion_type",
    ]
    show_full_result_count = False
    list_per_page = 50

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.lower().startswith("url:"):
            part = term[4:].strip()
            return queryset.filter(attempt_log__url__icontains=part).distinct(), True
        found = Conversion.objects.order_by().values_list("pk", flat=True)
        conversions = found.filter(transaction_id=term).union(
            found.filter(click__cid=term), found.filter(click__aff_s1=term)
        )
        match = Q(conversion_id__in=list(conversions[:1000]))
        with contextlib.suppress(ValueError):
            key = uuid.UUID(term)
            match |= Q(conversion_id=key) | Q(uid=key)
        return queryset.filter(match), False

    actions = ["retry_now"]
    inlines = [AttemptInline]
    fieldsets = [
        (None, {"fields": ["uid", "postback", "conversion", "status", "is_test"]}),
        (
            "Outcome",
            {
                "fields": [
                    "state",
                    "attempts",
                    "last_status_code",
                    "last_duration_ms",
                    "last_error_text",
                    "created",
                    "next_attempt_at",
                    "finished_at",
                ]
            },
        ),
    ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": LOG_TITLE, **(extra_context or {})})

    def get_urls(self):
        return admin_views.delivery_urls(self) + super().get_urls()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_retry_permission(self, request):
        return request.user.has_perm("postbacks.retry_delivery")

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request, queryset):
        # A plain queryset: the changelist's joins and DISTINCT do not mix with FOR UPDATE.
        queued = dispatch.retry_deliveries(Delivery.objects.filter(pk__in=queryset.values("pk")))
        skipped = queryset.count() - queued
        message = f"Queued {queued} deliver{'y' if queued == 1 else 'ies'} for a retry now."
        if skipped:
            message += f" {skipped} successful or test deliveries left alone."
        self.message_user(request, message, messages.SUCCESS if queued else messages.WARNING)

    @admin.display(description="last error")
    def last_error_text(self, delivery):
        return mask(delivery.last_error) or "-"

    @admin.display(description="state", ordering="state")
    def state_badge(self, delivery):
        return state_badge(delivery.state)

    @admin.display(description="conversion ID", ordering="conversion")
    def conversion_link(self, delivery):
        if delivery.conversion is None:
            return "sample (test)"
        return change_link(delivery.conversion, delivery.conversion_id)

    @admin.display(description="affiliate", ordering="postback__affiliate__name")
    def affiliate(self, delivery):
        return delivery.postback.affiliate

    @admin.display(description="offer", ordering="conversion__offer__name")
    def offer(self, delivery):
        return delivery.conversion.offer if delivery.conversion else "-"

    @admin.display(description="conversion type")
    def conversion_type(self, delivery):
        return delivery.conversion.conversion_type if delivery.conversion else "-"

    @admin.display(description="postback", ordering="postback__name")
    def postback_link(self, delivery):
        return change_link(delivery.postback)
