"""Alerts in the admin: the read-only history (who acknowledged what, when; to whom it was
e-mailed) and the Acknowledge button of the admin index banner (templates/admin/index.html)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from postbacks import alerts
from postbacks.models import Alert
from trackdesk.admin import ReadOnlyAdminMixin
from trackdesk.masking import mask


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only for everyone: alerts are raised by postbacks/alerts.py and closed on the index."""

    list_display = ["created", "kind", "about", "mailed_to", "acknowledged_at", "acknowledged_by"]
    list_filter = ["kind", ("acknowledged_at", admin.EmptyFieldListFilter), "created"]
    list_select_related = ["postback__affiliate", "acknowledged_by"]
    fields = [
        "kind",
        "about",
        "endpoint",
        "summary",
        "error",
        "created",
        "mailed_at",
        "mailed_to",
        "mail_error",
        "acknowledged_at",
        "acknowledged_by",
    ]
    readonly_fields = fields

    def get_urls(self):
        acknowledge = self.admin_site.admin_view(require_POST(self.acknowledge_view))
        urls = [
            path("<int:alert_id>/acknowledge/", acknowledge, name="postbacks_alert_acknowledge")
        ]
        return urls + super().get_urls()

    @admin.display(description="about")
    def about(self, alert):
        if alert.postback_id is None:
            return alert.endpoint
        url = reverse("admin:postbacks_postback_change", args=[alert.postback_id])
        return format_html('<a href="{}">{}</a> ({})', url, alert.postback, alert.endpoint)

    @admin.display(description="last error")
    def error(self, alert):
        return mask(alert.last_error) or "-"

    def acknowledge_view(self, request, alert_id):
        if not request.user.has_perm("postbacks.acknowledge_alert"):
            raise PermissionDenied
        if alerts.acknowledge(alert_id, request.user):
            messages.success(request, "Alert acknowledged: it no longer shows on the home page.")
        else:
            messages.info(request, "Someone had acknowledged that alert already.")
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = reverse("admin:index")
        return redirect(back)
