"""The postback log in the admin: deliveries with their attempts, read-only, with retry; the
dashboard page hangs off its URLs (pages.py)."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from postbacks.admin import delivery_page, pages
from postbacks.admin.html import change_link
from postbacks.admin.log_list import LogListMixin
from postbacks.delivery import queue
from postbacks.models import Delivery
from trackdesk.admin import ReadOnlyAdminMixin
from trackdesk.masking import mask


@admin.register(Delivery)
class DeliveryAdmin(LogListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The postback log: read-only for everyone; retry needs its own permission. The list
    page (columns, search, export) is LogListMixin's (log_list.py)."""

    actions = ["retry_now"]
    # The attempts are the page's timeline (delivery_page.py, delivery/change_form.html).
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "uid",
                    "id_sent",
                    "postback",
                    "conversion",
                    "status",
                    "is_test",
                    "resend_links",
                ]
            },
        ),
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

    def get_urls(self):
        return (
            pages.delivery_urls(self) + delivery_page.delivery_page_urls(self) + super().get_urls()
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        delivery = self.get_object(request, object_id)
        if delivery is not None:
            extra_context = {
                "attempt_timeline": delivery_page.timeline(delivery),
                "delivery_buttons": delivery_page.buttons(request, delivery, self),
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="ID sent (X-Postback-Id)")
    def id_sent(self, delivery):
        if delivery.original_uid is None:
            return "the delivery ID"
        return f"{delivery.sent_id}, the original's (receivers drop duplicates by it)"

    @admin.display(description="resend")
    def resend_links(self, delivery):
        """Both ways: the delivery this one resends, and the resends of this one."""
        if delivery.resend_of_id:
            return format_html("Resend of {}", change_link(delivery.resend_of))
        if delivery.original_uid:
            return f"Resend of delivery {delivery.original_uid} (pruned from the log)"
        resends = list(delivery.resends.order_by("created", "pk"))
        if not resends:
            return "-"
        links = format_html_join(", ", "{}", ((change_link(r),) for r in resends))
        return format_html("Resent as {}", links)

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
