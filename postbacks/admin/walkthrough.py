"""The postback walkthrough: the affiliate's tracking link, a simulated click, a test conversion
through the conversion service, and the delivery it fires, each step done only when its row
exists. The click and the conversion are real rows made by the same services as real traffic.
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from affiliates.models import DEFAULT_CLICK_FIELD, Offer
from conversions import services
from conversions.models import Click, Conversion, ConversionType, StatusChangeSource
from postbacks.assistant.analysis import click_field_of
from postbacks.models import Delivery, Postback, Scope

WALKTHROUGH_USER_AGENT = "Postback walkthrough (admin)"


@dataclass
class Step:
    title: str
    done: bool
    detail: str = ""


def offers_in_scope(postback: Postback):
    """Active offers this postback covers: the ones its tracking link can be tested with."""
    listed = postback.offers.values("pk")
    offers = Offer.objects.filter(active=True).order_by("name")
    if postback.scope == Scope.OFFERS:
        return offers.filter(pk__in=listed)
    return offers.exclude(pk__in=listed)


def sample_click_id() -> str:
    return f"test-click-{secrets.token_hex(4)}"


def click_field(postback: Postback) -> str:
    """The affS field the postback sends back as the click ID (affS1 unless it says another)."""
    return click_field_of(postback.url) or DEFAULT_CLICK_FIELD


def click_id_of(click: Click, field: str) -> str:
    """The affiliate's click ID on `click`, from the affS field it travels in."""
    return getattr(click, f"aff_s{field[-1]}")


def simulate_click(postback: Postback, offer: Offer, click_id: str) -> Click:
    """A click on the affiliate's tracking link, with `click_id` as their click ID, in the
    field the postback sends back (click_field)."""
    return services.record_click(
        offer=offer,
        affiliate=postback.affiliate,
        params={click_field(postback): click_id},
        user_agent=WALKTHROUGH_USER_AGENT,
    )


def create_test_conversion(
    click: Click, conversion_type: ConversionType, status: str, payout: Decimal | None
) -> Conversion:
    """A conversion for the click, through the conversion service: it fires postbacks as a
    real one would."""
    conversion, _ = services.create_conversion(
        services.ConversionInput(
            affiliate=click.affiliate,
            offer=click.offer,
            click=click,
            conversion_type=conversion_type,
            status=status,
            payout=payout,
            currency=click.offer.default_currency,
            transaction_id=f"walkthrough-{secrets.token_hex(6)}",
        ),
        source=StatusChangeSource.ADMIN,
    )
    return conversion


def find_click(postback: Postback, pk) -> Click | None:
    if not pk:
        return None
    return Click.objects.filter(pk=pk, affiliate=postback.affiliate).select_related("offer").first()


def find_conversion(click: Click | None, pk) -> Conversion | None:
    if click is None or not pk:
        return None
    return Conversion.objects.filter(pk=pk, click=click).select_related("conversion_type").first()


def deliveries_for(postback: Postback, conversion: Conversion | None):
    if conversion is None:
        return Delivery.objects.none()
    return Delivery.objects.filter(postback=postback, conversion=conversion, is_test=False)


def why_no_delivery(postback: Postback, conversion: Conversion) -> str:
    """Why this conversion did not fire the postback, in words, or "" when it should have."""
    reasons = []
    if not postback.active:
        reasons.append("the postback is inactive")
    if not postback.conversion_types.filter(pk=conversion.conversion_type_id).exists():
        reasons.append(f"it does not fire for conversion type {conversion.conversion_type}")
    if not postback.fires_on_status(conversion.status):
        reasons.append(f"it does not fire for status {conversion.get_status_display()}")
    if not postback.covers_offer(conversion.offer_id):
        reasons.append(f"its scope does not include offer {conversion.offer}")
    return "; ".join(reasons)
