"""API for postback configuration and the delivery log (read-only)."""

from django.db.models import Prefetch
from rest_framework import viewsets

from postbacks.filters import DeliveryFilter, PostbackFilter
from postbacks.models import Delivery, DeliveryAttempt, Postback
from postbacks.serializers import (
    DeliveryAttemptSerializer,
    DeliverySerializer,
    PostbackSerializer,
)
from trackdesk.api import ProtectedDestroyMixin

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
