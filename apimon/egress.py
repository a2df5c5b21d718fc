"""Egress policy: which addresses the server may connect to for a tenant's URL.

apimon fetches URLs that tenants type in (today an API's backend URL, which the
gateway forwards calls to). Unchecked, a tenant could point one at the platform's own
network — loopback, a private range, the cloud metadata address — and read the answers
through the gateway with their own key. So, with ``BACKEND_PRIVATE_NETWORKS=deny`` (the
default when ``DEBUG=0``), an address is refused unless it is globally routable or in
one of the operator's ``BACKEND_ALLOWED_NETWORKS``:

- IPv4: "this network" 0.0.0.0/8, RFC 1918, carrier-grade NAT 100.64.0.0/10, loopback,
  link-local (the cloud metadata address 169.254.169.254 among them), the IETF,
  documentation, benchmarking and 6to4-relay ranges, multicast, the broadcast address,
  240.0.0.0/4, and anything else Python's ``ipaddress`` does not call global;
- IPv6: anything outside global unicast 2000::/3 (the unspecified address ::,
  loopback, IPv4-compatible ::a.b.c.d, unique local fc00::/7, link-local fe80::/10,
  site-local, multicast, reserved), and inside it Teredo 2001::/32, the IETF range
  2001::/23, documentation 2001:db8::/32 and 3fff::/20, and 6to4 2002::/16 (all
  deprecated or never a backend);
- an IPv6 address that carries an IPv4 address the gateway would reach — IPv4-mapped
  ``::ffff:a.b.c.d`` and well-known NAT64 ``64:ff9b::a.b.c.d`` (what DNS64 gives an
  IPv4-only host on an IPv6-only network) — is judged by that IPv4 address; the local-use
  NAT64 prefix 64:ff9b:1::/48 is refused whole.

With ``allow`` (the default when ``DEBUG=1``, so the demo's sample API on 127.0.0.1
works) nothing is checked.

The same policy is applied twice:

1. when the URL is saved (:func:`url_refusal`): the host name is resolved, with a short
   timeout, and every address it resolves to is checked, so the publisher gets a clear
   error next to the field;
2. when the server connects (:func:`connector`): an aiohttp resolver checks every
   address a name resolves to, and a socket factory checks every address a socket is
   about to connect to, IP literals included. A DNS answer that changed since the URL
   was saved (rebinding, a short TTL) is therefore refused too. The refusal is an
   :class:`EgressRefused` (an ``OSError``), which aiohttp reports as a connection
   error; :func:`refused_by` finds it in one.

This module is a leaf: it depends on Django's settings only, so the gateway, the
publisher's forms and later the outbound webhooks share it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW, DENY = "allow", "deny"
# A publisher saving a form waits this long at most for a DNS answer.
RESOLVE_TIMEOUT = 3.0

_PRIVATE = "a private address (RFC 1918)"
_DOCUMENTATION = "a documentation address"
# First match wins: the more specific networks come first.
_DENIED_V4 = [
    ("0.0.0.0/8", "a “this network” address (0.0.0.0/8)"),
    ("10.0.0.0/8", _PRIVATE),
    ("100.64.0.0/10", "a carrier-grade NAT address (100.64.0.0/10)"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.169.254/32", "the cloud metadata address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", _PRIVATE),
    ("192.0.0.0/24", "an IETF protocol address (192.0.0.0/24)"),
    ("192.0.2.0/24", _DOCUMENTATION),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", _PRIVATE),
    ("198.18.0.0/15", "a benchmarking address (198.18.0.0/15)"),
    ("198.51.100.0/24", _DOCUMENTATION),
    ("203.0.113.0/24", _DOCUMENTATION),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address (240.0.0.0/4)"),
]
_DENIED_V6 = [
    ("::/128", "the unspecified address (::)"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible IPv6 address (deprecated)"),
    ("64:ff9b:1::/48", "a local-use NAT64 address (64:ff9b:1::/48)"),
    ("fc00::/7", "a unique local address (fc00::/7)"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address (deprecated)"),
    ("ff00::/8", "a multicast address"),
    ("2001::/32", "a Teredo address (2001::/32)"),
    ("2001:db8::/32", _DOCUMENTATION),
    ("2001::/23", "an IETF protocol address (2001::/23)"),
    ("2002::/16", "a 6to4 address (2002::/16, deprecated)"),
    ("3fff::/20", _DOCUMENTATION),
]
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# The numeric host forms inet_aton() accepts besides a.b.c.d: 2130706433, 0x7f.1,
# 017700000001, 127.1. Resolvers and HTTP clients disagree on them; refuse them all.
_LEGACY_V4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?")


def _networks(pairs):
    return [(ipaddress.ip_network(net), why) for net, why in pairs]


_DENIED_V4_NETS = _networks(_DENIED_V4)
_DENIED_V6_NETS = _networks(_DENIED_V6)


class EgressRefused(OSError):
    """The policy refused to connect to `address` (reached from `host`)."""

    def __init__(self, address: str, reason: str, host: str = "") -> None:
        super().__init__(f"{host or address}: {address} is {reason}")
        self.address = address
        self.reason = reason
        self.host = host


@dataclass(frozen=True)
class Refusal:
    """Why a URL cannot be saved: `code` for programs, `message` for people."""

    code: str
    message: str
    address: str = ""


class _Policy:
    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = [ipaddress.ip_network(net, strict=False) for net in allowed]
        self.refusal = functools.lru_cache(maxsize=4096)(self._refusal)

    def _is_allowed(self, address: IPAddress) -> bool:
        return any(address in net for net in self.allowed)

    def _refusal(self, text: str) -> str | None:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return "not an IP address"
        if self._is_allowed(address):
            return None
        if address.version == 6:
            embedded = address.ipv4_mapped
            form = "IPv4-mapped"
            if embedded is None and address in _NAT64_WELL_KNOWN:
                embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
                form = "NAT64"
            if embedded is not None:
                reason = self._refusal(str(embedded))
                return f"{reason} ({form} form of {embedded})" if reason else None
            for net, why in _DENIED_V6_NETS:
                if address in net:
                    return why
            if address not in _GLOBAL_UNICAST_V6:
                return "not a global unicast IPv6 address"
        else:
            for net, why in _DENIED_V4_NETS:
                if address in net:
                    return why
        if not address.is_global or address.is_multicast or address.is_reserved:
            return "not a globally routable address"
        return None


@functools.lru_cache(maxsize=8)
def _policy(allowed: tuple[str, ...]) -> _Policy:
    return _Policy(allowed)


def enforced() -> bool:
    """Whether the policy applies (``BACKEND_PRIVATE_NETWORKS=deny``)."""
    return settings.BACKEND_PRIVATE_NETWORKS == DENY


def address_refusal(address: str | IPAddress) -> str | None:
    """Why the server may not connect to `address` ("a loopback address", …), or None
    when it may. Results are cached per address (and per allowed-networks setting)."""
    if not enforced():
        return None
    return _policy(tuple(settings.BACKEND_ALLOWED_NETWORKS)).refusal(str(address))


def is_legacy_numeric_host(host: str) -> bool:
    """True for a host that is an IPv4 address in a form other than a.b.c.d
    (``2130706433``, ``0x7f.1``, ``017700000001``, ``127.1``)."""
    host = host.lower()
    if not _LEGACY_V4.fullmatch(host):
        return False
    try:
        ipaddress.IPv4Address(host.rstrip("."))
    except ValueError:
        return True
    return host.endswith(".")


_OPERATOR_HINT = (
    "apimon does not connect to private, loopback or link-local networks: use the "
    "backend's public address, or ask the platform's operator to allow its network."
)
_dns = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns")
# The system resolver, as a module attribute so that tests can map names (there is no
# DNS in the test suite).
getaddrinfo = socket.getaddrinfo


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    # getaddrinfo() cannot be interrupted: it runs in a thread and is waited for at
    # most `timeout` seconds.
    infos = _dns.submit(getaddrinfo, host, port, type=socket.SOCK_STREAM).result(
        timeout
    )
    return list(dict.fromkeys(info[4][0] for info in infos))


def url_refusal(
    url: str, *, resolve: bool = True, timeout: float = RESOLVE_TIMEOUT
) -> Refusal | None:
    """Why `url` cannot be used as a tenant's URL under the policy, or None.

    A numeric host in a legacy form is always refused (HTTP clients disagree on what it
    means). With the policy on, an IP literal is checked as it is; a host name is
    resolved (at most `timeout` seconds) and refused if it does not resolve or if any of
    its addresses is refused. With ``resolve=False`` only IP literals and ``localhost``
    names are checked (no DNS: for writes that must not wait on the network); the
    connect-time check covers the rest."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None  # not a URL: the syntax check says so
    if not host:
        return None
    if is_legacy_numeric_host(host):
        return Refusal(
            "numeric_host",
            f"Write the IP address {host} as four decimal numbers, a.b.c.d.",
        )
    if not enforced():
        return None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        reason = address_refusal(literal)
        if reason:
            return Refusal(
                "forbidden_address", f"{host} is {reason}. {_OPERATOR_HINT}", host
            )
        return None
    if not resolve:
        name = host.rstrip(".")
        # RFC 6761: localhost names are loopback addresses, without asking DNS.
        is_localhost = name == "localhost" or name.endswith(".localhost")
        if is_localhost and any(map(address_refusal, ("127.0.0.1", "::1"))):
            return Refusal(
                "forbidden_address", f"{host} is a loopback name. {_OPERATOR_HINT}"
            )
        return None
    try:
        addresses = _resolve(host, port, timeout)
    except concurrent.futures.TimeoutError:
        return Refusal(
            "resolve_timeout",
            f"Looking up {host} took more than {timeout:g} seconds: try again.",
        )
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        return Refusal(
            "not_resolved",
            f"{host} does not resolve (no DNS record found): check the host name. The "
            "gateway can only forward to a host with a public address.",
        )
    for address in addresses:
        reason = address_refusal(address)
        if reason:
            return Refusal(
                "forbidden_address",
                f"{host} resolves to {address}, {reason}. {_OPERATOR_HINT}",
                address,
            )
    return None


# ---- connect time (aiohttp) ------------------------------------------------------


def _check(address: str, host: str = "") -> None:
    reason = address_refusal(address)
    if reason:
        raise EgressRefused(address, reason, host)


def socket_factory(addr_info) -> socket.socket:
    """aiohttp's ``socket_factory``: checks the very address a socket is about to
    connect to (IP literals do not go through the resolver)."""
    family, type_, proto, _canonname, sockaddr = addr_info
    _check(sockaddr[0])
    return socket.socket(family=family, type=type_, proto=proto)


class PolicyResolver(AbstractResolver):
    """Wraps a resolver and refuses a name if any address it resolves to is refused,
    before aiohttp caches it or connects to it."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(self, host, port=0, family=socket.AF_INET):
        addresses = await self._inner.resolve(host, port, family)
        for entry in addresses:
            _check(entry["host"], host)
        return addresses

    async def close(self) -> None:
        await self._inner.close()


def connector(
    *, resolver: AbstractResolver | None = None, **kwargs
) -> aiohttp.TCPConnector:
    """An ``aiohttp.TCPConnector`` that only connects where the policy allows.
    `resolver` is the resolver to wrap (aiohttp's default when None); `kwargs` go to
    the connector (its DNS cache stays on: only allowed answers are cached)."""
    inner = resolver if resolver is not None else aiohttp.DefaultResolver()
    return aiohttp.TCPConnector(
        resolver=PolicyResolver(inner), socket_factory=socket_factory, **kwargs
    )


def refused_by(exc: BaseException) -> EgressRefused | None:
    """The policy's refusal behind a connection error raised by aiohttp, if any."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, EgressRefused):
            return exc
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return None
