"""Which callback URLs the DIP will call (webhook registration; SSRF protection).

Outside DEV only ``https://`` URLs on the standard port are accepted, and every address the
host name resolves to must be public: no loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
link-local (169.254/16 and fe80::/10, which includes cloud metadata), carrier-grade NAT,
multicast, reserved or unspecified address. In DEV, ``http://`` and loopback addresses are allowed
so participants (and tests) can use local receivers. The check runs at registration and again
before every call (a name can be re-pointed after registration).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

MAX_URL_LENGTH = 250  # DT-018-URL

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (the system resolver)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):  # UnicodeError: not a DNS name (empty or over-long label)
        return []
    return sorted({str(info[4][0]) for info in infos})


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # an IPv6 form of an IPv4 address must pass as that IPv4 address (else NAT64/6to4 would
        # be a way round the check)
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not (embedded.is_global and not embedded.is_multicast):
            return False
    return ip.is_global and not ip.is_multicast


def callback_url_problem(url: str, environment: str, resolver: Resolver = resolve) -> str | None:
    """Why the DIP will not call ``url``, or None when it will."""
    if len(url) > MAX_URL_LENGTH:
        return f"callbackURL is longer than {MAX_URL_LENGTH} characters"
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        # RFC 3986: a URL holds none; percent-encode them. Stored, they would be a header
        # injection or a log forgery waiting for the call
        return "callbackURL must not hold spaces, control or non-ASCII characters (percent-encode them)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"callbackURL is not a valid URL: {exc}"
    dev = environment == "DEV"
    if parts.scheme not in (("https", "http") if dev else ("https",)):
        return "callbackURL must be an https:// URL" + ("" if not dev else " (or http:// in DEV)")
    if not parts.hostname:
        return "callbackURL has no host"
    if parts.username or parts.password:
        return "callbackURL must not carry a user name or password"
    if parts.fragment:
        return "callbackURL must not have a #fragment"
    if not dev and port not in (None, 443):
        return "callbackURL must use the standard https port (E2E 4.6.2)"
    addresses = resolver(parts.hostname)
    if not addresses:
        return f"callbackURL host '{parts.hostname}' does not resolve"
    if not dev:
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked:
            return f"callbackURL host '{parts.hostname}' resolves to a non-public address ({blocked[0]})"
    return None
