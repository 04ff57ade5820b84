"""Which postbacks fire for a conversion event, and the Delivery rows that record them."""

from collections import defaultdict

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from affiliates.models import Offer
from conversions.models import Conversion, ConversionStatusChange, ConversionType
from postbacks.models import Delivery, Postback, Scope


def matching_postbacks(conversion: Conversion, status: str) -> list[Postback]:
    """Active postbacks of the conversion's affiliate whose scope, types and statuses fit.

    One query (it runs on every conversion event): the scope is decided in SQL, as
    Postback.covers_offer decides it for rows in hand.
    """
    listed = Postback.offers.through.objects.filter(
        postback=OuterRef("pk"), offer=conversion.offer_id
    )
    candidates = (
        Postback.objects.filter(
            affiliate_id=conversion.affiliate_id,
            active=True,
            conversion_types=conversion.conversion_type_id,
        )
        .annotate(lists_offer=Exists(listed))
        .filter(Q(scope=Scope.GLOBAL, lists_offer=False) | Q(scope=Scope.OFFERS, lists_offer=True))
        .order_by("pk")  # not Meta.ordering, which joins the affiliate
    )
    return [postback for postback in candidates if postback.fires_on_status(status)]


def create_deliveries(
    conversion: Conversion, status_change: ConversionStatusChange
) -> list[Delivery]:
    """One Delivery per matching postback for this status change, to enqueue on commit.

    Call inside the transaction that wrote `status_change`. The change is the once-only key
    (unique per postback): services.py writes a row only for a real change and announces it
    once, so its deliveries are new here; a change back into an earlier status is a new row
    and fires again.
    """
    status = status_change.to_status
    postbacks = matching_postbacks(conversion, status)
    now = timezone.now()
    return _insert_new(
        [
            Delivery(
                postback=postback,
                conversion=conversion,
                status=status,
                status_change=status_change,
                created=now,
                enqueued_at=now,
            )
            for postback in postbacks
        ]
    )


def create_deliveries_bulk(
    events: list[tuple[Conversion, ConversionStatusChange]],
) -> list[Delivery]:
    """create_deliveries for the events of many new conversions, in a fixed number of queries
    (bulk ingest)."""
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
    now = timezone.now()
    rows = [
        Delivery(
            postback=postback,
            conversion=conversion,
            status=change.to_status,
            status_change=change,
            created=now,
            enqueued_at=now,
        )
        for conversion, change in events
        for postback in by_affiliate[conversion.affiliate_id]
        if conversion.conversion_type_id in postback.type_ids
        and postback.fires_on_status(change.to_status)
        and postback.covers_offer(conversion.offer_id)
    ]
    return _insert_new(rows)


def _insert_new(rows: list[Delivery]) -> list[Delivery]:
    """Insert deliveries of new status changes (no conflict possible) and return them with ids."""
    if not rows:
        return []
    inserted = Delivery.objects.bulk_create(rows)
    if connection.features.can_return_rows_from_bulk_insert:  # PostgreSQL, SQLite >= 3.35
        return inserted
    return list(Delivery.objects.filter(uid__in=[row.uid for row in rows]))
