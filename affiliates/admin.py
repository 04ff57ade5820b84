"""Admin for affiliates (with their ready-to-copy tracking links) and offers (with their pixel)."""

from django.contrib import admin
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from trackdesk.admin import DeactivateInsteadOfDeleteMixin

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
    list_display = ["name", "email", "active", "created"]
    list_filter = ["active", "created"]
    search_fields = ["name", "email"]
    date_hierarchy = "created"
    readonly_fields = ["tracking_links", "postback_links"]
    fieldsets = [
        (None, {"fields": ["name", "email", "active", "click_id_token"]}),
        ("Tracking links", {"fields": ["tracking_links", "postback_links"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        # Links need the affiliate's id: show them once it is saved.
        return self.fieldsets if obj else self.fieldsets[:1]

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
                "delivery", "Postback tracking log", postback__affiliate__id__exact=affiliate.pk
            ),
        )


@admin.register(Offer)
class OfferAdmin(DeactivateInsteadOfDeleteMixin, admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "landing_page_url", "default_currency", "active", "created"]
    list_filter = ["active", "default_currency", "created"]
    search_fields = ["name", "landing_page_url"]
    date_hierarchy = "created"
    readonly_fields = ["pixel_secret", "pixel_example"]
    fieldsets = [
        (None, {"fields": ["name", "landing_page_url", "default_currency", "active"]}),
        ("Conversion pixel", {"fields": ["pixel_secret", "pixel_example"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        # The secret is generated on save.
        return self.fieldsets if obj else self.fieldsets[:1]

    @admin.display(description="Example pixel URL")
    def pixel_example(self, offer):
        return copyable(pixel_url(offer))
