"""Model admins for postback configuration: Postback (its extra pages wired in from pages.py
and the assistant), the tracking settings page and endpoint health."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from postbacks import audit
from postbacks.admin import pages
from postbacks.admin.forms import STATUS_VALUE_FIELDS, STATUS_VALUES_HELP, PostbackForm
from postbacks.admin.html import audit_list, change_link, recent_deliveries
from postbacks.admin.postback_display import VIEW_ONLY_FIELDS, PostbackDisplayMixin
from postbacks.assistant.admin import assistant_urls
from postbacks.delivery import breaker
from postbacks.delivery.testsend import describe, send_test
from postbacks.models import (
    AuditSource,
    DeliveryState,
    EndpointHealth,
    Postback,
    TrackingSettings,
)
from postbacks.money import missing_rate_warnings
from postbacks.transport import signing
from trackdesk.admin import DeactivateInsteadOfDeleteMixin

# Behind every test send: the form's button, the list action and the walkthrough's rows.
TEST_SEND_PERMISSION = "postbacks.send_test_postback"
AUDIT_ROWS = 50


@admin.register(Postback)
class PostbackAdmin(PostbackDisplayMixin, DeactivateInsteadOfDeleteMixin, admin.ModelAdmin):
    # The list, its actions and the view-only page: postback_display.py.
    form = PostbackForm
    save_on_top = True
    autocomplete_fields = ["affiliate"]
    filter_horizontal = ["offers", "conversion_types"]
    radio_fields = {"scope": admin.VERTICAL, "method": admin.HORIZONTAL}
    readonly_fields = ["recent_deliveries", "paused_reason", "signing", "change_history"]
    actions = [
        *DeactivateInsteadOfDeleteMixin.actions,
        "send_test_with_sample",
        "rotate_signing_secret",
        "turn_signing_off",
    ]
    inactive_means = "An inactive postback sends nothing."
    fieldsets = [
        ("Target", {"fields": ["name", "affiliate", "active", "paused_reason"]}),
        ("Triggers", {"fields": ["scope", "offers", "conversion_types", "statuses"]}),
        (
            "Value sent as {status}",
            {"fields": STATUS_VALUE_FIELDS, "description": STATUS_VALUES_HELP},
        ),
        (
            "Request",
            {
                "fields": [
                    "currency",
                    "method",
                    "url",
                    "body_format",
                    "body_template",
                    "headers",
                ]
            },
        ),
        ("Signing", {"fields": ["signing"]}),
        ("Recent deliveries", {"fields": ["recent_deliveries"]}),
        ("Change history", {"fields": ["change_history"]}),
    ]

    def get_urls(self):
        return assistant_urls(self) + pages.postback_urls(self) + super().get_urls()

    def get_fieldsets(self, request, obj=None):
        # Signing, deliveries and the change history exist only for a saved postback.
        fieldsets = self.fieldsets if obj else self.fieldsets[:-3]
        if not (obj and obj.paused_reason):  # the reason shows while it is paused only
            fieldsets = without_fields(fieldsets, {"paused_reason"})
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        # View-only users see the headers with secret-looking values masked, and the status
        # values as saved (the rows are form fields).
        fieldsets = without_fields(fieldsets, set(STATUS_VALUE_FIELDS[1:]))
        swap = {**VIEW_ONLY_FIELDS, STATUS_VALUE_FIELDS[0]: VIEW_ONLY_FIELDS["status_map"]}
        return [
            (title, {**opts, "fields": [swap.get(f, f) for f in opts["fields"]]})
            for title, opts in fieldsets
        ]

    def save_model(self, request, obj, form, change):
        # The form changed obj in memory already; the stored row is the "before" (audit.py).
        form.audit_before = audit.stored_snapshot(obj.pk) if change else {}
        super().save_model(request, obj, form, change)
        if obj.active and obj.paused_reason:
            breaker.resume(obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        before = getattr(form, "audit_before", {})
        audit.record(form.instance, before, user=request.user, source=AuditSource.ADMIN)
        # After the offers are saved: they decide which currencies are in use. Saved anyway.
        for warning in missing_rate_warnings(form.instance):
            messages.warning(request, warning)

    def has_send_test_permission(self, request):
        return request.user.has_perm(TEST_SEND_PERMISSION)

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

    @admin.display(description="Changes (newest first)")
    def change_history(self, postback):
        return audit_list(postback.audit_log.all()[:AUDIT_ROWS])

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


def without_fields(fieldsets, names: set) -> list:
    return [
        (title, {**opts, "fields": [f for f in opts["fields"] if f not in names]})
        for title, opts in fieldsets
    ]


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
