"""API for postback configuration, the delivery log (read-only) and exchange rates."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from affiliates.api import ProtectedDestroyMixin
from conversions.models import ExchangeRate
from postbacks.filters import DeliveryFilter, ExchangeRateFilter, PostbackFilter
from postbacks.models import Delivery, DeliveryAttempt, Postback
from postbacks.serializers import (
    DeliveryAttemptSerializer,
    DeliverySerializer,
    ExchangeRateSerializer,
    PostbackSerializer,
)

# The list shows attempts without their request/response bodies, which can be kilobytes each.
ATTEMPT_LOG = Prefetch(
    "attempt_log",
    queryset=DeliveryAttempt.objects.only(
        "id", "delivery_id", *DeliveryAttemptSerializer.Meta.fields
    ).order_by("-started_at", "-id"),
)


class PostbackViewSet(ProtectedDestroyMixin, viewsets.ModelViewSet):
    queryset = Postback.objects.prefetch_related("offers", "conversion_types")
    serializer_class = PostbackSerializer
    filterset_class = PostbackFilter
    deactivate_hint = (
        'Deactivate it instead (PATCH {"active": false}): it stops firing and its delivery '
        "log is kept."
    )


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Delivery.objects.prefetch_related(ATTEMPT_LOG)
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter


class ExchangeRateViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    queryset = ExchangeRate.objects.all()
    serializer_class = ExchangeRateSerializer
    filterset_class = ExchangeRateFilter

    @extend_schema(
        description="Store a rate; an existing (base, quote, valid_on) gets the new rate.",
        responses={200: ExchangeRateSerializer, 201: ExchangeRateSerializer},
    )
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        code = status.HTTP_201_CREATED if serializer.created else status.HTTP_200_OK
        return Response(serializer.data, status=code)
