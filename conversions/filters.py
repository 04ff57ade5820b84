"""Query-string filters for the conversion, exchange-rate and payout-rule list APIs."""

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from .models import Conversion, ExchangeRate, PayoutRule
from .serializers import STATUS_HELP, parse_status


class StatusFormField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        if not value:
            return value
        status = parse_status(value)
        if status is None:
            # The value goes in params: django-filter %-formats the message.
            raise forms.ValidationError(
                "'%(value)s' is not a conversion status. " + STATUS_HELP,
                params={"value": value[:50]},
            )
        return status


@extend_schema_field({"type": "string", "description": STATUS_HELP})
class StatusFilter(django_filters.Filter):
    field_class = StatusFormField


class IdFormField(forms.IntegerField):
    """A row id: a positive 64-bit integer (larger numbers overflow the database's integer)."""

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=2**63 - 1, **kwargs)


class IdFilter(django_filters.Filter):
    field_class = IdFormField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 moment, turned into UTC: PostgreSQL refuses offsets beyond ±15:59."""

    def clean(self, value):
        moment = super().clean(value)
        if moment is None:
            return moment
        try:
            return moment.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError("Out of the supported range of dates.") from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class ConversionFilter(django_filters.FilterSet):
    affiliate = IdFilter(field_name="affiliate_id", help_text="Affiliate id.")
    offer = IdFilter(field_name="offer_id", help_text="Offer id.")
    conversion_type = django_filters.CharFilter(
        field_name="conversion_type__code", help_text="Conversion type code, e.g. sale."
    )
    status = StatusFilter()
    created_after = UtcIsoDateTimeFilter(
        field_name="created", lookup_expr="gte", help_text="ISO 8601; created at or after."
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created", lookup_expr="lt", help_text="ISO 8601; created strictly before."
    )

    class Meta:
        model = Conversion
        fields = []


class CurrencyCodeFilter(django_filters.CharFilter):
    """Matches a currency code given in any case."""

    def filter(self, qs, value):
        return super().filter(qs, value.upper() if value else value)


class ExchangeRateFilter(django_filters.FilterSet):
    base = CurrencyCodeFilter()
    quote = CurrencyCodeFilter()

    class Meta:
        model = ExchangeRate
        fields = ["base", "quote", "valid_on"]


class PayoutRuleFilter(django_filters.FilterSet):
    offer = IdFilter(field_name="offer_id", help_text="Offer id.")
    conversion_type = django_filters.CharFilter(
        field_name="conversion_type__code", help_text="Conversion type code, e.g. sale."
    )

    class Meta:
        model = PayoutRule
        fields = ["active"]
