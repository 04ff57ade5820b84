"""Endpoints that browsers and shops call without an API token: the tracking link and the pixel."""

from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from django.db.models import Exists
from django.http import Http404, HttpResponseRedirect
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from affiliates.models import Affiliate, Offer
from trackdesk import metrics
from trackdesk.memo import Memo
from trackdesk.middleware import client_ip

from . import services
from .models import StatusChangeSource
from .serializers import (
    STATUS_HELP,
    ConversionCreateSerializer,
    ConversionSerializer,
    click_for_cid,
)


@require_GET
@never_cache
def track_click(request, offer_id: int, affiliate_id: int):
    """Record a click on an affiliate's link and send the visitor on to the offer with our cid."""
    landing_page = _links.get(
        (offer_id, affiliate_id), lambda: _landing_page(offer_id, affiliate_id)
    )
    if landing_page is None:
        raise Http404("No active offer and affiliate with these ids.")
    cid = services.track_click(
        offer_id=offer_id,
        affiliate_id=affiliate_id,
        params=request.GET,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
        referrer=request.headers.get("referer", ""),
    )
    metrics.click()
    return HttpResponseRedirect(with_cid(landing_page, cid))


def _landing_page(offer_id: int, affiliate_id: int) -> str | None:
    """The offer's landing page if both offer and affiliate are active; one query."""
    affiliate_active = Affiliate.objects.filter(pk=affiliate_id, active=True)
    offer = Offer.objects.filter(Exists(affiliate_active), pk=offer_id, active=True)
    return offer.values_list("landing_page_url", flat=True).first()


# Clicks are the busiest request: the look-up above is remembered for a few seconds per process.
_links = Memo("tracking links", models=[Offer, Affiliate])


def with_cid(url: str, cid: str) -> str:
    """`url` with cid=<cid> in its query; its other parameters are kept exactly as written."""
    parts = urlsplit(url)
    kept = [
        pair
        for pair in parts.query.split("&")
        if pair and unquote_plus(pair.split("=", 1)[0]) != "cid"
    ]
    query = "&".join([*kept, urlencode({"cid": cid})])
    return urlunsplit(parts._replace(query=query))


# Pixel query parameter → ConversionCreateSerializer field. Where two name one field, the
# first one given wins (transactionId before Trackdesk's externalId).
PIXEL_PARAMS = {
    "cid": "cid",
    "conversionTypeCode": "conversion_type",
    "status": "status",
    "transactionId": "transaction_id",
    "externalId": "transaction_id",
    "amount.value": "sale_amount",
    "payout.value": "payout",
    "currency": "currency",
    "externalCid": "external_cid",
    "customerId": "customer_id",
    **{f"customParams.advS{i}": f"adv_s{i}" for i in range(1, 6)},
}
PARAM_FOR_FIELD = {field: param for param, field in reversed(PIXEL_PARAMS.items())}


def pixel_data(params) -> dict:
    """Serializer input from the pixel's query; blank parameters (empty macros) count as absent."""
    data = {}
    for param, field in PIXEL_PARAMS.items():
        value = params.get(param, "")
        if value.strip():
            data.setdefault(field, value)
    return data


def offers_for_pixel_token(token: str) -> set[int]:
    """Ids of the offers whose pixel secret is `token` (one, in practice); none for a blank one."""
    if not token or len(token) > 64 or "\x00" in token:  # PostgreSQL refuses NUL in text
        return set()
    return set(Offer.objects.filter(pixel_secret=token).values_list("pk", flat=True))


PIXEL_QUERY = [
    OpenApiParameter("cid", OpenApiTypes.STR, required=True, description="Our click id."),
    OpenApiParameter("token", OpenApiTypes.STR, required=True, description="Offer's pixel secret."),
    OpenApiParameter(
        "conversionTypeCode", OpenApiTypes.STR, required=True, description="e.g. sale"
    ),
    OpenApiParameter("status", OpenApiTypes.STR, description=STATUS_HELP + " Default pending."),
    OpenApiParameter("transactionId", OpenApiTypes.STR, description="Order id; idempotency key."),
    OpenApiParameter("externalId", OpenApiTypes.STR, description="Used when no transactionId."),
    OpenApiParameter("amount.value", OpenApiTypes.STR, description="Sale amount, e.g. 100.50."),
    OpenApiParameter("payout.value", OpenApiTypes.STR, description="Affiliate payout."),
    OpenApiParameter("currency", OpenApiTypes.STR, description="ISO 4217; default the offer's."),
    OpenApiParameter("externalCid", OpenApiTypes.STR, description="External click id."),
    OpenApiParameter("customerId", OpenApiTypes.STR),
    *[OpenApiParameter(f"customParams.advS{i}", OpenApiTypes.STR) for i in range(1, 6)],
]


@method_decorator(never_cache, name="dispatch")
class ConversionPixelView(APIView):
    """Conversion pixel for shops that can only fire a URL (Trackdesk's GET postback).

    Guarded by the offer's `pixel_secret` in `token` instead of an API token. `amount.value`
    is the sale amount (Trackdesk's meaning); the affiliate's payout may come as `payout.value`.
    A missing `transactionId`/`externalId` gets a random one, so such calls are not idempotent.
    """

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Record a conversion from an advertiser's pixel",
        parameters=PIXEL_QUERY,
        responses={
            201: ConversionSerializer,
            200: OpenApiResponse(ConversionSerializer, description="Already stored."),
            400: OpenApiResponse(description="Errors by query parameter name."),
            403: OpenApiResponse(description="Missing or wrong token."),
        },
    )
    def get(self, request):
        # The token first: without a valid one, every cid gets the same 403, so the pixel
        # cannot be used to find out which cids exist.
        offers = offers_for_pixel_token(request.query_params.get("token", ""))
        if not offers:
            raise PermissionDenied("Missing or wrong token for this offer's conversion pixel.")
        click = click_for_cid(request.query_params.get("cid"))
        if click is None or click.offer_id not in offers:
            return Response({"cid": ["No click with this cid for this offer."]}, status=400)
        serializer = ConversionCreateSerializer(data=pixel_data(request.query_params))
        if not serializer.is_valid():
            errors = {PARAM_FOR_FIELD.get(k, k): v for k, v in serializer.errors.items()}
            return Response(errors, status=400)
        conversion, created = services.create_conversion(
            services.ConversionInput(**serializer.validated_data),
            source=StatusChangeSource.PIXEL,
        )
        return Response(ConversionSerializer(conversion).data, status=201 if created else 200)
