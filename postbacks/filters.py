"""Query-string filters for the postback and delivery log lists."""

import django_filters

from postbacks.models import Delivery, Postback


class PostbackFilter(django_filters.FilterSet):
    class Meta:
        model = Postback
        fields = ["affiliate", "active"]


class DeliveryFilter(django_filters.FilterSet):
    class Meta:
        model = Delivery
        fields = ["postback", "conversion", "state", "is_test"]
