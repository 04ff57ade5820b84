"""Query-string filters for the postback and delivery log lists, and the check that refuses a
query parameter the deliveries list does not know (a typo must not list every row)."""

import django_filters
from django.db.models import Q
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

from affiliates.models import Affiliate
from conversions.filters import UtcIsoDateTimeFilter
from conversions.models import Click, Conversion
from postbacks.export import click_model_field, other_click_fields
from postbacks.models import Delivery, Postback


class PostbackFilter(django_filters.FilterSet):
    class Meta:
        model = Postback
        fields = ["affiliate", "active"]


class DeliveryFilter(django_filters.FilterSet):
    transaction_id = django_filters.CharFilter(
        method="filter_transaction_id", help_text="The conversion's transaction ID, exactly."
    )
    click_id = django_filters.CharFilter(
        method="filter_click_id",
        help_text="Our click ID (cid) or the affiliate's click ID (affS1, or the affS field "
        "the affiliate's links carry it in), exactly.",
    )
    affiliate = django_filters.ModelChoiceFilter(
        field_name="postback__affiliate",
        queryset=Affiliate.objects.all(),
        help_text="The postback's affiliate (id).",
    )
    # In UTC: PostgreSQL refuses offsets beyond ±15:59 (a 500 before), and dates that overflow
    # get a 400.
    triggered_after = UtcIsoDateTimeFilter(
        field_name="created",
        lookup_expr="gte",
        help_text="Triggered at or after this time (ISO 8601).",
    )
    triggered_before = UtcIsoDateTimeFilter(
        field_name="created",
        lookup_expr="lt",
        help_text="Triggered before this time (ISO 8601).",
    )

    class Meta:
        model = Delivery
        fields = ["postback", "conversion", "state", "is_test"]

    # Both look the conversions up first, each through its own index, then their deliveries
    # through (conversion, created): a join would let the database walk the whole log by date.
    def filter_transaction_id(self, queryset, name, value):
        conversions = Conversion.objects.filter(transaction_id=value)
        return queryset.filter(conversion_id__in=list(conversions.values_list("pk", flat=True)))

    def filter_click_id(self, queryset, name, value):
        clicks = set(
            Click.objects.filter(Q(cid=value) | Q(aff_s1=value)).values_list("pk", flat=True)
        )
        for field in other_click_fields():
            # Only the clicks of affiliates whose links carry the click ID in that field.
            theirs = Click.objects.filter(affiliate__click_field=field)
            clicks.update(
                theirs.filter(**{click_model_field(field): value}).values_list("pk", flat=True)
            )
        conversions = Conversion.objects.filter(click_id__in=clicks)
        return queryset.filter(conversion_id__in=list(conversions.values_list("pk", flat=True)))


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, answering 400 that names any query parameter the list does
    not take (its filters, the page number and ?format=)."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        allowed = {api_settings.URL_FORMAT_OVERRIDE}
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        paginator = getattr(view, "paginator", None)
        if paginator is not None:
            allowed |= {
                name
                for name in (
                    getattr(paginator, "page_query_param", None),
                    getattr(paginator, "page_size_query_param", None),
                )
                if name
            }
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed))
            raise ValidationError(
                {name: [f"Unknown query parameter. This list takes: {takes}."] for name in unknown}
            )
        return super().filter_queryset(request, queryset, view)
