"""Affiliates (who sends traffic) and offers (what the traffic is sent to)."""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from trackdesk import currencies


def _new_pixel_secret() -> str:
    return secrets.token_urlsafe(24)


DEFAULT_CLICK_FIELD = "affS1"
NO_TOKEN = "{your click id token}"


def public_url(path: str, request=None) -> str:
    """`path` as an absolute link: on PUBLIC_BASE_URL, else on the host `request` came in on,
    else left relative. The path's query is kept as written, so a token's braces stay readable
    (request.build_absolute_uri would percent-encode them)."""
    base = (getattr(settings, "PUBLIC_BASE_URL", "") or "").strip().rstrip("/")
    if not base and request is not None:
        base = request.build_absolute_uri("/").rstrip("/")
    return f"{base}{path}"


def validate_currency(code: str) -> None:
    if not currencies.is_valid(code):
        raise ValidationError(f"'{code}' is not an ISO 4217 currency code (for example USD, EUR).")


class Affiliate(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    active = models.BooleanField(default=True)
    click_id_token = models.CharField(
        "click ID token",
        max_length=100,
        blank=True,
        help_text="The macro the affiliate's tracker replaces with its own click ID, such as "
        "{aff_sub}, #s2# or {clickid}. Used in the tracking links shown to the affiliate.",
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def tracking_path(self, offer: "Offer", field: str | None = None) -> str:
        """Our tracking link for this affiliate and offer, with their click-id token in `field`
        (default: the field their postbacks return as the click id, usually affS1)."""
        token = self.click_id_token or NO_TOKEN
        field = field or self.click_id_field()
        return f"{reverse('track-click', args=[offer.pk, self.pk])}?{field}={token}"

    def tracking_url(self, offer: "Offer", request=None, field: str | None = None) -> str:
        """The tracking link ready to copy: absolute, see public_url."""
        return public_url(self.tracking_path(offer, field), request)

    def click_id_field(self) -> str:
        """The affS field their click id travels in: the one their postback (active first, then
        the newest) sends back as the click id, e.g. affS3 when the postback assistant was told
        so; affS1 when no postback says otherwise."""
        from postbacks.assistant.analysis import click_field_of

        if self.pk is None:
            return DEFAULT_CLICK_FIELD
        urls = self.postbacks.order_by("-active", "-created", "-pk").values_list("url", flat=True)
        for url in urls[:20]:
            field = click_field_of(url)
            if field:
                return field
        return DEFAULT_CLICK_FIELD


class Offer(models.Model):
    name = models.CharField(max_length=200)
    landing_page_url = models.URLField(max_length=2000)
    default_currency = models.CharField(
        max_length=3, default="USD", choices=currencies.CHOICES, validators=[validate_currency]
    )
    active = models.BooleanField(default=True)
    pixel_secret = models.CharField(
        max_length=64,
        default=_new_pixel_secret,
        help_text="The `token` parameter the advertiser's conversion pixel must carry.",
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
