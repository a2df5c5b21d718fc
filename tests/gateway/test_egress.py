"""The egress policy at connect time (apimon/egress.py): the gateway checks every
address it connects to, whatever the database says and whatever DNS answers now.
A refused connection is a 502 `backend_forbidden`, not counted, and is shown to the
publisher on the API's page."""

from __future__ import annotations

import socket
import time

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver
from django.test import Client

from apimon import egress
from apimon.models import Role
from gateway.entitlements import invalidate
from publisher.models import Api
from tests.gateway.conftest import LoopThread, flush_all, serving, usage_total
from tests.helpers import by_id

FAST = "/gateway/acme/weather/v1/fast"


@pytest.fixture
def deny(settings):
    settings.BACKEND_PRIVATE_NETWORKS = "deny"
    settings.BACKEND_ALLOWED_NETWORKS = []
    return settings


class Hosts(AbstractResolver):
    """A resolver over a mapping that tests change as they go (there is no DNS in
    tests): what the gateway's resolver seam is given instead of the system's."""

    def __init__(self, mapping: dict[str, list[str]]) -> None:
        self.mapping = mapping

    async def resolve(self, host, port=0, family=socket.AF_INET):
        if host not in self.mapping:
            raise OSError(f"unknown host {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.mapping[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
def hosts():
    return {}


@pytest.fixture
def gateway_with_hosts(redis_db, hosts):
    """The gateway with its resolver answering from `hosts`."""
    with serving(resolver=lambda: Hosts(hosts)) as gw:
        yield gw


def port_of(metering) -> str:
    return metering.backend_url.split(":")[2].split("/")[0]


def point_backend(metering, backend_url: str) -> None:
    """The API row as if saved before the policy (or by the admin's shell)."""
    Api.objects.filter(pk=metering.api.pk).update(backend_url=backend_url)
    invalidate(api_ids=[metering.api.pk])


def forbidden(response) -> bool:
    return (
        response.status_code == 502
        and response.json()["error"]["code"] == "backend_forbidden"
    )


def wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_a_backend_on_loopback_is_refused_at_connect_time(metering, gateway, deny):
    response = gateway.get(FAST, key=metering.key)
    assert forbidden(response)
    assert "may not connect" in response.json()["error"]["message"]
    assert response.headers["x-content-type-options"] == "nosniff"
    flush_all()
    assert usage_total(metering.subscription) == 0  # not counted, like every 502


@pytest.mark.parametrize(
    "host",
    ["[::1]", "[::ffff:127.0.0.1]", "localhost", "0.0.0.0"],
)
def test_every_spelling_of_this_machine_is_refused(metering, gateway, deny, host):
    point_backend(metering, f"http://{host}:{port_of(metering)}/_bench")
    assert forbidden(gateway.get(FAST, key=metering.key))


def test_a_legacy_numeric_host_never_reaches_the_backend(metering, gateway, deny):
    """aiohttp refuses 2130706433 and 127.1 itself; 0x7f.0.0.1 goes to the resolver,
    where getaddrinfo() reads it as 127.0.0.1, and the policy refuses that."""
    expected = {
        "2130706433": "backend_unreachable",
        "127.1": "backend_unreachable",
        "0x7f.0.0.1": "backend_forbidden",
    }
    for host, code in expected.items():
        point_backend(metering, f"http://{host}:{port_of(metering)}/_bench")
        response = gateway.get(FAST, key=metering.key)
        assert (response.status_code, response.json()["error"]["code"]) == (502, code)


def test_the_operators_allowed_networks_are_served(metering, gateway, deny):
    deny.BACKEND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    response = gateway.get(FAST, key=metering.key)
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_private_networks_allowed_means_no_check(metering, gateway, settings):
    settings.BACKEND_PRIVATE_NETWORKS = "allow"
    assert gateway.get(FAST, key=metering.key).status_code == 200


def test_dns_rebinding_is_refused_at_connect_time(
    metering, gateway_with_hosts, deny, hosts, monkeypatch
):
    """The name resolved to a public address when the publisher saved it, and to
    127.0.0.1 when the gateway connects."""
    backend = f"http://rebind.example:{port_of(metering)}/_bench"
    monkeypatch.setattr(
        egress,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))
        ],
    )
    owner = Client()
    owner.force_login(metering.org.memberships.get(role=Role.OWNER).user)
    saved = owner.post(
        f"/t/acme/publisher/apis/{metering.api.pk}/edit/",
        {
            "name": "Weather",
            "version": "v1",
            "context": "weather",
            "backend_url": backend,
            "visibility": "PUBLIC",
        },
    )
    assert saved.status_code == 302
    assert Api.objects.get(pk=metering.api.pk).backend_url == backend

    hosts["rebind.example"] = ["127.0.0.1"]
    assert forbidden(gateway_with_hosts.get(FAST, key=metering.key))

    # A name with one private address among public ones is refused whole.
    hosts["rebind.example"] = ["93.184.215.14", "10.0.0.7"]
    assert forbidden(gateway_with_hosts.get(FAST, key=metering.key))


def test_the_resolver_seam_is_what_the_gateway_connects_through(
    metering, gateway_with_hosts, deny, hosts
):
    """The same mapping, with the operator allowing loopback: served (so the refusal
    above is the policy's, not a name that did not resolve)."""
    point_backend(metering, f"http://rebind.example:{port_of(metering)}/_bench")
    hosts["rebind.example"] = ["127.0.0.1"]
    deny.BACKEND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert gateway_with_hosts.get(FAST, key=metering.key).status_code == 200


def test_a_refused_connect_is_shown_on_the_api_page(metering, gateway, deny):
    assert forbidden(gateway.get(FAST, key=metering.key))
    assert forbidden(gateway.get(FAST, key=metering.key))

    def noted():
        api = Api.objects.get(pk=metering.api.pk)
        return api if api.backend_refused_at else None

    api = wait_for(noted)
    assert api is not None, "the refusal was not recorded on the API"
    assert api.backend_refused_address == "127.0.0.1"
    assert api.backend_refused_at.year == 2027  # the gateway's clock

    owner = Client()
    owner.force_login(metering.org.memberships.get(role=Role.OWNER).user)
    page = owner.get(f"/t/acme/publisher/apis/{metering.api.pk}/").content
    notice = by_id(page, "backend-refused").text()
    assert "refused to connect to this API's backend" in notice
    assert "at 127.0.0.1 (2027-01-15 10:00 UTC)" in notice


def test_the_verify_endpoint_fetches_nothing_so_the_policy_is_moot(
    metering, gateway, deny
):
    response = gateway.get("/gateway-verify/acme/weather/v1/fast", key=metering.key)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"


# ---- the connector itself, as any server-side fetch of a tenant's URL uses it -----


def fetch(url: str, mapping: dict[str, list[str]] | None = None):
    """GET `url` through egress.connector(); the status, or the policy's refusal."""

    async def go():
        connector = egress.connector(resolver=Hosts(mapping or {}))
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                async with session.get(url, allow_redirects=False) as response:
                    return response.status
            except aiohttp.ClientError as exc:
                return egress.refused_by(exc) or exc

    loop = LoopThread()  # the test thread may already run a loop (Playwright's)
    try:
        return loop.run(go())
    finally:
        loop.stop()


def test_the_connector_refuses_a_literal_address(deny, backend_url):
    refused = fetch(f"{backend_url}/_bench/fast")
    assert isinstance(refused, egress.EgressRefused)
    assert refused.address == "127.0.0.1"
    assert "loopback" in refused.reason


def test_the_connector_refuses_a_name_by_what_it_resolves_to(deny, backend_url):
    port = backend_url.rsplit(":", 1)[1]
    refused = fetch(
        f"http://rebound.example:{port}/_bench/fast",
        {"rebound.example": ["93.184.215.14", "127.0.0.1"]},
    )
    assert isinstance(refused, egress.EgressRefused)
    assert (refused.host, refused.address) == ("rebound.example", "127.0.0.1")


def test_the_connector_connects_where_the_policy_allows(deny, backend_url):
    port = backend_url.rsplit(":", 1)[1]
    deny.BACKEND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert fetch(f"{backend_url}/_bench/fast") == 200
    named = fetch(
        f"http://backend.example:{port}/_bench/fast", {"backend.example": ["127.0.0.1"]}
    )
    assert named == 200


def test_the_connector_checks_nothing_when_private_networks_are_allowed(
    settings, backend_url
):
    settings.BACKEND_PRIVATE_NETWORKS = "allow"
    assert fetch(f"{backend_url}/_bench/fast") == 200
