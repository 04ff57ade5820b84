"""Case-insensitive prefix search that an index serves on SQLite and PostgreSQL alike: the
index expression (`PrefixIndex`) and the condition that uses it (`StartsWithLower`).

Both databases index lower(column). PostgreSQL reads it for `lower(column) LIKE 'abc%'` when
the index uses the pattern operator class (whatever the database's collation); SQLite never
uses an expression index for LIKE, so there the condition is the equivalent range
`lower(column) >= 'abc' AND lower(column) < 'abd'` (SQLite compares text byte by byte).
"""

from django.db import models
from django.db.models import BooleanField, F, Value
from django.db.models.functions import Lower
from django.db.models.lookups import Lookup


class PrefixIndex(models.Index):
    """An index on lower(field), with text_pattern_ops on PostgreSQL: PrefixIndex("cid",
    name="click_cid_prefix")."""

    def __init__(self, field: str, *, name: str):
        self.field = field
        super().__init__(Lower(field), name=name)

    def deconstruct(self):
        path, _, kwargs = super().deconstruct()
        return path, (self.field,), kwargs

    def create_sql(self, model, schema_editor, using="", **kwargs):
        statement = super().create_sql(model, schema_editor, using, **kwargs)
        if schema_editor.connection.vendor == "postgresql":
            statement.parts["columns"] = _PatternOps(statement.parts["columns"])
        return statement


class _PatternOps:
    """The index's expression part with the operator class after it; the rest (references
    used when a column or table is renamed) is the expression's own."""

    def __init__(self, expressions):
        self.expressions = expressions

    def __getattr__(self, name):
        return getattr(self.expressions, name)

    def __str__(self):
        return f"{self.expressions} text_pattern_ops"


def sqlite_lower(text: str) -> str:
    """SQLite's lower(): ASCII letters only."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class StartsWithLower(Lookup):
    """The field's value starts with `prefix`, ignoring case: StartsWithLower("cid", "ab")."""

    lookup_name = "startswithlower"
    prepare_rhs = False
    output_field = BooleanField()

    def __init__(self, field: str, prefix: str):
        super().__init__(Lower(F(field)), Value(prefix))

    def _parts(self, compiler):
        lhs, lhs_params = compiler.compile(self.lhs)
        return lhs, tuple(lhs_params), self.rhs.value

    def as_sql(self, compiler, connection):
        lhs, params, prefix = self._parts(compiler)
        return f"{lhs} LIKE %s", (*params, escape_like(prefix.lower()) + "%")

    def as_sqlite(self, compiler, connection):
        lhs, params, prefix = self._parts(compiler)
        low = sqlite_lower(prefix)
        if not low:
            return "1 = 1", ()
        after = ord(low[-1]) + 1
        after = 0xE000 if 0xD800 <= after < 0xE000 else min(after, 0x10FFFF)  # no surrogates
        high = low[:-1] + chr(after)
        return f"{lhs} >= %s AND {lhs} < %s", (*params, low, *params, high)
