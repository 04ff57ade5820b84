"""The postback assistant's analysis: read an affiliate platform's postback URL, propose our
postback for it.

`analyse` is a plain function of its arguments and the address settings (no queries, no writes)
and never raises: odd input gives a mapping with clear "could not map" messages instead. It runs
the postback form's URL checks too, so `ok` is never True for what creation would refuse.
"""

import logging
import re
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from affiliates.links import tracking_path
from affiliates.models import CLICK_FIELDS, DEFAULT_CLICK_FIELD
from postbacks.assistant.catalog import GENERIC, Platform, platforms, recognise
from postbacks.assistant.lexer import (
    MASK_RE,
    PATH_WORDS,
    decode,
    literal,
    looks_like_placeholder,
    mask,
    norm,
    token_name,
    unmask,
    value_kind,
)
from postbacks.assistant.names import (
    CLICK_ID_NAMES,
    NUMBERED_SUB,
    TRANSACTION_LIKE,
    is_numbered_sub,
    role_of_name,
)
from postbacks.placeholders import lookup
from postbacks.validation import validate_postback_config
from trackdesk.currencies import CODES as CURRENCY_CODES

log = logging.getLogger(__name__)

ROLE_PLACEHOLDER = {
    "payout": "payout",
    "sale_amount": "saleAmount",
    "status": "status",
    "transaction_id": "transactionId",
    "currency": "currency",
    "conversion_type": "conversionType",
    "conversion_id": "conversionId",
    "offer_id": "offerId",
    "timestamp": "timestamp",
    "delivery_id": "deliveryId",
}
ROLE_MEANING = {
    "click_id": "the platform's click id: {placeholder} returns the value its {token} macro "
    "put into {field} of our tracking link",
    "payout": "the amount the affiliate earns: {placeholder}, in the postback's currency",
    "sale_amount": "the sale amount: {placeholder}",
    "status": "the conversion status: {placeholder}",
    "transaction_id": "the conversion's id on the advertiser's side: {placeholder}",
    "currency": "the currency code of the payout: {placeholder}",
    "conversion_type": "the kind of conversion: {placeholder} sends our type code (sale, lead ...)",
    "conversion_id": "a unique conversion id: {placeholder}, our conversion's UUID",
    "offer_id": "the offer: {placeholder}, our offer id",
    "timestamp": "the conversion time: {placeholder}, ISO 8601 in UTC",
    "delivery_id": "an id for de-duplication: {placeholder}, stable across retries",
    "sub": "the affiliate's own sub id: {placeholder} returns what they put into {field}",
    "ours": "already one of our placeholders: {placeholder}",
}


@dataclass
class Mapping:
    """One parameter of the pasted URL and what our postback sends there."""

    parameter: str
    value: str
    placeholder: str | None
    state: str  # mapped | kept | unmapped | dropped
    explanation: str
    location: str = "query"  # query | path


@dataclass
class Analysis:
    url: str
    platform: str | None
    platform_name: str
    recognised_by: str
    click_id_token: str
    click_field: str
    tracking_link: str
    mappings: list[Mapping]
    problems: list[str]
    notes: list[str]
    postback: dict

    @property
    def ok(self) -> bool:
        """Whether the proposed postback can be created as it stands: the postback form's URL
        checks and the delivery guard's port rule are among the problems."""
        return not self.problems and bool(self.postback.get("url"))

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def analyse(
    url,
    platform=None,
    *,
    affiliate=None,
    offer=None,
    click_field: str = DEFAULT_CLICK_FIELD,
    allow_revenue: bool = False,
    conversion_types=(),
    keep=(),
) -> Analysis:
    """Recognise a pasted postback URL (or a chosen platform's shape) and propose our postback.

    `keep` names parameters (any case) to send exactly as written whatever their value: the
    manager's answer where the analysis cannot tell a token from a fixed value."""
    try:
        analyser = _Analyser(url, platform, affiliate, offer, click_field, allow_revenue)
        analyser.keep = {str(name).strip().lower() for name in keep if str(name).strip()}
        return analyser.run(list(conversion_types))
    except Exception as exc:  # never a traceback for a pasted string; the tests cover the shapes
        log.exception("The assistant could not analyse a URL")  # a bug to find, all the same
        return _failed(url, f"Could not read this URL ({type(exc).__name__}); check it and retry.")


def _failed(url, problem: str) -> Analysis:
    return Analysis(
        url=str(url or ""),
        platform=None,
        platform_name="",
        recognised_by="",
        click_id_token="",
        click_field=DEFAULT_CLICK_FIELD,
        tracking_link="",
        mappings=[],
        problems=[problem],
        notes=[],
        postback={},
    )


def _short(value: str, limit: int = 60) -> str:
    """A value as quoted in a message: long ones cut, so a 20 000-character value stays readable."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass
class _Param:
    raw_name: str
    raw_value: str
    name: str
    value: str
    has_value: bool = True
    role: str | None = None
    placeholder: str | None = None
    state: str = ""
    explanation: str = ""


class _Analyser:
    def __init__(self, url, platform_key, affiliate, offer, click_field, allow_revenue):
        self.raw_url = url.strip() if isinstance(url, str) else ""
        self.platform_key = platform_key.strip().lower() if isinstance(platform_key, str) else ""
        self.affiliate = affiliate
        self.offer = offer
        self.click_field = click_field if click_field in CLICK_FIELDS else DEFAULT_CLICK_FIELD
        self.allow_revenue = allow_revenue
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.mappings: list[Mapping] = []
        self.platform: Platform | None = None
        self.recognised_by = ""
        self.keep: set[str] = set()

    # The steps, in order.
    def run(self, conversion_types: list) -> Analysis:
        chosen = self._chosen_platform()
        text = self.raw_url or (chosen.example_url if chosen else "")
        if not self.raw_url and chosen:
            self.notes.append(
                f"No URL pasted: this is {chosen.name}'s example shape. Put in the affiliate's "
                "own tracker host and fixed values before activating."
            )
        if not text:
            return self._result("", [], "Paste the postback URL, or choose a platform.")
        parsed = self._parse(text)
        if parsed is None:
            return self._result("", [])
        scheme, netloc, path, params = parsed
        self.platform, self.recognised_by = (
            (chosen, "chosen") if chosen else _recognise(netloc, path, params)
        )
        path = self._map_path(path)
        self._map_params(params)
        query = "&".join(self._pair(p) for p in params if p.state != "dropped")
        template = f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
        self._check_destination(template)
        return self._result(template, params, conversion_types=conversion_types)

    def _check_destination(self, template: str) -> None:
        """What creation and delivery would refuse, found now, so `ok` means both accept it:
        the postback form's URL checks (shape, ports, literally blocked addresses such as
        127.0.0.1 or 169.254.169.254, backslashes ...)."""
        values = {"url": template, "method": "GET", "statuses": ["approved"], "scope": "global"}
        try:
            validate_postback_config(values, allow_revenue=self.allow_revenue)
        except ValidationError as error:
            for message in error.message_dict.get("url", []):
                if message not in self.problems:
                    self.problems.append(message)

    def _chosen_platform(self) -> Platform | None:
        if not self.platform_key or self.platform_key == "auto":
            return None
        found = platforms().get(self.platform_key)
        if found is None:
            self.problems.append(
                f"Unknown platform {self.platform_key!r}; choose one of: "
                f"{', '.join(platforms())}, or leave it empty to recognise it from the URL."
            )
        return found

    # Reading the pasted text.
    def _parse(self, text: str):
        text = re.sub(r"[\r\n\t]", "", text)
        # The two characters that mark masked tokens, should they be pasted, are encoded.
        text = text.replace("\ue000", "%EE%80%80").replace("\ue001", "%EE%80%81")
        masked, tokens = mask(text)
        masked = self._with_scheme(masked)
        if masked is None:
            return None
        if " " in masked:
            masked = masked.replace(" ", "%20")
            self.notes.append("Spaces in the URL were encoded as %20.")
        try:
            return self._split(masked, tokens)
        except ValueError as exc:  # urllib's own complaint, e.g. "Invalid IPv6 URL"
            self.problems.append(f"Could not read this URL: {exc}.")
            return None

    def _with_scheme(self, masked: str) -> str | None:
        """The URL with a scheme (https:// added to a bare host), or None if it is no URL."""
        if masked.startswith("//"):
            return "https:" + masked
        if re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", masked):
            return masked
        if not re.match(r"[\w\-]+(\.[\w\-]+)+(:\d+)?([/?]|$)", masked):
            self.problems.append(
                "This does not look like a URL; paste the whole postback URL the "
                "affiliate's platform gave them, starting with https://."
            )
            return None
        self.notes.append("The URL had no scheme; https:// was added.")
        return "https://" + masked

    def _split(self, masked: str, tokens: list[str]):
        parts = urlsplit(masked)
        if parts.scheme.lower() not in ("http", "https"):
            self.problems.append(f"Postbacks go over http or https, not {parts.scheme}:.")
            return None
        netloc = unmask(parts.netloc, tokens)
        if not parts.hostname:
            self.problems.append("The URL names no host, e.g. https://tracker.example.com/.")
            return None
        if MASK_RE.search(parts.netloc) or "{" in netloc:
            self.problems.append(
                f"The host {netloc!r} is a placeholder: put in the affiliate's real tracker host."
            )
            netloc = literal(netloc)
        if parts.fragment:
            self.notes.append(
                f"The fragment #{unmask(parts.fragment, tokens)} is never sent to a server; "
                "it was left out."
            )
        params = [self._param(pair, tokens) for pair in parts.query.split("&") if pair]
        if any(not p.name for p in params):
            self.notes.append("Parameters without a name were left out.")
        params = [p for p in params if p.name]
        return parts.scheme.lower(), netloc, unmask(parts.path, tokens), params

    @staticmethod
    def _param(pair: str, tokens: list[str]) -> _Param:
        raw_name, equals, raw_value = pair.partition("=")
        raw_name, raw_value = unmask(raw_name, tokens), unmask(raw_value, tokens)
        name, value = decode(raw_name).strip(), decode(raw_value)
        return _Param(raw_name, raw_value, name, value, has_value=bool(equals))

    # The path.
    def _map_path(self, path: str) -> str:
        masked, tokens = mask(path)
        # Text between tokens is kept, made safe like literal values ({}, spaces, a lone %).
        pieces = MASK_RE.split(masked)  # text, token number, text, ...
        result = "".join(
            self._path_token(tokens[int(piece)]) if n % 2 else literal(piece)
            for n, piece in enumerate(pieces)
        )
        for word in re.findall(r"[^/]+", result):
            if word.upper() in PATH_WORDS:
                self._flag_path(word)
        return result

    def _path_token(self, token: str) -> str:
        """What our template has where the path has `token`: a placeholder, or the token as
        pasted (flagged) when none fits."""
        inner = token_name(token) or ""
        if _is_ours(token, inner):
            placeholder = lookup(inner).token
            explanation = self._explain(token, "ours", placeholder=placeholder)
            self.mappings.append(Mapping(token, token, placeholder, "mapped", explanation, "path"))
            return placeholder
        role = self.platform.role_of_macro(inner) if self.platform else None
        role = role or role_of_name(inner)
        role = "click_id" if role == "click_candidate" else role
        if role in (None, "sub", "account"):
            self._flag_path(token)
            return literal(token)
        placeholder = self._placeholder(role, inner)
        self.mappings.append(
            Mapping(token, token, placeholder, "mapped", self._explain(token, role), "path")
        )
        return placeholder

    def _flag_path(self, token: str) -> None:
        self.mappings.append(
            Mapping(
                token,
                token,
                None,
                "unmapped",
                f"Could not map {token!r} in the path; it is sent literally. Replace it with "
                "a placeholder or ask the affiliate what belongs there.",
                "path",
            )
        )
        self.problems.append(f"Could not map {token!r} in the URL's path.")

    # The query parameters.
    def _map_params(self, params: list[_Param]) -> None:
        live = self._drop_repeats(params)
        for param in live:
            self._classify(param)
        self._choose_click_id(live)
        for param in live:
            self._finish(param)
        self.mappings += [
            Mapping(p.name, p.value, p.placeholder, p.state, p.explanation) for p in params
        ]
        if not any(m.placeholder == self._click_placeholder() for m in self.mappings):
            self.problems.append(self._no_click_id(live))

    def _no_click_id(self, params: list[_Param]) -> str:
        named = [p for p in params if role_of_name(p.name) == "click_candidate"]
        if named and named[0].role in ("fixed_value", "kept_by_request"):
            return (
                f"{named[0].name!r} has the fixed value {_short(named[0].value)!r}, so no click "
                "id would be sent: write a token such as REPLACE there (we fill it with "
                f"{self._click_placeholder()}), or nothing can be attributed."
            )
        return (
            f"Could not find the click-id parameter: add {self._click_placeholder()} by hand "
            "where the platform expects its click id, or nothing can be attributed."
        )

    @staticmethod
    def _drop_repeats(params: list[_Param]) -> list[_Param]:
        """Marks every repeat of a name (any case) dropped; returns the others."""
        seen: set[str] = set()
        for param in params:
            key = param.name.lower()
            if key in seen:
                param.state = "dropped"
                param.explanation = (
                    f"{param.name!r} is repeated; only its first occurrence is sent."
                )
            seen.add(key)
        return [p for p in params if p.state != "dropped"]

    def _classify(self, param: _Param) -> None:
        """The role a parameter plays. Only a token is ever replaced: a fixed value stays as
        written whatever the parameter's name (type=Upsell, goal=1). A token's role comes from
        the platform, the parameter's name, else the name inside the token."""
        if param.name.lower() in self.keep:
            param.role = "kept_by_request"
            return
        kind, inner = value_kind(param.value, param.name)
        if kind == "caps":
            kind, inner = _caps_kind(inner)
        if kind == "token" and _is_ours(param.value, inner):
            param.role, param.placeholder = "ours", lookup(inner).token
            return
        if self.platform and self.platform.is_fixed(param.name):
            param.role = "fixed"
            return
        if kind != "token":
            param.role = "ambiguous" if kind == "ambiguous" else "fixed_value"
            return
        role = None
        if self.platform:
            role = self.platform.role_of_macro(inner) or self.platform.role_of(param.name)
        by_name = role_of_name(param.name)
        by_token = role_of_name(inner or "")
        if by_name == "account":
            # An account id or key: only a token that names its value (key={externalid}) maps.
            by_name = by_token if by_token not in (None, "account") else "account"
        if by_token == "account":
            by_token = None
        param.role = role or by_name or by_token

    def _choose_click_id(self, params: list[_Param]) -> None:
        candidates = [p for p in params if p.role in ("click_id", "click_candidate")]
        if not candidates:
            return
        platform_choice = [p for p in candidates if p.role == "click_id"]
        best = platform_choice[0] if platform_choice else min(candidates, key=_click_rank)
        for param in candidates:
            if param is best:
                param.role = "click_id"
            elif norm(param.name) in TRANSACTION_LIKE:
                param.role = "transaction_id"
            elif is_numbered_sub(param.name):
                param.role = "sub"
            else:
                param.role = "other_click"

    def _finish(self, param: _Param) -> None:
        """Settles the parameter's state (mapped, kept, unmapped) and its explanation."""
        role = param.role
        shown = param.name or "(no name)"
        if role in ("fixed", "fixed_value", "kept_by_request"):
            self._keep(param, shown)
        elif role == "ambiguous":
            self._ambiguous(param, shown)
        elif role == "account":
            self._account(param, shown)
        elif role == "other_click":
            self._second_click_id(param, shown)
        elif role is None:
            self._unmapped(param, shown)
        elif role == "sub" and self._placeholder(role, param.name) == self._click_placeholder():
            self._sub_in_click_field(param, shown)
        elif role == "sale_amount" and not self.allow_revenue:
            self._needs_revenue_setting(param, shown)
        else:
            param.placeholder = param.placeholder or self._placeholder(role, param.name)
            param.state = "mapped"
            param.explanation = self._explain(shown, role, param)

    def _keep(self, param: _Param, shown: str) -> None:
        param.state = "kept"
        why = {
            "fixed": "a fixed value of the affiliate's account",
            "kept_by_request": "you asked to keep it as written",
        }.get(param.role, "a fixed value, not a token")
        param.explanation = f"{shown!r} kept as {_short(param.value)!r}: {why}, sent as pasted."
        if param.role == "fixed" and looks_like_placeholder(param.value):
            self.problems.append(
                f"Put the affiliate's own value into {shown!r} (now {_short(param.value)!r})."
            )
        suggested = role_of_name(param.name)
        if param.role == "fixed_value" and suggested not in (
            None,
            "account",
            "sub",
            "click_candidate",  # already a problem when no other parameter carries the click
        ):
            self.notes.append(
                f"{shown!r} is sent as the fixed {_short(param.value)!r} with every postback. "
                "If the platform should get each conversion's own value there, write a token "
                "such as OPTIONAL in its place and analyse again."
            )

    def _ambiguous(self, param: _Param, shown: str) -> None:
        param.state = "unmapped"
        param.explanation = (
            f"Could not tell whether {shown!r} = {_short(param.value)!r} is a token to fill or a "
            "fixed value; it is sent as pasted."
        )
        self.problems.append(
            f"{shown!r} = {_short(param.value)!r} could be a token or a fixed value: write a "
            f"token (e.g. REPLACE) there, or keep {shown!r} as written."
        )

    def _account(self, param: _Param, shown: str) -> None:
        param.state = "unmapped"
        param.explanation = (
            f"{shown!r} names the affiliate's account on their platform (an id or key), which "
            "we cannot fill; it is sent as pasted."
        )
        self.problems.append(
            f"Put the affiliate's own value into {shown!r} (now {_short(param.value)!r}): it "
            "is their account id or key on the platform."
        )

    def _second_click_id(self, param: _Param, shown: str) -> None:
        param.state = "unmapped"
        param.explanation = (
            f"Could not map {shown!r}: it looks like a click id too, but another parameter "
            "already carries it; it is sent as pasted."
        )
        if looks_like_placeholder(param.value):
            self.problems.append(f"Could not map {shown!r}: a second click-id parameter.")
        else:
            self.notes.append(f"{shown!r} also looks like a click id; check which is meant.")

    def _unmapped(self, param: _Param, shown: str) -> None:
        param.state = "unmapped"
        param.explanation = (
            f"Could not map {shown!r} ({_short(param.value)!r}): no placeholder of ours "
            "fits; it is sent literally. Replace it with a placeholder or remove it before "
            "activating."
        )
        self.problems.append(f"Could not map the parameter {shown!r} ({_short(param.value)!r}).")

    def _sub_in_click_field(self, param: _Param, shown: str) -> None:
        param.state = "unmapped"
        param.explanation = (
            f"Could not map {shown!r}: it would be the affiliate's sub id in "
            f"{self.click_field}, but {self.click_field} carries the click id (the chosen "
            "click field); it is sent as pasted."
        )
        self.problems.append(
            f"{shown!r} and the click id would both travel in {self.click_field}: choose "
            "another click field, or remove the parameter."
        )

    def _needs_revenue_setting(self, param: _Param, shown: str) -> None:
        param.state = "unmapped"
        param.explanation = (
            f"Could not map {shown!r}: {{saleAmount}} needs 'Allow revenue and sale amount "
            "parameters' under Tracking settings; it is sent as pasted."
        )
        self.problems.append(f"{shown!r} needs the revenue tracking setting.")

    # Wording and the result.
    def _click_placeholder(self) -> str:
        return "{" + self.click_field + "}"

    def _placeholder(self, role: str, name: str) -> str:
        if role == "click_id":
            return self._click_placeholder()
        if role == "sub":
            number = NUMBERED_SUB.fullmatch(norm(name))
            return "{affS" + (number.group(1) if number else "2") + "}"
        return "{" + ROLE_PLACEHOLDER[role] + "}"

    def _explain(self, shown: str, role: str, param: _Param | None = None, placeholder=None) -> str:
        placeholder = placeholder or (
            param.placeholder if param else self._placeholder(role, shown)
        )
        meaning = ROLE_MEANING[role].format(
            placeholder=placeholder, token=self._token(), field=self.click_field
        )
        text = f"{shown!r} is {meaning}."
        if role == "status" and self._status_map():
            pairs = ", ".join(f"{k} → {v}" for k, v in list(self._status_map().items())[:4])
            text = text[:-1] + f", translated by the status map ({pairs} ...)."
        if param and param.value and not looks_like_placeholder(param.value):
            text += f" Replaces the example value {_short(param.value)!r}."
        return text

    def _pair(self, param: _Param) -> str:
        name = literal(param.raw_name)
        value = param.placeholder if param.state == "mapped" else literal(param.raw_value)
        return f"{name}={value}" if param.has_value or param.state == "mapped" else name

    def _token(self) -> str:
        # A platform without a click-id macro of its own (Impact: the affiliate's tracker fills
        # it) reads like the generic shape: the affiliate's saved token, else the common one.
        if self.platform and self.platform.key != GENERIC and self.platform.click_id_token:
            return self.platform.click_id_token
        saved = getattr(self.affiliate, "click_id_token", "")
        return saved or platforms()[GENERIC].click_id_token

    def _status_map(self) -> dict:
        return dict(self.platform.status_map) if self.platform else {}

    def _result(self, template: str, params, problem=None, conversion_types=()) -> Analysis:
        if problem:
            self.problems.append(problem)
        sends_status = any(m.placeholder == "{status}" for m in self.mappings)
        platform = self.platform
        tracking_link = ""
        if template:
            tracking_link = tracking_path(
                self.affiliate, self.offer, self.click_field, self._token()
            )
        return Analysis(
            url=self.raw_url,
            platform=platform.key if platform else None,
            platform_name=platform.name if platform else "",
            recognised_by=self.recognised_by,
            click_id_token=self._token(),
            click_field=self.click_field,
            tracking_link=tracking_link,
            mappings=self.mappings,
            problems=self.problems,
            notes=self._notes(sends_status, template, list(conversion_types)),
            postback=self._postback(template, sends_status, list(conversion_types)),
        )

    def _notes(self, sends_status: bool, template: str, conversion_types: list) -> list[str]:
        notes = list(self.notes)
        platform = self.platform or platforms()[GENERIC]
        if platform.notes and (self.platform or self.mappings):
            notes.append(platform.notes)
        if self.platform and not self.platform.verified:
            notes.append(
                f"The catalog's entry for {self.platform.name} rests on a single source; "
                "check the details with the affiliate."
            )
        saved = getattr(self.affiliate, "click_id_token", "")
        if saved and saved != self._token():
            notes.append(
                f"The affiliate's saved click-id token is {saved}, but {self._token()} is "
                "proposed here; their tracking links use the saved one."
            )
        if self.mappings and not sends_status:
            notes.append(
                "The URL has no status parameter, so the platform would count every postback "
                "as a conversion: only approved conversions are proposed."
            )
        counted = self._counted_types(conversion_types)
        if template and len(counted) < len(conversion_types):
            notes.append(
                "The URL does not say which kind of conversion it reports, so the platform "
                f"counts every postback alike: only {', '.join(counted)} is proposed. Add "
                "other types only if the affiliate should count them as the same conversion."
            )
        return notes

    def _sends_type(self) -> bool:
        return any(m.placeholder == "{conversionType}" for m in self.mappings)

    def _counted_types(self, conversion_types: list) -> list:
        """The conversion types the platform counts: all of them when the URL sends the type
        ({conversionType}); otherwise it counts every postback alike, so the platform's own
        (the catalog's conversion_types, sale by default) among those that exist, else the
        first type."""
        if self._sends_type() or not conversion_types:
            return list(conversion_types)
        platform = self.platform or platforms()[GENERIC]
        counted = [code for code in platform.conversion_types if code in conversion_types]
        return counted or list(conversion_types)[:1]

    def _postback(self, template: str, sends_status: bool, conversion_types: list) -> dict:
        if not template:
            return {}
        platform = self.platform
        if sends_status:
            statuses = list(platform.statuses) if platform else ["approved", "pending", "rejected"]
            if statuses == ["approved"]:
                statuses = ["approved", "pending", "rejected"]
        else:
            statuses = ["approved"]
        host = urlsplit(template).hostname or "tracker"
        name = f"{platform.name} postback" if platform else f"Postback to {host}"
        return {
            "name": name[:200],
            "url": template,
            "method": platform.method if platform else "GET",
            "statuses": statuses,
            "conversion_types": self._counted_types(conversion_types),
            "status_map": self._status_map() if sends_status else {},
        }


def _recognise(netloc: str, path: str, params: list[_Param]) -> tuple[Platform | None, str]:
    host = urlsplit(f"//{netloc}").hostname or ""
    names = {p.name.lower() for p in params}
    values = " ".join([path, *(p.value for p in params)])
    return recognise(host, path, names, values)


def _is_ours(value: str, inner: str | None) -> bool:
    """{payout}, {affS2} ...: our own placeholder, spelled as ours. {cid} is left out: platforms
    use it for their own click id, which we return in affS1, not our click id."""
    if not inner or not value.strip().startswith("{") or inner == "cid":
        return False
    placeholder = lookup(inner)
    # {revenue} on a tracker's side is the affiliate's revenue: our payout, read by name.
    return placeholder is not None and placeholder.name == inner and not placeholder.gated


def _caps_kind(word: str) -> tuple[str, str | None]:
    """One capitalised word: a token when it names a role (PAYOUT, CLICKID, SUBID), a fixed
    value when it is a currency code (USD), else either (SALE, XYZ)."""
    if role_of_name(word) not in (None, "account"):
        return "token", word
    if word in CURRENCY_CODES:
        return "fixed_value", None
    return "ambiguous", None


def _click_rank(param: _Param) -> tuple[int, int]:
    """Platforms mark their click id REPLACE (required); then the more specific name wins."""
    required = 0 if norm(param.value).upper() in ("REPLACE", "REQUIRED") else 1
    key = norm(param.name)
    if key in CLICK_ID_NAMES:
        return required, CLICK_ID_NAMES.index(key)
    inner = norm(token_name(param.value) or "")
    rank = CLICK_ID_NAMES.index(inner) if inner in CLICK_ID_NAMES else 99
    return required, len(CLICK_ID_NAMES) + rank
