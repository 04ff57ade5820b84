"""Query-string filters for the postback, delivery log and exchange-rate lists."""

import django_filters

from conversions.models import ExchangeRate
from postbacks.models import Delivery, Postback


class CurrencyCodeFilter(django_filters.CharFilter):
    """Matches a currency code given in any case."""

    def filter(self, qs, value):
        return super().filter(qs, value.upper() if value else value)


class PostbackFilter(django_filters.FilterSet):
    class Meta:
        model = Postback
        fields = ["affiliate", "active"]


class DeliveryFilter(django_filters.FilterSet):
    class Meta:
        model = Delivery
        fields = ["postback", "conversion", "state", "is_test"]


class ExchangeRateFilter(django_filters.FilterSet):
    base = CurrencyCodeFilter()
    quote = CurrencyCodeFilter()

    class Meta:
        model = ExchangeRate
        fields = ["base", "quote", "valid_on"]
