"""The egress policy (apimon/egress.py): which addresses the server may connect to for
a tenant's URL. Every range and encoding is listed here explicitly, because the flags
of Python's `ipaddress` differ between versions."""

from __future__ import annotations

import pytest

from apimon import egress


@pytest.fixture
def deny(settings):
    settings.BACKEND_PRIVATE_NETWORKS = "deny"
    settings.BACKEND_ALLOWED_NETWORKS = []
    return settings


DENIED = {
    # IPv4
    "0.0.0.0": "this network",
    "0.1.2.3": "this network",
    "10.0.0.1": "private address (RFC 1918)",
    "10.255.255.255": "private address (RFC 1918)",
    "172.16.0.1": "private address (RFC 1918)",
    "172.31.255.254": "private address (RFC 1918)",
    "192.168.0.1": "private address (RFC 1918)",
    "192.168.255.255": "private address (RFC 1918)",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "169.254.169.254": "cloud metadata",
    "169.254.0.1": "link-local",
    "192.0.0.8": "IETF protocol",
    "192.0.2.10": "documentation",
    "198.51.100.7": "documentation",
    "203.0.113.99": "documentation",
    "192.88.99.1": "6to4 relay",
    "198.18.0.1": "benchmarking",
    "198.19.255.254": "benchmarking",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "broadcast",
    # IPv6
    "::": "unspecified",
    "::1": "loopback",
    "fc00::1": "unique local",
    "fd00::1": "unique local",
    "fdff:ffff::1": "unique local",
    "fe80::1": "link-local",
    "fe80::1%1": "link-local",
    "febf::1": "link-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "ff0e::1": "multicast",
    "2001:db8::1": "documentation",
    "3fff::1": "documentation",
    "100::1": "not a global unicast",
    "4000::1": "not a global unicast",
    # IPv6 encodings of IPv4 addresses
    "::ffff:127.0.0.1": "loopback address (IPv4-mapped form of 127.0.0.1)",
    "::ffff:7f00:1": "loopback address (IPv4-mapped form of 127.0.0.1)",
    "::ffff:10.1.2.3": "private address (RFC 1918) (IPv4-mapped",
    "::ffff:169.254.169.254": "cloud metadata address (IPv4-mapped",
    "::ffff:0.0.0.0": "this network",
    "::127.0.0.1": "IPv4-compatible",
    "::10.0.0.1": "IPv4-compatible",
    "::8.8.8.8": "IPv4-compatible",
    "64:ff9b::127.0.0.1": "loopback address (NAT64 form of 127.0.0.1)",
    "64:ff9b::a9fe:a9fe": "cloud metadata address (NAT64 form of 169.254.169.254)",
    "64:ff9b::192.168.1.1": "private address (RFC 1918) (NAT64",
    "64:ff9b:1::7f00:1": "local-use NAT64",
    "64:ff9b:1::808:808": "local-use NAT64",
    "2002:7f00:1::1": "6to4",
    "2002:a00:1::1": "6to4",
    "2002:808:808::1": "6to4",
    "2001::1": "Teredo",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": "Teredo",
    "2001:10::1": "IETF protocol",
}
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below carrier-grade NAT
    "100.128.0.0",  # just above it
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "64:ff9b::8.8.8.8",  # NAT64 (DNS64) form of a public address
]


@pytest.mark.parametrize(("address", "why"), DENIED.items())
def test_it_refuses_every_listed_range_and_encoding(deny, address, why):
    assert why in egress.address_refusal(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_it_allows_globally_routable_addresses(deny, address):
    assert egress.address_refusal(address) is None


def test_allow_checks_nothing(settings):
    settings.BACKEND_PRIVATE_NETWORKS = "allow"
    for address in DENIED:
        assert egress.address_refusal(address) is None


def test_allowed_networks_are_allowed_even_when_private(deny):
    deny.BACKEND_ALLOWED_NETWORKS = ["10.20.0.0/16", "fd12:3456::/32"]
    assert egress.address_refusal("10.20.1.2") is None
    assert egress.address_refusal("::ffff:10.20.1.2") is None  # its mapped form too
    assert egress.address_refusal("fd12:3456::1") is None
    assert "private" in egress.address_refusal("10.21.0.1")
    assert "loopback" in egress.address_refusal("127.0.0.1")
    assert "unique local" in egress.address_refusal("fd12:3457::1")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:12111/",
        "http://localhost/",
        "http://localhost:8000/v1",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]:8080/",
        "http://[::]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://192.168.1.10:8080/api",
        "http://100.64.1.1/",
        "http://[fd00::1]/",
        "http://[fe80::1%25eth0]/",
        "https://127.0.0.1./",
        "http://user:pw@127.0.0.1/",
    ],
)
def test_a_url_on_the_platforms_network_is_refused(deny, url):
    refusal = egress.url_refusal(url)
    assert refusal is not None
    assert refusal.code in ("forbidden_address", "numeric_host")
    assert "public address" in refusal.message or "decimal" in refusal.message


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://10.1/",
    ],
)
def test_numeric_ipv4_forms_are_refused_even_when_private_networks_are_allowed(
    settings, url
):
    settings.BACKEND_PRIVATE_NETWORKS = "allow"
    refusal = egress.url_refusal(url)
    assert refusal.code == "numeric_host"
    assert "four decimal numbers" in refusal.message


def test_a_host_name_is_resolved_and_each_address_checked(deny):
    # localhost comes from /etc/hosts (there is no other DNS here).
    refusal = egress.url_refusal("http://localhost:9/")
    assert refusal.code == "forbidden_address"
    assert refusal.message.startswith("localhost resolves to ")
    assert refusal.address in ("127.0.0.1", "::1")


def test_without_resolving_only_literals_and_localhost_names_are_checked(deny):
    assert egress.url_refusal("http://10.0.0.1/", resolve=False).code == (
        "forbidden_address"
    )
    assert egress.url_refusal("http://api.localhost/", resolve=False) is not None
    assert egress.url_refusal("http://backend.example.com/", resolve=False) is None


def test_a_name_that_does_not_resolve_is_its_own_error(deny):
    refusal = egress.url_refusal("https://no-such-host.invalid/v1")
    assert refusal.code == "not_resolved"
    assert "does not resolve" in refusal.message


def test_a_public_address_passes(deny):
    assert egress.url_refusal("https://93.184.215.14/v1") is None
    assert egress.url_refusal("https://[2606:4700:4700::1111]/") is None


def test_allowed_networks_let_a_url_through(deny):
    deny.BACKEND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert egress.url_refusal("http://127.0.0.1:12111/") is None
    assert egress.url_refusal("http://localhost:12111/") is None
