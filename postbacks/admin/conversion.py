"""The conversion's admin page, extended with the postbacks sent for it.

`conversions` knows nothing of postbacks; this layer adds the deliveries to its page.
"""

from django.contrib import admin

from conversions.admin import ConversionAdmin
from conversions.models import Conversion
from postbacks.admin.html import recent_deliveries


class ConversionWithDeliveriesAdmin(ConversionAdmin):
    readonly_fields = [*ConversionAdmin.readonly_fields, "deliveries_link"]
    fieldsets = [
        *ConversionAdmin.fieldsets[:-1],
        ("Record", {"fields": [*ConversionAdmin.fieldsets[-1][1]["fields"], "deliveries_link"]}),
    ]

    @admin.display(description="Postbacks sent (newest first)")
    def deliveries_link(self, conversion):
        return recent_deliveries(
            conversion.deliveries.all(), show="postback", conversion__id__exact=conversion.pk
        )


admin.site.unregister(Conversion)
admin.site.register(Conversion, ConversionWithDeliveriesAdmin)
