"""Which postbacks fire for a conversion event, and the Delivery rows that record them."""

from collections import defaultdict

from django.db.models import Prefetch

from affiliates.models import Offer
from conversions.models import Conversion, ConversionType

from .models import Delivery, DeliveryState, Postback


def matching_postbacks(conversion: Conversion, status: str) -> list[Postback]:
    """Active postbacks of the conversion's affiliate whose scope, types and statuses fit."""
    candidates = Postback.objects.filter(
        affiliate_id=conversion.affiliate_id,
        active=True,
        conversion_types=conversion.conversion_type_id,
    ).prefetch_related(Prefetch("offers", queryset=Offer.objects.only("id")))
    return [
        postback
        for postback in candidates
        if postback.fires_on_status(status) and postback.covers_offer(conversion.offer_id)
    ]


def create_deliveries(conversion: Conversion, status: str) -> list[Delivery]:
    """One Delivery per matching postback for this event; an existing one is kept, not repeated.

    Call inside the transaction that changed the conversion. Returns the deliveries still
    waiting for their first attempt.
    """
    postbacks = matching_postbacks(conversion, status)
    if not postbacks:
        return []
    Delivery.objects.bulk_create(
        [Delivery(postback=p, conversion=conversion, status=status) for p in postbacks],
        ignore_conflicts=True,
    )
    return list(
        Delivery.objects.filter(
            conversion=conversion,
            status=status,
            postback__in=postbacks,
            is_test=False,
            state=DeliveryState.PENDING,
            attempts=0,
        )
    )


def create_deliveries_bulk(events: list[tuple[Conversion, str]]) -> list[Delivery]:
    """create_deliveries for many events in a fixed number of queries (bulk ingest)."""
    by_affiliate = defaultdict(list)
    candidates = Postback.objects.filter(
        affiliate_id__in={conversion.affiliate_id for conversion, _ in events}, active=True
    ).prefetch_related(
        Prefetch("offers", queryset=Offer.objects.only("id")),
        Prefetch("conversion_types", queryset=ConversionType.objects.only("id")),
    )
    for postback in candidates:
        postback.type_ids = {t.pk for t in postback.conversion_types.all()}
        by_affiliate[postback.affiliate_id].append(postback)
    rows = [
        Delivery(postback=postback, conversion=conversion, status=status)
        for conversion, status in events
        for postback in by_affiliate[conversion.affiliate_id]
        if conversion.conversion_type_id in postback.type_ids
        and postback.fires_on_status(status)
        and postback.covers_offer(conversion.offer_id)
    ]
    if not rows:
        return []
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    wanted = {(d.postback_id, d.conversion_id, d.status) for d in rows}
    stored = Delivery.objects.filter(
        conversion__in={d.conversion_id for d in rows},
        is_test=False,
        state=DeliveryState.PENDING,
        attempts=0,
    )
    return [d for d in stored if (d.postback_id, d.conversion_id, d.status) in wanted]
