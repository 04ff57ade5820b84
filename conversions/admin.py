"""Admin for clicks, conversion types, conversions (saved through the service) and rates, and
the offer's page extended with its payout rules."""

from decimal import Decimal

from django import forms
from django.contrib import admin

from affiliates.admin import OfferAdmin
from affiliates.models import Offer
from trackdesk.currencies import format_amount

from . import services
from .models import (
    Click,
    Conversion,
    ConversionStatusChange,
    ConversionType,
    ExchangeRate,
    PayoutRule,
)

AFF_SUBS = ["aff_s1", "aff_s2", "aff_s3", "aff_s4", "aff_s5"]


@admin.register(Click)
class ClickAdmin(admin.ModelAdmin):
    """Clicks come from the tracking link; only the affiliate's sub ids may be corrected."""

    list_display = ["cid", "affiliate", "offer", "aff_s1", "ip", "created"]
    list_filter = ["affiliate", "offer"]
    search_fields = ["=cid", "=aff_s1", "^ip"]
    search_help_text = "Exact click ID or affS1, or the start of an IP address."
    date_hierarchy = "created"
    list_select_related = ["affiliate", "offer"]
    readonly_fields = ["cid", "affiliate", "offer", "ip", "user_agent", "referrer", "created"]
    fieldsets = [
        (None, {"fields": ["cid", "affiliate", "offer", "created"]}),
        ("Affiliate's sub IDs", {"fields": AFF_SUBS}),
        ("Visitor", {"fields": ["ip", "user_agent", "referrer"]}),
    ]

    def has_add_permission(self, request):
        return False


@admin.register(ConversionType)
class ConversionTypeAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


class StatusHistoryInline(admin.TabularInline):
    model = ConversionStatusChange
    verbose_name = "status change"
    verbose_name_plural = "status history"
    fields = ["created", "from_status", "to_status", "source"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ConversionForm(forms.ModelForm):
    """Amount inputs start in the currency's own precision ("4.20", not "4.200000")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        currency = self.instance.currency or ""
        for name in ConversionAdmin.AMOUNTS:
            value = self.initial.get(name)
            if isinstance(value, Decimal):
                self.initial[name] = format_amount(value, currency, code=False).replace(",", "")


@admin.register(Conversion)
class ConversionAdmin(admin.ModelAdmin):
    list_display = [
        "created",
        "transaction_id",
        "affiliate",
        "offer",
        "conversion_type",
        "status",
        "payout_column",
        "currency",
    ]
    list_filter = ["status", "conversion_type", "affiliate", "offer"]
    search_fields = ["=transaction_id", "=id", "click__cid", "external_cid", "customer_id"]
    search_help_text = (
        "Exact transaction ID or conversion ID; part of a click ID, external click ID or "
        "customer ID."
    )
    date_hierarchy = "created"
    list_select_related = ["affiliate", "offer", "conversion_type"]
    autocomplete_fields = ["affiliate", "offer"]
    raw_id_fields = ["click"]
    readonly_fields = ["id", "created", "updated"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "affiliate",
                    "offer",
                    "click",
                    "conversion_type",
                    "transaction_id",
                    "status",
                ]
            },
        ),
        ("Amounts", {"fields": ["payout", "revenue", "sale_amount", "currency"]}),
        (
            "Advertiser parameters",
            {
                "fields": [
                    "external_cid",
                    "customer_id",
                    ("adv_s1", "adv_s2", "adv_s3", "adv_s4", "adv_s5"),
                ],
                "classes": ["collapse"],
            },
        ),
        ("Record", {"fields": ["id", "created", "updated"]}),
    ]
    inlines = [StatusHistoryInline]
    form = ConversionForm
    AMOUNTS = ["payout", "revenue", "sale_amount"]

    def get_fieldsets(self, request, obj=None):
        # The record (ids, dates, log link) exists once the conversion is saved.
        fieldsets = self.fieldsets if obj else self.fieldsets[:-1]
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        # Read-only: amounts in the currency's own precision, not the stored "4.200000".
        swap = {name: f"{name}_shown" for name in self.AMOUNTS}
        return [
            (title, {**opts, "fields": [swap.get(f, f) for f in opts["fields"]]})
            for title, opts in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        shown = [f"{name}_shown" for name in self.AMOUNTS]
        return [*super().get_readonly_fields(request, obj), *shown]

    @admin.display(description="payout", ordering="payout")
    def payout_column(self, conversion):
        # The currency has its own column.
        return format_amount(conversion.payout, conversion.currency, code=False) or None

    @admin.display(description="payout")
    def payout_shown(self, conversion):
        return format_amount(conversion.payout, conversion.currency) or None

    @admin.display(description="revenue")
    def revenue_shown(self, conversion):
        return format_amount(conversion.revenue, conversion.currency) or None

    @admin.display(description="sale amount")
    def sale_amount_shown(self, conversion):
        return format_amount(conversion.sale_amount, conversion.currency) or None

    def save_model(self, request, obj, form, change):
        # The service records the status history and fires postbacks, as the API does.
        services.save_from_admin(obj, is_new=not change)


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    list_display = ["base", "quote", "rate", "valid_on"]
    list_filter = ["base", "quote"]
    date_hierarchy = "valid_on"


class PayoutRuleInline(admin.TabularInline):
    """Rules are edited where the offer is; rows are deactivated rather than deleted (only
    superusers may delete, as with offers)."""

    model = PayoutRule
    fields = ["conversion_type", "kind", "amount", "currency", "active"]
    extra = 0
    verbose_name_plural = (
        "payout rules (for conversions sent without a payout; their own payout always wins)"
    )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "conversion_type":
            # Read the types once per page, not once per rule row.
            field.choices = list(field.choices)
        return field


class OfferWithPayoutRulesAdmin(OfferAdmin):
    # affiliates knows nothing of conversions; this layer adds the rules to the offer's page.
    inlines = [*OfferAdmin.inlines, PayoutRuleInline]


admin.site.unregister(Offer)
admin.site.register(Offer, OfferWithPayoutRulesAdmin)
