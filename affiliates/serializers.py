"""API representations of affiliates and offers, and the currency field other apps reuse."""

from rest_framework import serializers

from trackdesk.api import StrictFieldsMixin

from .models import Affiliate, Offer, validate_currency


class CurrencyField(serializers.CharField):
    """An ISO 4217 code, accepted in any case and stored upper-cased."""

    def __init__(self, **kwargs):
        kwargs["validators"] = [*kwargs.get("validators", []), validate_currency]
        kwargs.setdefault("help_text", "ISO 4217 currency code, e.g. USD or EUR.")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


class AffiliateSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Affiliate
        fields = ["id", "name", "email", "active", "click_id_token", "created"]


class OfferSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    default_currency = CurrencyField(required=False)

    class Meta:
        model = Offer
        fields = [
            "id",
            "name",
            "landing_page_url",
            "default_currency",
            "active",
            "pixel_secret",
            "created",
        ]
        read_only_fields = ["pixel_secret"]
