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

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

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
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return len(objs)


class _Column:
    """How one field's value is read from an object and prepared, decided once per field."""

    def __init__(self, field: models.Field):
        self.field, self.attname = field, field.attname
        # Field.pre_save only reads the attribute; auto_now(_add) and the like set it.
        self.pre_save = type(field).pre_save is not models.Field.pre_save
        target = field.target_field if field.is_relation else field
        self.plain = {kind for kind, fields in _PLAIN.items() if isinstance(target, fields)}

    def value(self, obj, db):
        value = self.field.pre_save(obj, True) if self.pre_save else getattr(obj, self.attname)
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
