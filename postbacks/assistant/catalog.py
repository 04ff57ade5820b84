"""The assistant's platform catalog (platforms.toml): what each affiliate platform's postback URL
looks like, and recognising the platform a pasted URL belongs to."""

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

CATALOG_PATH = Path(__file__).with_name("platforms.toml")
GENERIC = "generic"


@dataclass(frozen=True)
class Platform:
    key: str
    name: str
    click_id_token: str
    method: str
    example_url: str
    params: dict
    fixed: tuple = ()
    status_map: dict = field(default_factory=dict)
    statuses: tuple = ("approved",)
    conversion_types: tuple = ("sale",)
    hosts: tuple = ()
    path: str = ""
    match_params: tuple = ()
    match_tokens: tuple = ()
    macros: dict = field(default_factory=dict)
    notes: str = ""
    source: str = ""
    verified: bool = True

    def role_of(self, name: str) -> str | None:
        wanted = name.lower()
        return next((role for role, p in self.params.items() if p.lower() == wanted), None)

    def role_of_macro(self, inner: str | None) -> str | None:
        """The role of one of the platform's own macros in a value ({Payout} → payout); exact
        case, as platforms such as Impact read them."""
        return self.macros.get(inner) if inner else None

    def is_fixed(self, name: str) -> bool:
        return name.lower() in (f.lower() for f in self.fixed)


@functools.cache
def platforms() -> dict[str, Platform]:
    """The catalog by key, in file order (the generic entry last)."""
    with CATALOG_PATH.open("rb") as handle:
        entries = tomllib.load(handle)["platform"]
    return {entry["key"]: _platform(entry) for entry in entries}


def _platform(entry: dict) -> Platform:
    match = entry.get("match", {})
    return Platform(
        key=entry["key"],
        name=entry["name"],
        click_id_token=entry["click_id_token"],
        method=entry.get("method", "GET"),
        example_url=entry["example_url"],
        params=dict(entry.get("params", {})),
        fixed=tuple(entry.get("fixed", ())),
        status_map=dict(entry.get("status_map", {})),
        statuses=tuple(entry.get("statuses", ("approved",))),
        conversion_types=tuple(entry.get("conversion_types", ("sale",))),
        hosts=tuple(match.get("hosts", ())),
        path=match.get("path", ""),
        match_params=tuple(match.get("params", ())),
        match_tokens=tuple(match.get("tokens", ())),
        macros={
            macro: role
            for role, names in entry.get("macros", {}).items()
            for macro in ([names] if isinstance(names, str) else names)
        },
        notes=entry.get("notes", ""),
        source=entry.get("source", ""),
        verified=entry.get("verified", True),
    )


def platform_choices() -> list[tuple[str, str]]:
    return [(p.key, p.name) for p in platforms().values()]


def recognise(host: str, path: str, names: set[str], values: str) -> tuple[Platform | None, str]:
    """The platform whose shape fits best, and why: its host, else its path, parameter names
    (lower case in `names`) and macros (in `values`, the path and parameter values joined);
    (None, "generic") when none fits."""
    best, best_score, reason = None, 0, ""
    for platform in platforms().values():
        score, why = _score(platform, host.lower(), path, names, values)
        if score > best_score:
            best, best_score, reason = platform, score, why
    return (best, reason) if best else (None, "generic")


def _score(
    platform: Platform, host: str, path: str, names: set[str], values: str
) -> tuple[int, str]:
    if any(host == h or host.endswith("." + h) for h in platform.hosts):
        return 100, f"host {host}"
    score, why = 0, []
    if platform.path and re.search(platform.path, path, re.IGNORECASE):
        score, why = 50, [f"path {path}"]
    wanted = [n.lower() for n in platform.match_params]
    if wanted and all(n in names for n in wanted):
        score += 10 + len(wanted)
        why.append("parameters " + ", ".join(platform.match_params))
    # The platform's own macros in the values (exact case: {SubId1} is Impact's, {subid1} not).
    if platform.match_tokens and all(token in values for token in platform.match_tokens):
        score += 20 + len(platform.match_tokens)
        why.append("macros " + ", ".join(platform.match_tokens))
    return score, " and ".join(why)
