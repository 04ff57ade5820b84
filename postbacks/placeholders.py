"""The placeholder catalog: every {name} a postback template may use and how its value is read.

The one list of placeholders: the form's picker, the renderer, validation and the assistant
look names up here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal

from django.core.exceptions import ObjectDoesNotExist

# Amount placeholders and the Conversion field (and RenderContext.amounts key) each one reads.
AMOUNT_FIELDS = {"payout": "payout", "revenue": "revenue", "saleAmount": "sale_amount"}


@dataclass(frozen=True)
class RenderContext:
    """Everything a placeholder may read for one conversion event."""

    conversion: object
    status: str
    delivery_uid: str = ""
    allow_revenue: bool = False
    currency: str = ""
    amounts: dict = field(default_factory=dict)
    status_map: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Placeholder:
    name: str
    description: str
    read: Callable[[RenderContext], object]
    kind: str  # "text" or "amount"
    aliases: tuple[str, ...] = ()
    gated: bool = False

    @property
    def token(self) -> str:
        return "{" + self.name + "}"

    def value(self, ctx: RenderContext) -> str | Decimal | None:
        """The raw value, None when missing; gated ones stay None while the setting is off."""
        if self.gated and not ctx.allow_revenue:
            return None
        return _blank_to_none(self.read(ctx))


def _blank_to_none(value):
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else str(value)


def _conversion(attr: str) -> Callable[[RenderContext], object]:
    return lambda ctx: getattr(ctx.conversion, attr, None)


def _click(attr: str) -> Callable[[RenderContext], object]:
    # No click (a conversion recorded without one) reads as missing.
    return lambda ctx: getattr(ctx.conversion.click, attr, None)


def _amount(field_name: str) -> Callable[[RenderContext], object]:
    return lambda ctx: ctx.amounts.get(field_name)


def _status(ctx: RenderContext) -> str:
    return ctx.status_map.get(ctx.status, ctx.status)


def _timestamp(ctx: RenderContext) -> str | None:
    created = ctx.conversion.created
    return created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else None


def _conversion_type(ctx: RenderContext) -> str | None:
    try:
        return ctx.conversion.conversion_type.code
    except ObjectDoesNotExist:  # an unsaved conversion without a type (validation's dry run)
        return None


def _numbered(name: str, read, alias: str, description: str) -> list[Placeholder]:
    """{name}1..{name}5, e.g. affS1..affS5 reading aff_s1..aff_s5."""
    return [
        Placeholder(
            f"{name}{n}", description.format(n=n), read(f"{alias}{n}"), "text", (f"{alias}{n}",)
        )
        for n in range(1, 6)
    ]


CATALOG: tuple[Placeholder, ...] = (
    *_numbered(
        "affS", _click, "aff_s", "Affiliate's sub ID {n} from the click (affS1: their click ID)"
    ),
    Placeholder(
        "conversionId", "Our conversion ID (a UUID)", _conversion("pk"), "text", ("conversion_id",)
    ),
    Placeholder(
        "conversionType",
        "Conversion type code, such as sale or lead",
        _conversion_type,
        "text",
        ("conversion_type",),
    ),
    Placeholder(
        "status",
        "Conversion status of this event (approved, pending ...), or its status map value",
        _status,
        "text",
    ),
    Placeholder(
        "timestamp",
        "When the conversion was created, ISO 8601 in UTC (2026-11-25T14:03:09Z)",
        _timestamp,
        "text",
    ),
    Placeholder(
        "payout", "Affiliate payout, in the postback's currency", _amount("payout"), "amount"
    ),
    Placeholder(
        "currency", "Currency code of the amounts sent (ISO 4217)", lambda c: c.currency, "text"
    ),
    Placeholder("cid", "Our click ID", _click("cid"), "text", ("click_id",)),
    Placeholder(
        "externalCid",
        "External click ID sent by the advertiser",
        _conversion("external_cid"),
        "text",
        ("external_cid",),
    ),
    Placeholder(
        "revenue",
        "Conversion revenue, in the postback's currency (needs the tracking setting)",
        _amount("revenue"),
        "amount",
        gated=True,
    ),
    Placeholder(
        "saleAmount",
        "Sale amount, in the postback's currency (needs the tracking setting)",
        _amount("sale_amount"),
        "amount",
        ("sale_amount",),
        gated=True,
    ),
    Placeholder(
        "transactionId",
        "The advertiser's transaction ID",
        _conversion("transaction_id"),
        "text",
        ("transaction_id",),
    ),
    Placeholder("offerId", "Offer ID", _conversion("offer_id"), "text", ("offer_id",)),
    Placeholder(
        "affiliateId", "Affiliate ID", _conversion("affiliate_id"), "text", ("affiliate_id",)
    ),
    *_numbered("advS", _conversion, "adv_s", "Advertiser's custom parameter {n} (advS{n})"),
    Placeholder(
        "customerId",
        "Advertiser's customer ID",
        _conversion("customer_id"),
        "text",
        ("customer_id",),
    ),
    Placeholder(
        "deliveryId",
        "Stable ID of this postback delivery, the same on every retry (for de-duplication)",
        lambda ctx: ctx.delivery_uid,
        "text",
        ("delivery_id",),
    ),
)

# Names and aliases match case-insensitively: {affs1}, {AFFS1} and {aff_s1} are all {affS1}.
_INDEX = {
    spelling.lower(): placeholder
    for placeholder in CATALOG
    for spelling in (placeholder.name, *placeholder.aliases)
}


def lookup(name: str) -> Placeholder | None:
    """The catalog entry a name written in a template stands for, or None when unknown."""
    return _INDEX.get(name.lower())


def valid_names() -> str:
    """The valid placeholders for an error message: "{affS1}, {affS2}, ..."."""
    return ", ".join(placeholder.token for placeholder in CATALOG)
