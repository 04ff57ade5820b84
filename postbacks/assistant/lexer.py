"""Reading the text of a pasted postback URL: the tokens other systems write where a value goes
({x} {{x}} ${x} [x] #x# %x% <x> ...), masking them so they survive URL splitting, and encoding
literal values so they can stay in a template."""

import re
from urllib.parse import quote, unquote_plus

# Tokens other systems write where a value goes: {x} {{x}} ${x} {url(x)} [x] [[[x]]] #x# ##x##
# %x% %%x%% !!!x!!! <x>. They are masked before the URL is split, so #s2# is not a fragment.
_NAME = r"[A-Za-z_][\w.\-]*"
TOKEN_RE = re.compile(
    rf"\$?\{{\{{?(?:url\()?(?P<a>{_NAME})\)?\}}\}}?"
    rf"|\[\[\[(?P<b>{_NAME})\]\]\]|\[(?P<c>{_NAME})\]"
    rf"|##(?P<d>{_NAME})##|#(?P<e>{_NAME})#"
    rf"|%%(?P<f>{_NAME})%%|%(?P<g>[A-Za-z_][\w.\-]{{2,}})%"
    rf"|!!!(?P<h>{_NAME})!!!|<(?P<i>{_NAME})>"
)
# A masked token: its number between two private-use characters.
MASK_RE = re.compile("\ue000(\\d+)\ue001")
PLACEHOLDER_WORDS = {"REPLACE", "OPTIONAL", "REQUIRED", "VALUE", "MACRO", "TOKEN"}
PATH_WORDS = {"REPLACE", "OPTIONAL", "REQUIRED"}


def mask(text: str) -> tuple[str, list[str]]:
    """`text` with each token replaced by its masked number, and the tokens."""
    tokens: list[str] = []

    def keep(match: re.Match) -> str:
        tokens.append(match.group(0))
        return f"\ue000{len(tokens) - 1}\ue001"

    return TOKEN_RE.sub(keep, text), tokens


def unmask(text: str, tokens: list[str]) -> str:
    return MASK_RE.sub(lambda m: tokens[int(m.group(1))], text)


def token_name(value: str) -> str | None:
    """The name inside a whole-value token ({clickid} → clickid), else None."""
    match = TOKEN_RE.fullmatch(value.strip())
    if match is None:
        return None
    return next((name for name in match.groups() if name), None)


def norm(name: str) -> str:
    """A name compared without case, "_", "-" or ".": click_id, ClickID, click-id → clickid."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def looks_like_placeholder(value: str) -> bool:
    """A value that marks where something goes ({x}, REPLACE, XXX, YOUR_ID), not a real one."""
    text = value.strip()
    return (
        token_name(text) is not None
        or norm(text).upper() in PLACEHOLDER_WORDS
        or re.fullmatch(r"X{3,}|YOUR[_\-\s]\w+", text, re.IGNORECASE) is not None
    )


def literal(raw: str) -> str:
    """A pasted value made safe to keep in a template: braces, # and spaces encoded."""
    quoted = quote(raw, safe="%!$'()*+,;:@/?-._~=[]")
    return re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", quoted)


def decode(raw: str) -> str:
    """A query name or value as the receiving server reads it (+ and %xx decoded)."""
    return unquote_plus(raw)
