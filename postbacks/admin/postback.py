"""Model admins for postback configuration: Postback (its extra pages wired in from pages.py
and the assistant), the tracking settings page and endpoint health."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from postbacks.admin import pages
from postbacks.admin.forms import PostbackForm
from postbacks.admin.html import change_link, recent_deliveries, state_badge
from postbacks.assistant.admin import assistant_urls
from postbacks.delivery import breaker
from postbacks.delivery.testsend import describe, send_test
from postbacks.models import (
    Delivery,
    DeliveryState,
    EndpointHealth,
    Postback,
    TrackingSettings,
)
from postbacks.money import missing_rate_warnings
from postbacks.transport import signing
from trackdesk.admin import DeactivateInsteadOfDeleteMixin
from trackdesk.masking import shown_header_list

# Behind every test send: the form's button, the list action and the walkthrough's rows.
TEST_SEND_PERMISSION = "postbacks.send_test_postback"


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
                    "headers",
                ]
            },
        ),
        ("Signing", {"fields": ["signing"]}),
        ("Recent deliveries", {"fields": ["recent_deliveries"]}),
    ]

    def get_urls(self):
        return assistant_urls(self) + pages.postback_urls(self) + super().get_urls()

    def get_fieldsets(self, request, obj=None):
        # Signing and deliveries exist only for a saved postback.
        fieldsets = self.fieldsets if obj else self.fieldsets[:-2]
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        # View-only users see the headers with secret-looking values masked.
        swap = {"headers": "masked_headers"}
        return [
            (title, {**opts, "fields": [swap.get(f, f) for f in opts["fields"]]})
            for title, opts in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "masked_headers"]

    @admin.display(description="Request headers")
    def masked_headers(self, postback):
        shown = shown_header_list(postback.headers)
        return (
            format_html_join(
                "", "<div><code>{}: {}</code></div>", ((h["name"], h["value"]) for h in shown)
            )
            or "-"
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.active and obj.paused_reason:
            breaker.resume(obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # After the offers are saved: they decide which currencies are in use. Saved anyway.
        for warning in missing_rate_warnings(form.instance):
            messages.warning(request, warning)

    def has_send_test_permission(self, request):
        return request.user.has_perm(TEST_SEND_PERMISSION)

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
