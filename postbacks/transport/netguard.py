"""Where the sender may connect: public addresses only, unless the operator allows a network.

The check runs on the resolved address at send time, and both senders connect to exactly that
address (requests_sender.py and aiohttp_sender.py in this package), so a DNS answer that changes
between check and connect (rebinding) cannot lead anywhere else.
"""

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from postbacks import conf

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges that Python's is_global does not flag (or flags differently across patch levels).
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "168.63.129.16/32",  # Azure WireServer
        "192.0.0.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "64:ff9b:1::/48",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
        "100::/64",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class DestinationRefused(Exception):
    """The destination is not one we may connect to. Permanent: retrying will not help."""


@lru_cache(maxsize=8)
def _parse_networks(cidrs: tuple[str, ...]) -> tuple[tuple, tuple]:
    """(networks, invalid entries with why) of POSTBACK_ALLOWED_NETWORKS."""
    networks, invalid = [], []
    for entry in cidrs:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            invalid.append((text, _why_not_a_network(text)))
    return tuple(networks), tuple(invalid)


def _why_not_a_network(text: str) -> str:
    """ipaddress's own reason ("'33' is not a valid netmask"), not its generic message."""
    kind = ipaddress.IPv6Network if ":" in text else ipaddress.IPv4Network
    try:
        kind(text, strict=False)
    except ValueError as exc:
        return str(exc) or "not a network"
    return "not a network"


def allowed_networks() -> tuple:
    """The networks an operator allowed. An invalid entry allows nothing (fail closed); the
    system check postbacks.E001 refuses to start with one, see invalid_allowed_networks()."""
    return _parse_networks(_entries())[0]


def invalid_allowed_networks() -> tuple[tuple[str, str], ...]:
    """(entry, why) for each POSTBACK_ALLOWED_NETWORKS entry that is not a network."""
    return _parse_networks(_entries())[1]


def _entries() -> tuple[str, ...]:
    value = conf.allowed_networks() or ()
    if isinstance(value, str):  # set as one comma-separated string in a settings override
        value = value.split(",")
    return tuple(str(entry) for entry in value)


def _allow_hint() -> str:
    """How to allow a network, naming invalid entries that allow nothing."""
    invalid = invalid_allowed_networks()
    if not invalid:
        return "an operator can allow a network with POSTBACK_ALLOWED_NETWORKS."
    names = ", ".join(repr(entry) for entry, _ in invalid)
    return (
        f"POSTBACK_ALLOWED_NETWORKS has invalid entries that allow nothing ({names}); "
        "use CIDRs such as 127.0.0.0/8,10.1.0.0/16."
    )


def is_explicitly_allowed(ip: IPAddress) -> bool:
    return any(ip.version == net.version and ip in net for net in allowed_networks())


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_blocked(ip: IPAddress) -> bool:
    """True when `ip` is not a public address and no allowed network covers it."""
    if is_explicitly_allowed(ip):
        return False
    if ip.version == 6:
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_blocked(embedded)
    if any(ip.version == net.version and ip in net for net in _EXTRA_BLOCKED):
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved


class DestinationUnresolved(Exception):
    """DNS gave no answer. Temporary: a retry may succeed."""


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` means: an IP literal (odd spellings and a trailing dot included)
    without asking DNS, `localhost` names as loopback (RFC 6761), anything else from DNS."""
    literal = _literal_or_local(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationUnresolved(f"Could not resolve host {host!r}: {exc}") from exc
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def checked_address(host: str, port: int) -> IPAddress:
    """Resolve `host` once and return the address to connect to, or raise DestinationRefused.

    Every resolved address must pass, so a name that also points inside cannot be used to
    reach in by chance.
    """
    addresses = resolve(host, port)
    if not addresses:
        raise DestinationUnresolved(f"Host {host!r} has no address.")
    for ip in addresses:
        if is_blocked(ip):
            raise DestinationRefused(
                f"Destination not allowed: {host} resolves to a non-public address ({ip}). "
                f"Postbacks go to public addresses only; {_allow_hint()}"
            )
    ip = addresses[0]
    if port not in conf.allowed_ports() and not is_explicitly_allowed(ip):
        raise DestinationRefused(
            f"Destination not allowed: port {port}. Allowed ports: "
            f"{', '.join(map(str, conf.allowed_ports()))} (POSTBACK_ALLOWED_PORTS)."
        )
    return ip


def port_refusal_for_url(url: str) -> str | None:
    """At save time: a message when the URL's port is one that delivery would refuse.

    Public addresses get POSTBACK_ALLOWED_PORTS only; allowed networks any port. A name is not
    looked up: with allowed networks set it may resolve into one, so it is let through.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None  # the URL checks report a bad port number
    if port is None:  # not `or`: port 0 is not the default port
        port = 443 if parts.scheme.lower() == "https" else 80
    if port in conf.allowed_ports():
        return None
    ip = _literal_or_local((parts.hostname or "").rstrip("."))
    if ip is None and allowed_networks():
        return None
    if ip is not None and (is_explicitly_allowed(ip) or is_blocked(ip)):
        return None  # any port inside an allowed network; a blocked address is refused anyway
    ports = ", ".join(map(str, conf.allowed_ports()))
    return (
        f"Port {port} is not allowed: postbacks to public addresses go to ports {ports} only "
        "(POSTBACK_ALLOWED_PORTS), so every delivery would be refused. Use the URL without the "
        "port, or one on a standard port."
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host spelled as an IP literal means, odd spellings included.

    `2130706433`, `0x7f.1` and `0177.0.0.1` all mean 127.0.0.1 to the C resolver.
    """
    host = host.rstrip(".").strip("[]").split("%")[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _literal_or_local(host: str) -> IPAddress | None:
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return ipaddress.ip_address("127.0.0.1")
    return literal_address(host)


def refusal_for_url(url: str) -> str | None:
    """At save time: a message when the URL's host is literally a blocked address.

    Names are not looked up here (DNS can change before the send, which checks again).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    if "\\" in parts.netloc:
        return "The URL's host part may not contain a backslash."
    ip = _literal_or_local(host)
    if ip is not None and is_blocked(ip):
        hint = _allow_hint()
        return f"Postback URLs may not point at a non-public address ({ip}); {hint}"
    return None
