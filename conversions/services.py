"""Writes to clicks and conversions: every path (API, pixel, admin, import) goes through here."""

import copy
import logging
from dataclasses import dataclass, replace
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from affiliates.models import Affiliate, Offer
from trackdesk import metrics
from trackdesk.currencies import quantum
from trackdesk.memo import Memo
from trackdesk.sql import insert_rows

from .exchange import ConversionError, convert_rounded
from .models import (
    Click,
    Conversion,
    ConversionStatus,
    ConversionStatusChange,
    ConversionType,
    PayoutRule,
    PayoutRuleKind,
    StatusChangeSource,
)
from .signals import conversion_event, conversion_events

log = logging.getLogger(__name__)

AFF_PARAMS = ("affS1", "affS2", "affS3", "affS4", "affS5")

# Read by every conversion, changed a few times a day: remembered for a few seconds per process
# (trackdesk/memo.py says how soon a change applies).
_types = Memo("conversion types", models=[ConversionType])
_rules = Memo("payout rules", models=[PayoutRule])
_owners = Memo("offers and affiliates of clicks", models=[Offer, Affiliate])


def conversion_type(code: str) -> ConversionType | None:
    """The conversion type with this code, or None."""
    return _types.get(code, lambda: ConversionType.objects.filter(code=code).first())


def with_owners(click: Click) -> Click:
    """The click with its offer and affiliate attached from memory (each a copy: a request
    may change its own). Saves every conversion given by cid a join of three tables."""
    for model, name in ((Offer, "offer"), (Affiliate, "affiliate")):
        pk = getattr(click, f"{name}_id")
        owner = _owners.get((name, pk), lambda m=model, pk=pk: m.objects.filter(pk=pk).first())
        if owner is not None:  # else (deleted since) the click reads it itself, and fails so
            setattr(click, name, copy.copy(owner))
    return click


def record_click(
    *, offer: Offer, affiliate: Affiliate, params, ip=None, user_agent="", referrer=""
) -> Click:
    """Store a click with the affiliate's sub-ids (affS1..affS5) taken from `params`."""
    click = _click(offer.pk, affiliate.pk, params, ip, user_agent, referrer)
    click.save(force_insert=True)
    return click


def track_click(*, offer_id: int, affiliate_id: int, params, ip=None, user_agent="", referrer=""):
    """record_click for the tracking link, the busiest request: one prepared INSERT, and the
    click's database id is not read back (the visitor is sent on with its cid)."""
    click = _click(offer_id, affiliate_id, params, ip, user_agent, referrer)
    insert_rows(Click, [click])
    return click.cid


def _click(offer_id, affiliate_id, params, ip, user_agent, referrer) -> Click:
    subs = {f"aff_s{i}": (params.get(name) or "")[:255] for i, name in enumerate(AFF_PARAMS, 1)}
    return Click(
        offer_id=offer_id,
        affiliate_id=affiliate_id,
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
    [data] = with_rule_payouts([data])
    try:
        with transaction.atomic():
            conversion = Conversion(**vars(data))
            insert_rows(Conversion, [conversion])  # no signals: none listen to Conversion
            change = announce(conversion, from_status="", source=source)
    except IntegrityError:
        existing = _existing(data.offer, data.transaction_id)
        if existing is None:
            raise
        return existing, False
    _history_in_hand(conversion, [change])
    metrics.conversions_ingested("single", source)
    return conversion, True


def _history_in_hand(conversion: Conversion, changes: list[ConversionStatusChange]) -> None:
    """Give `conversion.status_changes.all()` the rows just written, as a prefetch would, so
    that answering with the new conversion reads nothing back."""
    rows = conversion.status_changes.all()
    rows._result_cache, rows._prefetch_done = changes, True
    conversion._prefetched_objects_cache = {"status_changes": rows}


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
    items = with_rule_payouts(items)
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
            insert_rows(Conversion, new.values())
            announce_many(list(new.values()), source=source)
    except IntegrityError:
        return [create_conversion(item, source=source) for item in items]
    metrics.conversions_ingested("bulk", source, len(new))
    return results


def with_rule_payouts(items: list[ConversionInput]) -> list[ConversionInput]:
    """`items`, those without a payout given the one their offer's payout rule sets.

    A conversion's own payout always wins. At most one query for the rules (none while this
    process remembers them), and one lookup of rates per fixed rule and conversion currency
    that differ, however many items there are.
    """
    missing = [item for item in items if item.payout is None]
    if not missing:
        return items
    rules = _rules.get_many(
        {(item.offer.pk, item.conversion_type.pk) for item in missing}, _load_rules
    )
    fixed = {}  # (rule id, currency) → payout: converted once per batch
    filled = []
    for item in items:
        rule = rules.get((item.offer.pk, item.conversion_type.pk))
        if item.payout is not None or rule is None:
            filled.append(item)
            continue
        if rule.kind == PayoutRuleKind.FIXED:
            key = (rule.pk, item.currency)
            if key not in fixed:
                fixed[key] = _fixed_payout(rule, item)
            payout = fixed[key]
        else:
            payout = _percent_payout(rule, item)
        filled.append(replace(item, payout=payout) if payout is not None else item)
    return filled


def _load_rules(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], PayoutRule]:
    """The active rule of each (offer id, conversion type id) that has one; one query."""
    found = PayoutRule.objects.filter(
        active=True,
        offer__in={offer for offer, _ in pairs},
        conversion_type__in={kind for _, kind in pairs},
    )
    return {(rule.offer_id, rule.conversion_type_id): rule for rule in found}


def _fixed_payout(rule: PayoutRule, item: ConversionInput) -> Decimal | None:
    """The rule's amount in the conversion's currency; None (and why, in the log) when no
    stored rate expresses it there: a conversion holds its amounts in one currency only."""
    if rule.currency == item.currency:
        return rule.amount  # as written: a sub-cent payout stays one
    try:
        payout = convert_rounded(
            rule.amount, rule.currency, item.currency, timezone.now().astimezone(UTC).date()
        )
    except ConversionError as exc:
        _log_not_applied(rule, item, str(exc))
        return None
    return _storable(payout, rule, item)


def _percent_payout(rule: PayoutRule, item: ConversionInput) -> Decimal | None:
    """The rule's percentage of the sale amount, rounded half up to the currency's minor unit;
    None without a sale amount."""
    if item.sale_amount is None:
        _log_not_applied(rule, item, "the conversion has no sale amount", level=logging.INFO)
        return None
    with localcontext() as ctx:
        ctx.prec = 40  # 15 significant digits times 15: exact before rounding once
        share = item.sale_amount * rule.amount / 100
        payout = share.quantize(quantum(item.currency), rounding=ROUND_HALF_UP)
    return _storable(payout, rule, item)


def _storable(payout: Decimal, rule: PayoutRule, item: ConversionInput) -> Decimal | None:
    """`payout` if the payout field takes it: rounding up or a rate can carry an amount past
    the digits a conversion stores, and a refused value would fail the whole conversion."""
    try:
        Conversion._meta.get_field("payout").run_validators(payout)
    except ValidationError as exc:
        _log_not_applied(rule, item, f"{payout} is not a storable payout: {' '.join(exc.messages)}")
        return None
    return payout


def _log_not_applied(
    rule: PayoutRule, item: ConversionInput, reason: str, level: int = logging.WARNING
) -> None:
    log.log(
        level,
        "Payout rule %s (offer %s, type %s) not applied to transaction %r: %s",
        rule.pk,
        item.offer.pk,
        item.conversion_type.code,
        item.transaction_id,
        reason,
    )


def announce_many(conversions: list[Conversion], *, source: str) -> None:
    """announce() for new conversions, in bulk. Must run inside the transaction that wrote them."""
    changes = _first_status_changes(conversions, source)
    events = list(zip(conversions, changes, strict=True))
    conversion_events.send(sender=Conversion, events=events, source=source)


def _first_status_changes(conversions: list[Conversion], source: str):
    """Write each new conversion's first status-history row; returns them, in order.

    One INSERT ... SELECT from the conversions just written, returning the new ids, where
    bulk_create compiled a placeholder per value; without RETURNING (SQLite before 3.35),
    bulk_create and a read-back.
    """
    now = timezone.now()
    made = {
        c.pk: ConversionStatusChange(
            conversion=c, from_status="", to_status=c.status, source=source, created=now
        )
        for c in conversions
    }
    if not connection.features.can_return_rows_from_bulk_insert:
        ConversionStatusChange.objects.bulk_create(made.values())
        written = ConversionStatusChange.objects.filter(conversion__in=conversions)
        return [{c.conversion_id: c for c in written}[c.pk] for c in conversions]
    quote = connection.ops.quote_name
    history, table = ConversionStatusChange._meta.db_table, Conversion._meta.db_table
    key = Conversion._meta.pk
    for start in range(0, len(conversions), 5000):  # within SQLite's 32,766 parameters
        chunk = conversions[start : start + 5000]
        ids = [key.get_db_prep_value(c.pk, connection) for c in chunk]
        if connection.vendor == "postgresql":  # one array, not a parameter per id to bind
            which, ids = "= ANY(%s::uuid[])", [ids]
        else:
            which = f"IN ({', '.join(['%s'] * len(chunk))})"
        sql = (
            f"INSERT INTO {quote(history)} "
            "(conversion_id, from_status, to_status, source, created) "
            f"SELECT id, '', status, %s, %s FROM {quote(table)} WHERE id {which} "
            "RETURNING id, conversion_id"
        )
        params = [
            source,
            ConversionStatusChange._meta.get_field("created").get_db_prep_save(now, connection),
            *ids,
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        for pk, conversion_id in rows:
            change = made[key.to_python(conversion_id)]
            change.pk, change._state.adding, change._state.db = pk, False, connection.alias
    return list(made.values())


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
            metrics.conversions_ingested("status", source)
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
            announce(conversion, from_status=previous, source=StatusChangeSource.ADMIN)


def announce(conversion: Conversion, *, from_status: str, source: str) -> ConversionStatusChange:
    """Record that `conversion` entered its current status and tell the listeners; returns the
    status-history row.

    Must run inside the transaction that wrote the status.
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
    )
    return change


__all__ = [
    "ConversionInput",
    "StatusChangeSource",
    "announce",
    "conversion_type",
    "create_conversion",
    "create_conversions_bulk",
    "record_click",
    "track_click",
    "save_from_admin",
    "update_conversion",
    "with_rule_payouts",
]
