"""Reading the text of a pasted postback URL: the tokens other systems write where a value goes
({x} {{x}} ${x} [x] #x# %x% <x> {} ### REPLACE CLICK_ID ...), telling them from fixed values,
masking them so they survive URL splitting, and encoding literal values so they can stay in a
template."""

import re
from urllib.parse import quote, unquote_plus

# Tokens other systems write where a value goes: {x} {{x}} ${x} $x {url(x)} [x] [[x]] [[[x]]]
# [=x=] #x# ##x## %x% %%x%% !!!x!!! <x>, and the empty ones {} {{}} ###. They are masked before
# the URL is split, so #s2# or ### is not a fragment.
_NAME = r"[A-Za-z_][\w.\-]*"
TOKEN_RE = re.compile(
    rf"\$?\{{\{{?(?:url\()?(?P<a>{_NAME})\)?\}}\}}?|\{{\{{?\s*\}}\}}?"
    rf"|\[\[\[(?P<b>{_NAME})\]\]\]|\[\[(?P<k>{_NAME})\]\]|\[=(?P<l>{_NAME})=\]"
    rf"|\[(?P<c>{_NAME})\]"
    rf"|##(?P<d>{_NAME})##|###|#(?P<e>{_NAME})#"
    rf"|%%(?P<f>{_NAME})%%|%(?P<g>[A-Za-z_][\w.\-]{{2,}})%"
    rf"|!!!(?P<h>{_NAME})!!!|<(?P<i>{_NAME})>|\$(?P<j>[A-Za-z_]\w*)"
)
# A masked token: its number between two private-use characters.
MASK_RE = re.compile("\ue000(\\d+)\ue001")
PLACEHOLDER_WORDS = {"REPLACE", "OPTIONAL", "REQUIRED", "VALUE", "MACRO", "TOKEN"}
PATH_WORDS = {"REPLACE", "OPTIONAL", "REQUIRED"}
# An ALL_CAPS name with an underscore (CLICK_ID, EVENT_NAME): trackers' way to say "put the
# value here". A single capitalised word (USD, SALE, XYZ) may as well be a fixed value.
CAPS_NAME_RE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
CAPS_WORD_RE = re.compile(r"[A-Z][A-Z0-9]{2,}")
# Characters that only a token would put into a value; with other text around them the value
# is neither clearly a token nor clearly fixed ({a}-{b}, aff_{clickid}, {{{).
TOKEN_MARKS_RE = re.compile(r"[{}\[\]<>]|##|!!!|%%|\$\{")


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
    """A value that marks where something goes ({x}, REPLACE, XXX, YOUR_ID, CLICK_ID), not a
    real one."""
    return value_kind(value)[0] == "token"


def value_kind(value: str, name: str = "") -> tuple[str, str | None]:
    """What a pasted value of parameter `name` is, and the name inside it:
    ("token", name or None) for {x} [x] #x# ... CLICK_ID, and for {} ### REPLACE OPTIONAL XXX
    YOUR_KEY (no name); ("caps", word) for one capitalised word (USD, SALE), which only the
    caller can tell apart; ("ambiguous", None) for a value that could be a token or a fixed
    value (text around a token, stray braces, the parameter's own name); ("fixed", None)."""
    text = value.strip()
    match = TOKEN_RE.fullmatch(text)
    if match is not None:
        return "token", next((inner for inner in match.groups() if inner), None)
    if text.upper() in PLACEHOLDER_WORDS and (text.isupper() or text.upper() in PATH_WORDS):
        return "token", None
    if re.fullmatch(r"X{3,}|YOUR[_\-\s]\w+", text, re.IGNORECASE):
        return "token", None
    if CAPS_NAME_RE.fullmatch(text):
        return "token", text
    if CAPS_WORD_RE.fullmatch(text):
        return "caps", text
    if TOKEN_MARKS_RE.search(text) or (name and text.isalpha() and norm(text) == norm(name)):
        return "ambiguous", None
    return "fixed", None


def literal(raw: str) -> str:
    """A pasted value made safe to keep in a template: braces, # and spaces encoded."""
    # A lone surrogate (pasted from broken text) keeps its bytes rather than failing the read.
    quoted = quote(raw, safe="%!$'()*+,;:@/?-._~=[]", errors="surrogatepass")
    return re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", quoted)


def decode(raw: str) -> str:
    """A query name or value as the receiving server reads it (+ and %xx decoded)."""
    return unquote_plus(raw)
