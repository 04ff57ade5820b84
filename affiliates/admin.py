"""Admin for affiliates (with their ready-to-copy tracking links) and offers (with their pixel)."""

from django.contrib import admin
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from trackdesk.admin import DeactivateInsteadOfDeleteMixin
from trackdesk.masking import MASK, mask_text

from .links import NO_TOKEN, tracking_url
from .models import DEFAULT_CLICK_FIELD, Affiliate, Offer


def copyable(text: str):
    """A read-only text box the user can click into and copy from."""
    return format_html(
        '<input type="text" readonly value="{}" size="{}" class="vTextField" '
        'style="font-family: monospace; width: auto" onfocus="this.select()">',
        text,
        max(40, len(text) + 2),
    )


def changelist_link(model_name: str, label: str, **filters) -> str:
    url = reverse(f"admin:postbacks_{model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), label)


def pixel_url(offer: Offer) -> str:
    """The pixel the advertiser fires on a sale; {cid} is the click id we passed them."""
    return (
        f"{reverse('conversion-pixel')}?conversionTypeCode=sale&cid={{cid}}&amount.value=100.50"
        f"&token={offer.pixel_secret}"
    )


@admin.register(Affiliate)
class AffiliateAdmin(DeactivateInsteadOfDeleteMixin, admin.ModelAdmin):
    list_display = ["name", "email", "manager", "active", "created"]
    list_filter = ["active", "created"]
    list_select_related = ["manager"]
    inactive_means = "An inactive affiliate's tracking links stop counting clicks."
    search_fields = ["name", "email"]
    date_hierarchy = "created"
    readonly_fields = ["tracking_links", "postback_links"]
    fieldsets = [
        (None, {"fields": ["name", "email", "manager", "active", "click_id_token"]}),
        ("Tracking links", {"fields": ["tracking_links", "postback_links"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        # Links need the affiliate's id: show them once it is saved.
        return self.fieldsets if obj else self.fieldsets[:1]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "manager":  # people who use the back office, not service users
            kwargs["queryset"] = db_field.related_model.objects.filter(
                is_staff=True, is_active=True
            ).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_object(self, request, object_id, from_field=None):
        affiliate = super().get_object(request, object_id, from_field)
        if affiliate is not None:
            # Read-only fields only get the object: the links are built on this request's host
            # (when PUBLIC_BASE_URL is empty). Per object, so per request and thread-safe.
            affiliate._admin_request = request
        return affiliate

    @admin.display(description="Tracking links (active offers)")
    def tracking_links(self, affiliate):
        offers = Offer.objects.filter(active=True).order_by("name")
        if not offers:
            return "No active offers yet."
        request = getattr(affiliate, "_admin_request", None)
        field = affiliate.click_field
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td></tr>",
            ((offer.name, copyable(tracking_url(affiliate, offer, request))) for offer in offers),
        )
        notes = []
        if not affiliate.click_id_token:
            notes.append(
                format_html(
                    "No click ID token is set: replace {} with the macro their tracker fills "
                    "with its click ID, or set the token above.",
                    NO_TOKEN,
                )
            )
        if field != DEFAULT_CLICK_FIELD:
            notes.append(
                format_html(
                    "Their click ID travels in {}: their postback sends {} back as the click ID.",
                    field,
                    "{" + field + "}",
                )
            )
        return format_html(
            "<table><tbody>{}</tbody></table>{}",
            rows,
            format_html_join("", "<p>{}</p>", ((note,) for note in notes)),
        )

    @admin.display(description="Postbacks and log")
    def postback_links(self, affiliate):
        return format_html(
            "{} · {}",
            changelist_link("postback", "Postbacks", affiliate__id__exact=affiliate.pk),
            changelist_link(
                "delivery", "Postback log", postback__affiliate__id__exact=affiliate.pk
            ),
        )


@admin.register(Offer)
class OfferAdmin(DeactivateInsteadOfDeleteMixin, admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "landing_page_url", "default_currency", "active", "created"]
    list_filter = ["active", "default_currency", "created"]
    search_fields = ["name", "landing_page_url"]
    date_hierarchy = "created"
    readonly_fields = [
        "pixel_secret",
        "pixel_example",
        "masked_pixel_secret",
        "masked_pixel_example",
    ]
    fieldsets = [
        (None, {"fields": ["name", "landing_page_url", "default_currency", "active"]}),
        ("Conversion pixel", {"fields": ["pixel_secret", "pixel_example"]}),
    ]
    inactive_means = (
        "An inactive offer's tracking links stop counting clicks, and its links leave the "
        "affiliates' pages."
    )

    def get_fieldsets(self, request, obj=None):
        # The secret is generated on save. It records conversions for the offer, so only who
        # may change the offer reads it (as in the API); viewers see it masked.
        if obj is None:
            return self.fieldsets[:1]
        if self.has_change_permission(request, obj):
            return self.fieldsets
        return [
            self.fieldsets[0],
            ("Conversion pixel", {"fields": ["masked_pixel_secret", "masked_pixel_example"]}),
        ]

    @admin.display(description="Pixel secret")
    def masked_pixel_secret(self, offer):
        return MASK

    @admin.display(description="Example pixel URL")
    def masked_pixel_example(self, offer):
        return format_html("<code>{}</code>", mask_text(pixel_url(offer)))

    @admin.display(description="Example pixel URL")
    def pixel_example(self, offer):
        return copyable(pixel_url(offer))
