"""API for postback configuration and the delivery log (read-only)."""

from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import renderers, viewsets

from postbacks import audit, export
from postbacks.filters import DeliveryFilter, PostbackFilter, StrictFilterBackend
from postbacks.models import AuditSource, Delivery, DeliveryAttempt, Postback
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

    # Every write is audited (postbacks/audit.py) in the same transaction as the change.
    def perform_create(self, serializer):
        with transaction.atomic():
            serializer.save()
            audit.record(serializer.instance, {}, user=self.request.user, source=AuditSource.API)

    def perform_update(self, serializer):
        with transaction.atomic():
            before = audit.stored_snapshot(serializer.instance.pk)
            serializer.save()
            audit.record(
                serializer.instance, before, user=self.request.user, source=AuditSource.API
            )


class CSVRenderer(renderers.BaseRenderer):
    """Lets ?format=csv (or Accept: text/csv) through content negotiation; the list answers
    it with a streamed file (postbacks/export.py), so this never renders anything itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise NotImplementedError("the list streams its CSV itself; errors are JSON")


@extend_schema_view(
    list=extend_schema(
        description="The postback log, newest first. Unknown query parameters are refused "
        "with 400. `?format=csv` streams the whole filtered list as CSV (no paging).",
        responses={
            (200, "application/json"): DeliverySerializer(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
)
class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Delivery.objects.prefetch_related(ATTEMPT_LOG)
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
    filter_backends = [StrictFilterBackend]

    def get_renderers(self):
        if self.action == "list":
            return [*super().get_renderers(), CSVRenderer()]
        return super().get_renderers()

    def handle_exception(self, exc):
        # Errors (an unknown parameter, a bad filter value) are JSON, ?format=csv or not.
        if getattr(getattr(self.request, "accepted_renderer", None), "format", "") == "csv":
            self.request.accepted_renderer = renderers.JSONRenderer()
            self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            return export.csv_response(self.filter_queryset(self.get_queryset()))
        return super().list(request, *args, **kwargs)
