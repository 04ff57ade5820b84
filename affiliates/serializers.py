"""API representations of affiliates and offers."""

from rest_framework import serializers

from trackdesk.api import CurrencyField, SecretFieldsMixin, StrictFieldsMixin

from .models import Affiliate, Offer


class AffiliateSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Affiliate
        fields = ["id", "name", "email", "active", "click_id_token", "created"]


class OfferSerializer(SecretFieldsMixin, StrictFieldsMixin, serializers.ModelSerializer):
    default_currency = CurrencyField(required=False)
    secret_fields = ("pixel_secret",)  # it records conversions for the offer: change only

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
