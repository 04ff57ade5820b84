"""Writes to clicks and conversions: every path (API, pixel, admin, import) goes through here."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from affiliates.models import Affiliate, Offer

from .models import (
    Click,
    Conversion,
    ConversionStatus,
    ConversionStatusChange,
    ConversionType,
    StatusChangeSource,
)
from .signals import conversion_event, conversion_events

AFF_PARAMS = ("affS1", "affS2", "affS3", "affS4", "affS5")


def record_click(
    *, offer: Offer, affiliate: Affiliate, params, ip=None, user_agent="", referrer=""
) -> Click:
    """Store a click with the affiliate's sub-ids (affS1..affS5) taken from `params`."""
    subs = {f"aff_s{i}": (params.get(name) or "")[:255] for i, name in enumerate(AFF_PARAMS, 1)}
    return Click.objects.create(
        offer=offer,
        affiliate=affiliate,
        ip=ip,
        user_agent=(user_agent or "")[:512],
        referrer=(referrer or "")[:2000],
        **subs,
    )


@dataclass
class ConversionInput:
    """Validated values for a new conversion."""

    affiliate: Affiliate
    offer: Offer
    conversion_type: ConversionType
    transaction_id: str
    currency: str
    click: Click | None = None
    status: str = ConversionStatus.PENDING
    payout: Decimal | None = None
    revenue: Decimal | None = None
    sale_amount: Decimal | None = None
    external_cid: str = ""
    adv_s1: str = ""
    adv_s2: str = ""
    adv_s3: str = ""
    adv_s4: str = ""
    adv_s5: str = ""
    customer_id: str = ""


def create_conversion(data: ConversionInput, *, source: str) -> tuple[Conversion, bool]:
    """Create a conversion, or return the existing one with the same offer and transaction id.

    Returns (conversion, created). Safe to call twice, also concurrently: the unique constraint
    on (offer, transaction_id) decides, and the loser gets the winner's row. New conversions
    are the common case, so the insert is tried first rather than looked up before.
    """
    try:
        with transaction.atomic():
            conversion = Conversion.objects.create(**vars(data))
            announce(conversion, from_status="", source=source, new=True)
    except IntegrityError:
        existing = _existing(data.offer, data.transaction_id)
        if existing is None:
            raise
        return existing, False
    return conversion, True


def create_conversions_bulk(
    items: list[ConversionInput], *, source: str
) -> list[tuple[Conversion, bool]]:
    """create_conversion for many items with a fixed number of queries; (conversion, created)
    per item, in order.

    An item whose offer and transaction id are stored already, or came earlier in `items`,
    gets that conversion. New ones are written together with their status history and
    deliveries (the conversion_events signal) in one transaction; if another request stored one
    of them meanwhile, the items are written one by one instead, so each still either fully
    happens or not at all.
    """
    found = Conversion.objects.filter(
        offer__in={item.offer for item in items},
        transaction_id__in={item.transaction_id for item in items},
    )
    known = {(c.offer_id, c.transaction_id): c for c in found}
    results, new = [], {}
    for item in items:
        key = (item.offer.pk, item.transaction_id)
        if key in known:
            results.append((known[key], False))
        elif key in new:
            results.append((new[key], False))
        else:
            new[key] = Conversion(**vars(item))
            results.append((new[key], True))
    if not new:
        return results
    try:
        with transaction.atomic():
            announce_many(Conversion.objects.bulk_create(new.values()), source=source)
    except IntegrityError:
        return [create_conversion(item, source=source) for item in items]
    return results


def announce_many(conversions: list[Conversion], *, source: str) -> None:
    """announce() for new conversions, in bulk. Must run inside the transaction that wrote them."""
    changes = ConversionStatusChange.objects.bulk_create(
        ConversionStatusChange(
            conversion=conversion, from_status="", to_status=conversion.status, source=source
        )
        for conversion in conversions
    )
    if not connection.features.can_return_rows_from_bulk_insert:  # SQLite < 3.35: no ids back
        written = ConversionStatusChange.objects.filter(conversion__in=conversions)
        by_conversion = {change.conversion_id: change for change in written}  # one each: new
        changes = [by_conversion[c.pk] for c in conversions]
    events = list(zip(conversions, changes, strict=True))
    conversion_events.send(sender=Conversion, events=events, source=source)


def _existing(offer: Offer, transaction_id: str) -> Conversion | None:
    return Conversion.objects.filter(offer=offer, transaction_id=transaction_id).first()


def update_conversion(
    conversion: Conversion, *, source: str, status: str | None = None, **amounts
) -> Conversion:
    """Change a conversion's status and/or amounts; a new status is recorded and announced."""
    with transaction.atomic():
        locked = Conversion.objects.select_for_update().get(pk=conversion.pk)
        previous = locked.status
        for field, value in amounts.items():
            setattr(locked, field, value)
        if status is not None:
            locked.status = status
        locked.save()
        if status is not None and status != previous:
            announce(locked, from_status=previous, source=source)
    return locked


def save_from_admin(conversion: Conversion, *, is_new: bool) -> None:
    """Save a conversion edited in the admin; a new or changed status triggers like the API."""
    with transaction.atomic():
        previous = (
            ""
            if is_new
            else (
                Conversion.objects.select_for_update()
                .values_list("status", flat=True)
                .get(pk=conversion.pk)
            )
        )
        conversion.save()
        if is_new or previous != conversion.status:
            announce(conversion, from_status=previous, source=StatusChangeSource.ADMIN, new=is_new)


def announce(conversion: Conversion, *, from_status: str, source: str, new: bool = False) -> None:
    """Record that `conversion` entered its current status and tell the listeners.

    Must run inside the transaction that wrote the status (`new`: that created the conversion).
    """
    change = ConversionStatusChange.objects.create(
        conversion=conversion,
        from_status=from_status,
        to_status=conversion.status,
        source=source,
    )
    conversion_event.send(
        sender=Conversion,
        conversion=conversion,
        status=conversion.status,
        status_change=change,
        source=source,
        new=new,
    )


__all__ = [
    "ConversionInput",
    "StatusChangeSource",
    "announce",
    "create_conversion",
    "create_conversions_bulk",
    "record_click",
    "save_from_admin",
    "update_conversion",
]
