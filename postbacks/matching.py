"""Which postbacks fire for a conversion event, and the Delivery rows that record them."""

import functools

from django.db import connection, models
from django.db.models.expressions import RawSQL
from django.utils import timezone

from conversions.models import Conversion, ConversionStatusChange
from postbacks.models import Delivery, Postback, Scope


class NotFired(models.TextChoices):
    """Why a postback of the conversion's affiliate does not fire for an event."""

    INACTIVE = "inactive", "postback inactive"
    PAUSED = "paused", "postback paused"
    SCOPE = "scope", "offer out of the postback's scope"
    TYPE = "type", "conversion type not selected"
    STATUS = "status", "status not selected"


def not_fired_reasons(postback: Postback, conversion: Conversion, status: str) -> list[NotFired]:
    """Every reason the postback does not fire for the conversion entering `status`; empty when
    it fires. The rules of _MATCHING for rows in hand, so the conversion page's history
    (postbacks/explain.py) can say why not; the postback's offers and conversion types are read
    from its prefetched rows when there are some."""
    reasons = []
    if not postback.active:
        reasons.append(NotFired.PAUSED if postback.paused_reason else NotFired.INACTIVE)
    if not postback.covers_offer(conversion.offer_id):
        reasons.append(NotFired.SCOPE)
    if conversion.conversion_type_id not in _type_ids(postback):
        reasons.append(NotFired.TYPE)
    if not postback.fires_on_status(status):
        reasons.append(NotFired.STATUS)
    return reasons


def _type_ids(postback: Postback) -> set[int]:
    if not hasattr(postback, "type_ids"):  # once per postback, not once per event
        postback.type_ids = {t.pk for t in postback.conversion_types.all()}
    return postback.type_ids


def matching_postbacks(conversion: Conversion, status: str) -> list[Postback]:
    """Active postbacks of the conversion's affiliate whose scope, types and statuses fit.

    One query; the rule is _MATCHING (below), the same that create_deliveries inserts by.
    """
    sql, params = _matching_sql(conversion, status)
    matching = RawSQL(f"SELECT p.id FROM {_POSTBACK} p WHERE {sql}", params)
    return list(Postback.objects.filter(pk__in=matching).order_by("pk"))


def create_deliveries(conversion: Conversion, status_change: ConversionStatusChange) -> list[int]:
    """One Delivery per matching postback for this status change; returns their ids, to enqueue
    on commit.

    Call inside the transaction that wrote `status_change`. The change is the once-only key
    (unique per postback): services.py writes a row only for a real change and announces it
    once, so its deliveries are new here; a change back into an earlier status is a new row
    and fires again.

    One statement, INSERT ... SELECT ... RETURNING: the postbacks are matched and the rows
    written by the database, so neither the Python work nor the statements grow with the number
    of postbacks an affiliate has (it runs on every conversion event).
    """
    return create_deliveries_bulk([(conversion, status_change)])


def create_deliveries_bulk(events: list[tuple[Conversion, ConversionStatusChange]]) -> list[int]:
    """create_deliveries for many events (bulk ingest): one statement per EVENTS_AT_ONCE events,
    the events joined to the postbacks as a VALUES list."""
    ids = []
    for start in range(0, len(events), EVENTS_AT_ONCE):
        ids += _insert_matching(events[start : start + EVENTS_AT_ONCE])
    return ids


EVENTS_AT_ONCE = 500  # 6 parameters each: well inside SQLite's 32,766


def _insert_matching(events) -> list[int]:
    if not events:
        return []
    rows = [
        (
            _CONVERSION_PK.get_db_prep_value(conversion.pk, connection),
            conversion.affiliate_id,
            conversion.offer_id,
            conversion.conversion_type_id,
            change.pk,
            change.to_status,
        )
        for conversion, change in events
    ]
    if connection.vendor == "postgresql":
        # One array per column, unnested into rows: 6 parameters however many events, where a
        # VALUES list of 500 rows had 3,000 for psycopg to split out of the query text on the
        # client (a fifth of a bulk call) and for PostgreSQL to plan.
        arrays = ", ".join(f"%s::{kind}[]" for kind in _EVENT_KINDS)
        names = ", ".join(f"column{n}" for n in range(1, len(_EVENT_KINDS) + 1))
        source, params = (
            f"unnest({arrays}) AS e({names})",
            [list(c) for c in zip(*rows, strict=True)],
        )
    else:
        row = "(" + ", ".join(["%s"] * len(_EVENT_KINDS)) + ")"
        source = f"(VALUES {', '.join([row] * len(events))}) e"
        params = [value for values in rows for value in values]
    columns, values, fixed = _delivery_columns()
    where = _matching_where(**_EVENT_COLUMNS)
    sql = (
        f"INSERT INTO {_quote(Delivery._meta.db_table)} ({columns}) "
        f"SELECT {values} FROM {source} "
        f"JOIN {_POSTBACK} p ON p.affiliate_id = e.column2 WHERE {where} "
        "ORDER BY e.column5, p.id RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, fixed + params)
        return [found[0] for found in cursor.fetchall()]


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


_POSTBACK = Postback._meta.db_table
_CONVERSION_PK = Conversion._meta.pk
_TYPES = Postback.conversion_types.through._meta.db_table
_OFFERS = Postback.offers.through._meta.db_table

# The events' columns (column1..6 on both databases) and their types for PostgreSQL's arrays.
_EVENT_KINDS = ("uuid", "bigint", "bigint", "bigint", "bigint", "text")
_EVENT_COLUMNS = dict(
    affiliate="e.column2", offer="e.column3", conversion_type="e.column4", status="e.column6"
)

# Which postbacks fire for an event: the one statement of the rule (not_fired_reasons says the
# same for rows in hand; tests/test_hot_paths.py keeps the two in agreement). Active, of the
# conversion's affiliate, listing its conversion type and the status; global scope: the offer is
# not listed (excluded); offer scope: the offer is listed.
_MATCHING = (
    "p.affiliate_id = {affiliate} AND p.active AND {has_status} "
    f"AND EXISTS (SELECT 1 FROM {_TYPES} t WHERE t.postback_id = p.id "
    "AND t.conversiontype_id = {conversion_type}) "
    f"AND (p.scope = '{Scope.OFFERS.value}') = EXISTS (SELECT 1 FROM {_OFFERS} o "
    "WHERE o.postback_id = p.id AND o.offer_id = {offer})"
)
_HAS_STATUS = {
    "postgresql": "p.statuses @> jsonb_build_array({status}::text)",
    "sqlite": "EXISTS (SELECT 1 FROM json_each(p.statuses) s WHERE s.value = {status})",
}


def _matching_where(*, affiliate, offer, conversion_type, status) -> str:
    has_status = _HAS_STATUS[connection.vendor].format(status=status)
    return _MATCHING.format(
        affiliate=affiliate, has_status=has_status, conversion_type=conversion_type, offer=offer
    )


def _matching_sql(conversion: Conversion, status: str) -> tuple[str, list]:
    """The rule for one event, with parameters (matching_postbacks)."""
    sql = _matching_where(affiliate="%s", offer="%s", conversion_type="%s", status="%s")
    params = [conversion.affiliate_id, status, conversion.conversion_type_id, conversion.offer_id]
    return sql, params


# A random version-4 UUID per row, made by the database (Delivery.uid; SQLite stores it as 32
# hex digits).
_NEW_UID = {
    "postgresql": "gen_random_uuid()",
    "sqlite": "lower(hex(randomblob(6)) || '4' || substr(hex(randomblob(2)), 2) "
    "|| substr('89ab', 1 + abs(random()) %% 4, 1) || substr(hex(randomblob(2)), 2) "
    "|| hex(randomblob(6)))",
}


def _delivery_columns():
    """The INSERT's column list, the SELECT's value list and its parameters: every column of
    Delivery, from the event (e) and the postback (p), or at the model default (so a column
    added later is filled)."""
    columns, values, given = _delivery_layout(connection.vendor)
    now = timezone.now()
    params = [
        field.get_db_prep_save(now if stamped else field.get_default(), connection)
        for field, stamped in given
    ]
    return columns, values, params


@functools.cache
def _delivery_layout(vendor: str):
    """What _delivery_columns builds once per process: the column and value lists, and the
    fields given as parameters (True: stamped with the time of the insert)."""
    from_rows = {
        "postback_id": "p.id",
        "uid": _NEW_UID[vendor],
        "conversion_id": "e.column1",
        "status_change_id": "e.column5",
        "status": "e.column6",
    }
    stamped = {"created", "enqueued_at"}
    columns, values, given = [], [], []
    for field in Delivery._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(_quote(field.column))
        if field.attname in from_rows:
            values.append(from_rows[field.attname])
        else:
            values.append("%s")
            given.append((field, field.attname in stamped))
    return ", ".join(columns), ", ".join(values), given
