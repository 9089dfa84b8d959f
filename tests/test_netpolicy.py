"""Source address classification (SSRF guard), incl. IPv4 addresses hidden in IPv6 forms.

Reference: ../shared/reference/imgproxy.md §4 (loopback/link-local/private rules, CGNAT and
6to4/NAT64/Teredo/ISATAP unwrapping since imgproxy 4.0.12).
"""

from __future__ import annotations

import ipaddress

import pytest

from imgproxy_py.netpolicy import AddressClass, AddressPolicy, IPAddress, classify

L = AddressClass.LOOPBACK
LL = AddressClass.LINK_LOCAL
P = AddressClass.PRIVATE
PUB = AddressClass.PUBLIC


def teredo(client: str, server: str = "65.54.227.120", flags: int = 0x8000, port: int = 0x63BF) -> str:
    """RFC 4380: 2001:0000:<server v4>:<flags>:<port ^ 0xffff>:<client v4 ^ 0xffffffff>."""
    server_bits = int(ipaddress.IPv4Address(server))
    client_bits = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    value = (0x20010000 << 96) | (server_bits << 64) | (flags << 48) | (port << 32) | client_bits
    return str(ipaddress.IPv6Address(value))


def nat64_48(v4: str, suffix: int = 0) -> str:
    """RFC 6052 §2.2 layout for a /48 prefix (64:ff9b:1::/48): v4 in bits 48-63 and 72-87."""
    b = ipaddress.IPv4Address(v4).packed
    packed = bytes.fromhex("0064ff9b0001") + b[:2] + b"\x00" + b[2:] + bytes(5)
    return str(ipaddress.IPv6Address(int.from_bytes(packed, "big") | suffix))


def test_helpers_build_the_documented_forms() -> None:
    # RFC 4380's own example: server 65.54.227.120, client 192.0.2.45 → 2001:0:4136:e378:8000:63bf:3fff:fdd2
    assert teredo("192.0.2.45") == "2001:0:4136:e378:8000:63bf:3fff:fdd2"
    # RFC 6052 §2.4 table: 192.0.2.33 with a /48 prefix 2001:db8:122::/48 → 2001:db8:122:c000:2:2100::
    assert nat64_48("192.0.2.33").endswith(":c000:2:2100::")


CASES: list[tuple[str, AddressClass]] = [
    # loopback and unspecified
    ("127.0.0.1", L),
    ("127.255.255.254", L),
    ("0.0.0.0", L),
    ("::1", L),
    ("::", L),
    # RFC 1918 and other non-global IPv4
    ("10.0.0.1", P),
    ("10.255.255.255", P),
    ("172.16.0.1", P),
    ("172.31.255.255", P),
    ("192.168.1.1", P),
    ("100.64.0.1", P),  # CGNAT 100.64/10
    ("100.127.255.254", P),
    ("0.1.2.3", P),  # "this network"
    ("198.18.0.1", P),  # benchmarking
    ("240.0.0.1", P),  # reserved
    # link-local (incl. cloud metadata) and multicast
    ("169.254.169.254", LL),
    ("169.254.0.1", LL),
    ("fe80::1", LL),
    ("224.0.0.1", LL),
    ("ff02::1", LL),
    # IPv6 unique local
    ("fc00::1", P),
    ("fd12:3456:789a::1", P),
    # IPv4 hidden in IPv6
    ("::ffff:127.0.0.1", L),
    ("::ffff:10.0.0.1", P),
    ("::ffff:169.254.169.254", LL),
    ("::ffff:8.8.8.8", PUB),
    ("::127.0.0.1", L),  # deprecated IPv4-compatible
    ("::10.0.0.1", P),
    ("2002:7f00:0001::", L),  # 6to4 of 127.0.0.1
    ("2002:a00:1::1", P),  # 6to4 of 10.0.0.1
    ("2002:a9fe:a9fe::", LL),  # 6to4 of 169.254.169.254
    ("64:ff9b::7f00:1", L),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", LL),
    ("64:ff9b::808:808", PUB),
    (teredo("127.0.0.1"), L),
    (teredo("10.1.2.3"), P),
    (teredo("169.254.169.254"), LL),
    # public
    ("8.8.8.8", PUB),
    ("1.1.1.1", PUB),
    ("172.32.0.1", PUB),  # just outside 172.16/12
    ("100.128.0.1", PUB),  # just outside 100.64/10
    ("2606:4700:4700::1111", PUB),
    ("2001:4860:4860::8888", PUB),
]


@pytest.mark.parametrize(("address", "expected"), CASES, ids=[c[0] for c in CASES])
def test_classify(address: str, expected: AddressClass) -> None:
    assert classify(ipaddress.ip_address(address)) is expected


def test_teredo_client_address_is_inverted() -> None:
    address = teredo("127.0.0.1")
    assert address.endswith(":80ff:fffe")  # 127.0.0.1 XOR 0xffffffff
    # the non-inverted bits would be 127.0.0.1 only by accident; make sure we read them inverted
    assert classify(ipaddress.ip_address(teredo("128.255.255.254"))) is PUB


ISATAP_CASES: list[tuple[str, AddressClass]] = [
    ("2606:4700::5efe:7f00:1", L),  # RFC 5214 interface id 0000:5efe:127.0.0.1 under a global prefix
    ("2606:4700::200:5efe:a00:1", P),  # 0200:5efe:10.0.0.1
    ("2606:4700::5efe:a9fe:a9fe", LL),
    ("2606:4700::5efe:808:808", PUB),
    ("fe80::5efe:808:808", LL),  # the prefix itself still counts
]


@pytest.mark.parametrize(("address", "expected"), ISATAP_CASES, ids=[c[0] for c in ISATAP_CASES])
def test_isatap(address: str, expected: AddressClass) -> None:
    assert classify(ipaddress.ip_address(address)) is expected


def test_nat64_local_use_prefix_with_48_bit_layout() -> None:
    """64:ff9b:1::/48 (RFC 8215) carries the IPv4 address as RFC 6052 lays it out for a /48."""
    assert classify(ipaddress.ip_address(nat64_48("127.0.0.1"))) is L
    # bits after the embedded address must not hide it
    assert classify(ipaddress.ip_address(nat64_48("10.0.0.1", suffix=0x0808_0808))) is P
    assert classify(ipaddress.ip_address(nat64_48("169.254.169.254", suffix=0x0808_0808))) is LL


def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


REPRESENTATIVES: dict[AddressClass, list[str]] = {
    PUB: ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
    L: ["127.0.0.1", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::7f00:1"],
    LL: ["169.254.169.254", "fe80::1", "224.0.0.1", "ff02::1"],
    P: ["10.0.0.1", "172.16.0.1", "192.168.0.1", "100.64.0.1", "fc00::1", "::ffff:10.0.0.1"],
}


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        (AddressPolicy(), {PUB}),
        (AddressPolicy(allow_loopback=True), {PUB, L}),
        (AddressPolicy(allow_link_local=True), {PUB, LL}),
        (AddressPolicy(allow_private=True), {PUB, P}),
        (AddressPolicy(allow_loopback=True, allow_link_local=True, allow_private=True), {PUB, L, LL, P}),
    ],
)
def test_each_flag_re_allows_only_its_class(policy: AddressPolicy, allowed: set[AddressClass]) -> None:
    for kind, addresses in REPRESENTATIVES.items():
        for address in addresses:
            assert policy.allows(_ip(address)) is (kind in allowed), (policy, address)
