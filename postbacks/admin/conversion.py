"""The conversion's admin page, extended with its postbacks: per status change, each postback
of the affiliate and what happened (postbacks/explain.py), and a link to the log.

`conversions` knows nothing of postbacks; this layer adds them to its page.
"""

from django.contrib import admin

from conversions.admin import ConversionAdmin
from conversions.models import Conversion
from postbacks.admin.html import log_link, state_badge
from postbacks.explain import delivery_note, status_history


class ConversionWithDeliveriesAdmin(ConversionAdmin):
    change_form_template = "admin/postbacks/conversion_change_form.html"
    # The status history with its postbacks replaces the plain status history inline.
    inlines = []
    readonly_fields = [*ConversionAdmin.readonly_fields, "deliveries_link"]
    fieldsets = [
        *ConversionAdmin.fieldsets[:-1],
        ("Record", {"fields": [*ConversionAdmin.fieldsets[-1][1]["fields"], "deliveries_link"]}),
    ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        conversion = self.get_object(request, object_id)
        if conversion is not None:
            extra_context = {"postback_history": _rows(conversion), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="postback log")
    def deliveries_link(self, conversion):
        return log_link(
            "All deliveries of this conversion (test sends too)",
            conversion__id__exact=conversion.pk,
        )


def _rows(conversion: Conversion) -> list:
    """The history as the template shows it: each change with its outcomes, the deliveries
    with their badge and note."""
    return [
        {
            "change": entry.change,
            "outcomes": [
                {
                    "outcome": outcome,
                    "deliveries": [
                        (delivery, state_badge(delivery.state), delivery_note(delivery))
                        for delivery in outcome.deliveries
                    ],
                }
                for outcome in entry.outcomes
            ],
        }
        for entry in status_history(conversion)
    ]


admin.site.unregister(Conversion)
admin.site.register(Conversion, ConversionWithDeliveriesAdmin)
