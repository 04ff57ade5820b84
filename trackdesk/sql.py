"""Statements built once per process for the paths that run them the most: many rows written
with one prepared INSERT or UPDATE (`insert_rows`, `update_rows`, `update_row` for one with a
RETURNING), and a query compiled once per shape (`CompiledOnce`).

`bulk_create` compiles a statement with a placeholder per value, asking every field of every
object for its SQL: for 1,000 conversions of 25 columns that compilation took most of the bulk
endpoint's database time. `insert_rows` builds the INSERT once per model and database and runs it
for all rows (`execute_each`: one row by execute, several by executemany; on PostgreSQL 50 rows
or more by COPY).
Values are prepared by the fields themselves, as `bulk_create` does (`pre_save` then
`get_db_prep_save`), except plain text, integers and booleans, which pass as they are.

Unlike `save()`/`bulk_create` it sends no signals and sets no database-generated primary key:
for models whose key is made in Python (UUIDs) or rows nobody reads back by key.
"""

import datetime
import uuid
from collections import OrderedDict
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.query import get_related_populators

# Values of these types go to these fields' columns as they are (what get_db_prep_save returns).
_PLAIN = {
    str: (models.CharField, models.TextField),
    int: (models.IntegerField, models.AutoField, models.BigAutoField),
    bool: (models.BooleanField,),
}


def insert_rows(model: type[models.Model], objs) -> int:
    """INSERT every object of `model` (all concrete columns but a database-generated key);
    returns how many. Call inside a transaction when they must be written together."""
    objs = list(objs)
    if not objs:
        return 0
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself, not the proxy, per value
    sql, columns = _statement(model, db.vendor)
    params = [[column.value(obj, db) for column in columns] for obj in objs]
    if db.vendor == "postgresql" and len(objs) >= COPY_FROM:
        _copy(db, model, columns, params)
    else:
        execute_each(sql, params)
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return len(objs)


# From this many rows on, PostgreSQL gets them by COPY: psycopg binds parameters on the client
# and PostgreSQL parses every statement of an executemany, so 1,000 conversions took 154 ms of
# the bulk call, where COPY streams them as one.
COPY_FROM = 50


def _copy(db, model, columns, rows) -> None:
    quote = db.ops.quote_name
    names = ", ".join(quote(column.field.column) for column in columns)
    sql = f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN"
    with db.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)
    if db.queries_logged:  # COPY bypasses Django's cursor wrapper: keep the statement counts
        db.queries_log.append({"sql": f"{sql} -- {len(rows)} rows", "time": "0.000"})


def update_rows(model: type[models.Model], objs, names) -> int:
    """UPDATE the fields `names` of every object, by primary key, with one prepared statement
    run for all of them; returns how many. Values are prepared as insert_rows prepares them.

    Much cheaper than bulk_update's CASE expressions for a few hundred rows, and on PostgreSQL
    cheaper in CPU than one UPDATE ... FROM (VALUES ...): Django binds parameters on the
    client, and quoting 2,750 of them into one statement took 17-23 ms per 250 rows against
    11 ms."""
    objs = list(objs)
    if not objs:
        return 0
    db = connections[DEFAULT_DB_ALIAS]
    sql, columns = _update_statement(model, tuple(names), db.vendor)
    execute_each(sql, [_update_params(obj, columns, db) for obj in objs])
    return len(objs)


def update_row(obj: models.Model, names, returning: str = "", params=()) -> tuple | None:
    """UPDATE the fields `names` of one object, as update_rows does; with `returning` (SQL, its
    own `params` after the row's) the statement ends in RETURNING it and gives back the row."""
    if not returning:
        update_rows(type(obj), [obj], names)
        return None
    db = connections[DEFAULT_DB_ALIAS]
    sql, columns = _update_statement(type(obj), tuple(names), db.vendor)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {returning}", [*_update_params(obj, columns, db), *params])
        return cursor.fetchone()


def _update_params(obj, columns, db) -> list:
    """The SET values of update_rows' statement, then the key."""
    return [column.value(obj, db, add=False) for column in columns] + [obj.pk]


def execute_each(sql: str, params: list) -> None:
    """Run `sql` once per parameter list: executemany for several, but a plain execute for one
    (the common case of a single conversion or a trickle's one delivery), which on PostgreSQL
    skips entering and leaving psycopg's pipeline mode."""
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)


class _Column:
    """How one field's value is read from an object and prepared, decided once per field."""

    def __init__(self, field: models.Field):
        self.field, self.attname = field, field.attname
        # Field.pre_save only reads the attribute; auto_now(_add) and the like set it.
        self.pre_save = type(field).pre_save is not models.Field.pre_save
        target = field.target_field if field.is_relation else field
        self.plain = {kind for kind, fields in _PLAIN.items() if isinstance(target, fields)}

    def value(self, obj, db, add: bool = True):
        value = self.field.pre_save(obj, add) if self.pre_save else getattr(obj, self.attname)
        if value is None or type(value) in self.plain:
            return value
        return self.field.get_db_prep_save(value, db)


@cache
def _statement(model: type[models.Model], vendor: str) -> tuple[str, list[_Column]]:
    opts = model._meta
    fields = [
        f
        for f in opts.concrete_fields
        if not (f.primary_key and getattr(f, "db_returning", False))  # an AUTOINCREMENT key
    ]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(opts.db_table)} ({columns}) VALUES ({marks})"
    return sql, [_Column(f) for f in fields]


class CompiledOnce:
    """A query whose shape never changes, compiled to SQL once per shape; each run only puts
    its values in their places.

    Django builds and compiles a queryset anew every time it runs: for the dispatch worker's
    claim, a few dozen microseconds of database work took a millisecond of Python (the filters,
    the "no earlier open delivery" subquery, the compiler). `build(**values)` returns the
    queryset; it is called once per shape with stand-in values (datetimes, integers, UUIDs, or
    lists of them: a list's length is part of the shape), and the compiled parameters that are
    those stand-ins become slots for the values of later runs. Nothing else in the queryset may
    depend on the values; what changes the SQL itself (a LIMIT, which the compiler writes into
    it) is passed as `fixed` and is part of the shape. A stand-in that the compiled parameters
    do not hold (a value the query transformed) is refused at once: no slot goes unnoticed.
    """

    MAX_SHAPES = 64

    def __init__(self, build):
        self.build = build
        self.shapes: OrderedDict = OrderedDict()

    def _compiled(self, fixed: dict | None, **values):
        fixed = fixed or {}
        lengths = ((name, len(v)) for name, v in values.items() if _many(v))
        key = (connection.vendor, *sorted(fixed.items()), *lengths)
        compiled = self.shapes.get(key)
        if compiled is None:
            compiled = self.shapes[key] = self._compile(fixed, values)
            if len(self.shapes) > self.MAX_SHAPES:
                self.shapes.popitem(last=False)
        sql, params, slots, compiler = compiled
        flat = _flatten(values)
        params = [
            param if slot is None else prep(flat[slot])
            for param, (slot, prep) in zip(params, slots, strict=True)
        ]
        return sql, params, compiler

    def sql(self, fixed: dict | None = None, **values) -> tuple[str, list]:
        """SQL and parameters of build(**fixed, **values)."""
        sql, params, _ = self._compiled(fixed, **values)
        return sql, params

    def objects(self, fixed: dict | None = None, **values) -> list:
        """The model instances build(**fixed, **values) would give, select_related objects
        included, made as Django's ModelIterable makes them (no annotations, no prefetch)."""
        sql, params, compiler = self._compiled(fixed, **values)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        names = [column[0].target.attname for column in select[start:end]]
        related = get_related_populators(klass_info, select, connection.alias)
        found = []
        for row in compiler.results_iter([rows]):
            obj = klass_info["model"].from_db(connection.alias, names, row[start:end])
            for populator in related:
                populator.populate(row, obj)
            found.append(obj)
        return found

    def _compile(self, fixed: dict, values: dict):
        standins, made = {}, _Standins()
        for name, value in values.items():
            standins[name] = [made.like(v) for v in value] if _many(value) else made.like(value)
        query = self.build(**fixed, **standins).query
        if query.annotation_select or query.extra_select:
            raise ValueError("CompiledOnce takes no annotations or extra columns")
        compiler = query.get_compiler(DEFAULT_DB_ALIAS)
        sql, params = compiler.as_sql()
        slots, found = [], set()
        for param in params:
            slot = made.slot_of(param)
            slots.append(slot)
            if slot[0] is not None:
                found.add(slot[0])
        missing = set(range(made.count)) - found
        if missing:
            raise ValueError(f"{len(missing)} values do not appear as parameters of the query")
        return sql, list(params), slots, compiler


def _many(value) -> bool:
    return isinstance(value, (list, tuple, set, frozenset))


def _flatten(values: dict) -> list:
    flat = []
    for value in values.values():
        flat.extend(value if _many(value) else [value])
    return flat


class _Standins:
    """Distinct stand-in values, each with the forms the compiler may pass it in (as it is, or
    as the database adapter prepared it)."""

    EPOCH = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)

    def __init__(self):
        self.count = 0
        self.forms: dict = {}  # a parameter as compiled -> (slot, how to prepare a value)

    def like(self, value):
        n, self.count = self.count, self.count + 1
        if isinstance(value, datetime.datetime):
            standin = self.EPOCH + datetime.timedelta(microseconds=n + 1)
            preps = [lambda v: v, connection.ops.adapt_datetimefield_value]
        elif isinstance(value, uuid.UUID):
            standin = uuid.UUID(int=0xFEED << 64 | n)
            preps = [lambda v: v, lambda v: v.hex, str]
        elif isinstance(value, int) and not isinstance(value, bool):
            standin = -(10**12) - n
            preps = [lambda v: v]
        else:
            raise TypeError(f"CompiledOnce takes datetimes, integers and UUIDs, not {value!r}")
        for prep in preps:
            self.forms.setdefault(_hashable(prep(standin)), (n, prep))
        return standin

    def slot_of(self, param):
        return self.forms.get(_hashable(param), (None, None))


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return (type(value), value)


@cache
def _update_statement(model, names: tuple, vendor: str) -> tuple[str, list[_Column]]:
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    table, key = quote(model._meta.db_table), quote(model._meta.pk.column)
    return f"UPDATE {table} SET {assignments} WHERE {key} = %s", [_Column(f) for f in fields]
