"""The built-in sample conversion: unsaved rows that fill every placeholder, so a preview, the
JSON body check and a test send work before any traffic exists. Nothing here is written.
"""

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from affiliates.models import Affiliate, Offer
from conversions.models import Click, Conversion, ConversionStatus, ConversionType
from postbacks.placeholders import RenderContext
from postbacks.rendering import build_context
from trackdesk import currencies

SAMPLE_CURRENCY = "USD"
SAMPLE_DELIVERY_UID = "5f0c3b0e-8d1a-4c4e-9a57-2b6f1d7e9c31"
_SAMPLE_AFF_S = ("AFF-CLICK-123", "sub2", "sub3", "", "")


def sample_context(values: dict, *, allow_revenue: bool) -> RenderContext:
    """The sample conversion's event, in the configured currency (no conversion, no queries)."""
    currency = values.get("currency") or SAMPLE_CURRENCY
    statuses = values.get("statuses")
    status = statuses[0] if isinstance(statuses, list | tuple) and statuses else "approved"
    return build_context(
        sample_conversion(currency),
        status=str(status),
        currency=currency,
        status_map=values.get("status_map"),
        delivery_uid=SAMPLE_DELIVERY_UID,
        allow_revenue=allow_revenue,
    )


def sample_conversion(currency: str = SAMPLE_CURRENCY) -> Conversion:
    """A fully filled conversion with its click, built from unsaved objects."""
    affiliate = Affiliate(id=7, name="Sample affiliate")
    offer = Offer(id=42, name="Sample offer", default_currency=currency)
    click = Click(
        cid="q8Z1sAmPlEcLiCkId0w2Xg",
        affiliate=affiliate,
        offer=offer,
        **{f"aff_s{n}": value for n, value in enumerate(_SAMPLE_AFF_S, 1)},
    )
    return Conversion(
        id=uuid.UUID("0b9d6a52-3f7e-4c1a-8e25-6d4b1f0a9c73"),
        affiliate=affiliate,
        offer=offer,
        click=click,
        conversion_type=ConversionType(code="sale", name="Sale"),
        status=ConversionStatus.APPROVED,
        transaction_id="ORDER-10042",
        payout=_sample_amount("12.50", currency),
        revenue=_sample_amount("40.00", currency),
        sale_amount=_sample_amount("99.90", currency),
        currency=currency,
        external_cid="ext-5501",
        adv_s1="spring-campaign",
        adv_s2="banner-a",
        customer_id="CUST-77",
        created=datetime(2026, 11, 25, 14, 3, 9, tzinfo=UTC),
    )


def _sample_amount(amount: str, currency: str) -> Decimal:
    return Decimal(amount).quantize(currencies.quantum(currency), rounding=ROUND_HALF_UP)
