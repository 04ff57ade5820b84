"""JSON input with a nesting limit: the API's parser and the loader for JSON typed into forms.

Python's JSON decoder recurses once per level, so a deeply nested document (a few kilobytes of
`[[[[...`) raised RecursionError, a 500. No input of ours nests anywhere near MAX_JSON_DEPTH.
"""

import codecs
import json as std_json

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

MAX_JSON_DEPTH = 32
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels; at most {MAX_JSON_DEPTH} are allowed."


class JSONTooDeep(ValueError):
    def __init__(self):
        super().__init__(TOO_DEEP)


def check_depth(value, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise JSONTooDeep when lists and objects in `value` nest deeper than `limit`."""
    level, containers = 0, [value]
    while containers:  # one level of containers at a time: no recursion of our own
        level += 1
        if level > limit:
            raise JSONTooDeep
        containers = [
            child
            for container in containers
            if isinstance(container, dict | list)
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]


def loads(text: str, **kwargs):
    """json.loads with the nesting limit; any problem is a ValueError (JSONTooDeep, or the
    decoder's JSONDecodeError)."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise JSONTooDeep from None
    check_depth(value)
    return value


class JSONDecoder(std_json.JSONDecoder):
    """For forms.JSONField(decoder=...): JSON nested too deep is a JSONDecodeError, which the
    form reports as invalid JSON."""

    def decode(self, s, *args, **kwargs):
        try:
            value = super().decode(s, *args, **kwargs)
            check_depth(value)
        except (RecursionError, JSONTooDeep):
            raise std_json.JSONDecodeError(TOO_DEEP, s, 0) from None
        return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the nesting limit; `parse_float` may make numbers Decimal."""

    parse_float = None

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        options = {"parse_float": self.parse_float} if self.parse_float else {}
        if not self.strict:
            options["parse_constant"] = None
        try:
            return loads(codecs.getreader(encoding)(stream).read(), **options)
        except JSONTooDeep as exc:
            raise ParseError(str(exc)) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
