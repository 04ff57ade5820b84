"""The portal's list filters (django-filter), offered only with the current affiliate's choices."""

from datetime import UTC, datetime, time, timedelta

import django_filters
from django import forms

from conversions.models import Conversion, ConversionStatus, ConversionType
from postbacks.models import Delivery, DeliveryState, Postback

DATE = forms.DateInput(attrs={"type": "date"})


class DayFilter(django_filters.DateFilter):
    """From (or to and including) a day in UTC, as a range on `created`: its index serves it."""

    def __init__(self, *, until: bool, **kwargs):
        self.until = until
        super().__init__(field_name="created", widget=DATE, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        start = datetime.combine(value, time.min, tzinfo=UTC)
        if self.until:
            return qs.filter(created__lt=start + timedelta(days=1))
        return qs.filter(created__gte=start)


class ConversionFilter(django_filters.FilterSet):
    created_from = DayFilter(until=False, label="From")
    created_to = DayFilter(until=True, label="To")
    status = django_filters.ChoiceFilter(choices=ConversionStatus.choices, empty_label="Any")
    offer = django_filters.ModelChoiceFilter(queryset=None, empty_label="Any")
    conversion_type = django_filters.ModelChoiceFilter(
        queryset=ConversionType.objects.all(), label="Type", empty_label="Any"
    )

    class Meta:
        model = Conversion
        fields = []

    def __init__(self, data, queryset, offers):
        super().__init__(data, queryset=queryset)
        self.filters["offer"].queryset = offers


class DeliveryFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        choices=DeliveryState.choices, label="Result", empty_label="Any"
    )
    postback = django_filters.ModelChoiceFilter(queryset=None, empty_label="Any")
    is_test = django_filters.BooleanFilter(
        label="Test sends",
        widget=forms.Select(choices=[("", "Any"), ("true", "Only tests"), ("false", "No tests")]),
    )
    created_from = DayFilter(until=False, label="From")
    created_to = DayFilter(until=True, label="To")

    class Meta:
        model = Delivery
        fields = []

    def __init__(self, data, queryset, affiliate):
        super().__init__(data, queryset=queryset)
        self.filters["postback"].queryset = Postback.objects.filter(affiliate=affiliate)
