"""Writing many rows with one prepared INSERT, for the paths that write the most.

`bulk_create` compiles a statement with a placeholder per value, asking every field of every
object for its SQL: for 1,000 conversions of 25 columns that compilation took most of the bulk
endpoint's database time. `insert_rows` builds the INSERT once per model and database and runs it
for all rows (executemany: on SQLite one prepared statement, on PostgreSQL psycopg's pipeline).
Values are prepared by the fields themselves, as `bulk_create` does (`pre_save` then
`get_db_prep_save`), except plain text, integers and booleans, which pass as they are.

Unlike `save()`/`bulk_create` it sends no signals and sets no database-generated primary key:
for models whose key is made in Python (UUIDs) or rows nobody reads back by key.
"""

from functools import cache

from django.db import connection, models

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
    sql, fields = _statement(model, connection.vendor)
    params = [[_prepared(field, field.pre_save(obj, True)) for field in fields] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return len(objs)


def _prepared(field: models.Field, value):
    if value is None:
        return None
    plain = _PLAIN.get(type(value))
    if plain is not None and isinstance(_target(field), plain):
        return value
    return field.get_db_prep_save(value, connection)


@cache
def _target(field: models.Field) -> models.Field:
    """The field whose type the column has: a foreign key's target field."""
    return field.target_field if field.is_relation else field


@cache
def _statement(model: type[models.Model], vendor: str) -> tuple[str, list[models.Field]]:
    opts = model._meta
    fields = [
        f
        for f in opts.concrete_fields
        if not (f.primary_key and getattr(f, "db_returning", False))  # an AUTOINCREMENT key
    ]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(opts.db_table)} ({columns}) VALUES ({marks})", fields
