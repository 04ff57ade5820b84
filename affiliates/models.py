"""Affiliates (who sends traffic) and offers (what the traffic is sent to)."""

import secrets

from django.conf import settings
from django.db import models

from trackdesk import currencies
from trackdesk.currencies import validate_currency  # migrations name it by this path


def _new_pixel_secret() -> str:
    return secrets.token_urlsafe(24)


# The affS fields of a click; the affiliate's click id travels in one of them, affS1 unless
# their postback returns it in another.
CLICK_FIELDS = tuple(f"affS{n}" for n in range(1, 6))
DEFAULT_CLICK_FIELD = "affS1"


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
    click_field = models.CharField(
        max_length=5,
        choices=[(name, name) for name in CLICK_FIELDS],
        default=DEFAULT_CLICK_FIELD,
        editable=False,
        help_text="The affS field their tracking links carry the click ID in: the one their "
        "postback sends back as the click ID. Set when a postback is saved.",
    )
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="managed_affiliates",
        help_text="The affiliate's manager: gets an e-mail when one of their postbacks is paused "
        "or its endpoint keeps failing (as does the Affiliate managers group).",
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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
