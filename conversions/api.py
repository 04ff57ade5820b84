"""The conversion REST API (create, change status/amounts, list and read), the exchange-rate
API (list, store) and the payout-rule API; token auth."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from trackdesk.parsers import JSONParser
from trackdesk.permissions import StoreModelPermissions

from . import services
from .filters import ConversionFilter, ExchangeRateFilter, PayoutRuleFilter
from .models import Conversion, ExchangeRate, PayoutRule, StatusChangeSource
from .serializers import (
    BulkConversionsSerializer,
    BulkResultSerializer,
    ConversionCreateSerializer,
    ConversionSerializer,
    ConversionUpdateSerializer,
    ExchangeRateSerializer,
    PayoutRuleSerializer,
    prefetch_for_bulk,
)

FIELD_ERRORS = OpenApiResponse(description="Field errors: {field: [message, ...]}.")


class DecimalJSONParser(JSONParser):
    """JSON whose fractional numbers become Decimal, so amounts never pass through float."""

    parse_float = Decimal


@extend_schema_view(
    list=extend_schema(summary="List conversions, newest first"),
    retrieve=extend_schema(summary="Read one conversion"),
)
class ConversionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = (
        Conversion.objects.select_related("click", "conversion_type")
        .prefetch_related("status_changes")
        .order_by("-created", "id")
    )
    serializer_class = ConversionSerializer
    filterset_class = ConversionFilter
    parser_classes = [DecimalJSONParser]

    @extend_schema(
        summary="Record a conversion (idempotent per offer and transaction_id)",
        request=ConversionCreateSerializer,
        responses={
            201: ConversionSerializer,
            200: OpenApiResponse(
                ConversionSerializer, description="Already stored: the existing conversion."
            ),
            400: FIELD_ERRORS,
        },
    )
    def create(self, request):
        values = _CREATE.run_validation(request.data)  # a 400 with field errors, as is_valid()
        conversion, created = services.create_conversion(
            services.ConversionInput(**values), source=StatusChangeSource.API
        )
        if created:  # in hand with its click, type and history: nothing is read back
            answer = _ANSWER.to_representation(conversion)
            return Response(answer, status=status.HTTP_201_CREATED)
        return self._answer(conversion, status.HTTP_200_OK)

    @extend_schema(
        summary="Record up to 1,000 conversions in one call",
        description="Each item is validated and stored on its own, like a single create "
        "(idempotent per offer and transaction_id): a bad item is reported with its field "
        "errors and the others are still stored. The answer lists one result per item, in "
        "order: created, existing (already stored, or repeated earlier in the same call) or "
        "error.",
        request=BulkConversionsSerializer,
        responses={
            200: BulkResultSerializer,
            400: OpenApiResponse(
                description="The envelope is wrong (not a list, empty, "
                "more than 1,000 items); nothing is stored."
            ),
        },
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request):
        envelope = BulkConversionsSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        items = envelope.validated_data["conversions"]
        # One serializer validates every item: building its fields once, not per item, is
        # most of the difference at 1,000 items.
        checker = ConversionCreateSerializer(context={"prefetched": prefetch_for_bulk(items)})
        results, valid, positions = [None] * len(items), [], []
        for index, item in enumerate(items):
            try:
                values = checker.run_validation(item)
            except ValidationError as exc:
                results[index] = {"index": index, "result": "error", "errors": exc.detail}
                continue
            valid.append(services.ConversionInput(**values))
            positions.append(index)
        stored = services.create_conversions_bulk(valid, source=StatusChangeSource.API)
        for index, (conversion, created) in zip(positions, stored, strict=True):
            results[index] = {
                "index": index,
                "result": "created" if created else "existing",
                "id": str(conversion.pk),
                "transaction_id": conversion.transaction_id,
            }
        counts = {
            kind: sum(r["result"] == kind for r in results) for kind in ("created", "existing")
        }
        answer = {**counts, "errors": len(items) - len(valid), "results": results}
        # Already what BulkResultSerializer (the documented shape) would give: plain values.
        return Response(answer, status=status.HTTP_200_OK)

    @extend_schema(
        summary="Change a conversion's status and/or amounts",
        request=ConversionUpdateSerializer,
        responses={200: ConversionSerializer, 400: FIELD_ERRORS},
    )
    def partial_update(self, request, pk=None):
        conversion = self.get_object()
        serializer = ConversionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.update_conversion(
            conversion, source=StatusChangeSource.API, **serializer.validated_data
        )
        return self._answer(conversion, status.HTTP_200_OK)

    def _answer(self, conversion: Conversion, code: int) -> Response:
        fresh = self.get_queryset().get(pk=conversion.pk)
        return Response(self.get_serializer(fresh).data, status=code)


# Built once per process: a serializer builds its fields on first use, which costs more than
# validating one conversion. Both keep no state between calls (no context, no instance).
_CREATE = ConversionCreateSerializer()
_ANSWER = ConversionSerializer()


class ExchangeRateViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    queryset = ExchangeRate.objects.all()
    serializer_class = ExchangeRateSerializer
    filterset_class = ExchangeRateFilter
    permission_classes = [StoreModelPermissions]  # a POST may replace the day's rate

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


class PayoutRuleViewSet(viewsets.ModelViewSet):
    """Payout rules: an offer's payout per conversion type, for conversions sent without one."""

    queryset = PayoutRule.objects.select_related("conversion_type").order_by("offer_id", "id")
    serializer_class = PayoutRuleSerializer
    filterset_class = PayoutRuleFilter
    parser_classes = [DecimalJSONParser]
