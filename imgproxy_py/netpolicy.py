"""Which IP addresses the server may fetch from: a pure classifier used at connect time.

Addresses are classified after DNS resolution (so rebinding cannot sneak past a check
on the name), and IPv4 addresses hidden inside IPv6 forms are unwrapped first:
IPv4-mapped and -compatible, 6to4 (2002::/16), NAT64 (64:ff9b::/96, 64:ff9b:1::/48)
and Teredo (2001::/32, client address inverted), then ISATAP interface ids
(``…:0:5efe:a.b.c.d`` / ``…:200:5efe:a.b.c.d`` under any prefix), as imgproxy 4.0.12 does.
When an address could mean more than one thing, the most sensitive class wins.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressClass(enum.Enum):
    PUBLIC = "public"
    LOOPBACK = "loopback"  # includes the unspecified address, which connects to the host itself
    LINK_LOCAL = "link-local"  # includes 169.254.169.254 (cloud metadata) and multicast
    PRIVATE = "private"  # RFC 1918, ULA, CGNAT and other non-global ranges


_V4_PRIVATE = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
]
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_ISATAP_IDS = (b"\x00\x00\x5e\xfe", b"\x02\x00\x5e\xfe")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, if it is one of the tunnelling forms."""
    candidates = _tunnelled_ipv4s(ip)
    return candidates[0] if candidates else None


def _tunnelled_ipv4s(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address a tunnelling prefix may carry (NAT64 local-use has two layouts)."""
    v4 = ipaddress.IPv4Address
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    packed = ip.packed
    if packed[:12] == bytes(12) and packed[12:] not in (bytes(4), b"\x00\x00\x00\x01"):
        return (v4(packed[12:]),)  # deprecated IPv4-compatible ::a.b.c.d
    if ip in _SIX_TO_FOUR:
        return (v4(packed[2:6]),)
    if ip in _NAT64_WELL_KNOWN:
        return (v4(packed[12:]),)
    if ip in _NAT64_LOCAL_USE:
        # RFC 6052 layout for the /48 itself (what imgproxy decodes: bits 48-63 and 72-87),
        # and for a /96 carved out of it (the last 32 bits).
        return (v4(packed[6:8] + packed[9:11]), v4(packed[12:]))
    if ip in _TEREDO:
        return (v4(bytes(b ^ 0xFF for b in packed[12:])),)
    return ()


_SENSITIVITY = (AddressClass.LOOPBACK, AddressClass.LINK_LOCAL, AddressClass.PRIVATE, AddressClass.PUBLIC)


def _most_sensitive(classes: list[AddressClass]) -> AddressClass:
    return min(classes, key=_SENSITIVITY.index)


def classify(ip: IPAddress) -> AddressClass:
    if isinstance(ip, ipaddress.IPv6Address):
        tunnelled = _tunnelled_ipv4s(ip)
        if tunnelled:
            return _most_sensitive([classify(inner) for inner in tunnelled])
        own = _classify_ipv6(ip)
        if ip.packed[8:12] in _ISATAP_IDS:
            return _most_sensitive([own, classify(ipaddress.IPv4Address(ip.packed[12:]))])
        return own
    if ip.is_loopback or ip.is_unspecified:
        return AddressClass.LOOPBACK
    if ip.is_link_local or ip.is_multicast:
        return AddressClass.LINK_LOCAL
    if ip.is_private or any(ip in net for net in _V4_PRIVATE) or not ip.is_global:
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


def _classify_ipv6(ip: ipaddress.IPv6Address) -> AddressClass:
    if ip.is_loopback or ip.is_unspecified:
        return AddressClass.LOOPBACK
    if ip.is_link_local or ip.is_multicast:
        return AddressClass.LINK_LOCAL
    if ip.is_private or ip.is_site_local or ip.is_reserved or not ip.is_global:
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_loopback: bool = False
    allow_link_local: bool = False
    allow_private: bool = False

    def allows(self, ip: IPAddress) -> bool:
        kind = classify(ip)
        return (
            kind is AddressClass.PUBLIC
            or (kind is AddressClass.LOOPBACK and self.allow_loopback)
            or (kind is AddressClass.LINK_LOCAL and self.allow_link_local)
            or (kind is AddressClass.PRIVATE and self.allow_private)
        )
