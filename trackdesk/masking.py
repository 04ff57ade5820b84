"""Masking of secret-looking values (tokens, keys, signatures) in URLs, bodies, headers and logs.

The delivery log stores what was sent, exactly; the admin and the API show it through `mask`
while POSTBACK_MASK_SECRETS is on (the default). Log lines are always masked.
"""

import logging
import re
from urllib.parse import unquote_plus

from django.conf import settings

MASK = "********"
# A name is secret-looking when one of its words is one of these (api_key, apiKey, X-Auth-Token,
# access_token, client_secret, sig), or it contains one of SECRET_PARTS (accesstoken, apikey).
SECRET_WORDS = {
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "apikey",
    "auth",
    "authorization",
    "signature",
    "sig",
    "credential",
    "credentials",
}
SECRET_PARTS = ("token", "secret", "password", "apikey", "signature")

# name=value in a query string or form body; "name": "value" in JSON.
QUERY_PAIR = re.compile(r"(?P<lead>(?:^|[?&;\s])(?P<name>[^=&;?#\s]+)=)(?P<value>[^&;#\s\"']*)")
JSON_PAIR = re.compile(
    r'(?P<lead>"(?P<name>[^"\\]{1,100})"\s*:\s*")(?P<value>(?:[^"\\]|\\.)*)(?=")'
)
# "name": a number, true/false, or a list or object with nothing nested: shown as "********".
JSON_LITERAL_PAIR = re.compile(
    r'(?P<lead>"(?P<name>[^"\\]{1,100})"\s*:\s*)'
    r'(?P<value>-?\d[\d.eE+-]*|true|false|[\[{](?:[^\[\]{}"\\]|"(?:[^"\\]|\\.)*")*[\]}])'
)

# 'name': 'value' in a Python dict's repr (a headers dict in a log line); Name: value on a line
# of its own (an HTTP header as logged).
REPR_PAIR = re.compile(
    r"(?P<lead>'(?P<name>[^'\\]{1,100})'\s*:\s*')(?P<value>(?:[^'\\]|\\.)*)(?=')"
)
HEADER_LINE = re.compile(
    r"(?P<lead>(?:^|\n)(?P<name>[!#$%&*+.^_`|~0-9A-Za-z-]{1,64}):[ \t]*)(?P<value>[^\r\n]*)"
)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if any(part in lowered for part in SECRET_PARTS):
        return True
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    return any(word in SECRET_WORDS for word in re.split(r"[^a-z0-9]+", spaced))


def _masked(match: re.Match) -> str:
    if match["value"] and is_secret_name(unquote_plus(match["name"])):
        return match["lead"] + MASK
    return match[0]


def _masked_literal(match: re.Match) -> str:
    if is_secret_name(match["name"]):
        return f'{match["lead"]}"{MASK}"'
    return match[0]


def mask_text(text: str) -> str:
    """`text` with the values of secret-looking query, form and JSON parameters replaced."""
    if not text:
        return text
    text = JSON_PAIR.sub(_masked, QUERY_PAIR.sub(_masked, text))
    text = REPR_PAIR.sub(_masked, HEADER_LINE.sub(_masked, text))
    return JSON_LITERAL_PAIR.sub(_masked_literal, text)


def mask_headers(headers: dict) -> dict:
    return {k: MASK if is_secret_name(k) and v else v for k, v in (headers or {}).items()}


def mask_header_list(headers) -> list:
    """A postback's headers ([{"name", "value"}, ...]), secret-looking values masked."""
    if not isinstance(headers, list):
        return headers
    return [
        {**h, "value": MASK}
        if isinstance(h, dict) and is_secret_name(str(h.get("name", ""))) and h.get("value")
        else h
        for h in headers
    ]


def shown_header_list(headers) -> list:
    """A postback's headers for display to someone who may not change them: secret-looking
    values masked unless POSTBACK_MASK_SECRETS is off (the admin and the API alike)."""
    return mask_header_list(headers) if masking_on() else headers


def masking_on() -> bool:
    return settings.POSTBACK_MASK_SECRETS  # always set by trackdesk/settings.py


def mask(text: str) -> str:
    """For display in the admin and the API: masked unless POSTBACK_MASK_SECRETS is off."""
    return mask_text(text) if masking_on() else text


class MaskSecretsFilter(logging.Filter):
    """A logging filter: secret-looking query values in a record's message become ********.

    On django.server (runserver's request lines) it keeps `?token=` of the pixel out of the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
