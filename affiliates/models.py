"""Affiliates (who sends traffic) and offers (what the traffic is sent to)."""

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from trackdesk import currencies


def _new_pixel_secret() -> str:
    return secrets.token_urlsafe(24)


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

    def tracking_path(self, offer: "Offer") -> str:
        """Our tracking link for this affiliate and offer, with their click-id token in affS1."""
        token = self.click_id_token or "{your click id token}"
        return f"{reverse('track-click', args=[offer.pk, self.pk])}?affS1={token}"


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
