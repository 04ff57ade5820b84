"""The postback log in the admin: deliveries with their attempts, read-only, with retry; the
dashboard page hangs off its URLs (pages.py)."""

import contextlib
import uuid

from django.contrib import admin, messages
from django.db.models import Q
from django.utils.html import format_html
from django.utils.text import Truncator

from conversions.models import Conversion
from postbacks.admin import pages
from postbacks.admin.html import change_link, state_badge
from postbacks.delivery import queue
from postbacks.models import Delivery, DeliveryAttempt
from trackdesk.masking import mask, mask_headers, masking_on

LOG_TITLE = "Affiliate postback tracking log"
BODY_PREVIEW_CHARS = 2000
WRAP = "white-space: pre-wrap; word-break: break-all; margin: 0"


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
        headers = attempt.request_headers or {}
        if masking_on():
            headers = mask_headers(headers)
        lines = "".join(f"\n{name}: {value}" for name, value in headers.items())
        body = f"\n\n{attempt.request_body}" if attempt.request_body else ""
        return pre(mask(attempt.url + body) + lines)

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
                    "waiting_for_link",
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
        return pages.delivery_urls(self) + super().get_urls()

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
        selected = Delivery.objects.filter(pk__in=queryset.values("pk"))
        sending = queue.being_sent(selected).count()
        queued = queue.retry_deliveries(selected)
        skipped = max(queryset.count() - queued - sending, 0)  # a claim may end meanwhile
        message = f"Queued {queued} deliver{'y' if queued == 1 else 'ies'} for a retry now."
        if sending:
            message += (
                f" {sending} {'is' if sending == 1 else 'are'} being sent now, left alone: "
                "the outcome appears in the log in a moment."
            )
        if skipped:
            message += f" {skipped} successful or test deliveries left alone."
        self.message_user(request, message, messages.SUCCESS if queued else messages.WARNING)

    @admin.display(description="last error")
    def last_error_text(self, delivery):
        return mask(delivery.last_error) or "-"

    @admin.display(description="waiting for")
    def waiting_for_link(self, delivery):
        """The earlier status change's delivery this one is sent after (in order per
        conversion and postback), or "-" when it may go."""
        earlier = delivery.waiting_for()
        return "-" if earlier is None else change_link(earlier, f"{earlier.status}: {earlier}")

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
