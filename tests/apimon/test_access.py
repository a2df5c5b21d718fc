"""Every tenant URL, walked from the URLconf: outsiders get 404, anonymous callers are
sent to log in, and a role that may not act gets 403. New views are covered as soon as
they are routed under /t/<org_slug>/."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from apimon.tenancy import MEMBERS

# Class-based allauth views that resolve the tenant themselves (public by design).
NOT_DECORATED = {"store-signup"}


def _walk(patterns, prefix=""):
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            yield route, p.callback, p.name


def tenant_routes():
    resolver = get_resolver()
    routes = []
    for route, callback, name in _walk(resolver.url_patterns):
        if route.startswith("t/<slug:org_slug>/"):
            routes.append((route, callback, name))
    return routes


def build(route: str, slug: str) -> str:
    url = route.replace("<slug:org_slug>", slug)
    url = re.sub(r"<int:[a-z_]+>", "999999", url)
    url = re.sub(r"<(?:uuid):[a-z_]+>", "00000000-0000-0000-0000-000000000000", url)
    url = re.sub(r"<(?:str|slug|path)?:?[a-z_]+>", "x", url)
    return "/" + url


def is_public(callback, name) -> bool:
    return getattr(callback, "tenant_public", False) or name in NOT_DECORATED


ROUTES = tenant_routes()
PRIVATE = [r for r in ROUTES if not is_public(r[1], r[2])]
RESTRICTED = [
    r for r in PRIVATE if "subscriber" not in getattr(r[1], "tenant_roles", MEMBERS)
]


def ids(routes):
    return [name or route for route, _cb, name in routes]


def test_every_tenant_route_goes_through_the_access_helper():
    undecorated = [
        name
        for _route, cb, name in ROUTES
        if not hasattr(cb, "tenant_roles") and name not in NOT_DECORATED
    ]
    assert undecorated == []


def test_the_walk_finds_the_tenant_routes():
    names = {name for _r, _c, name in ROUTES}
    assert {"members", "tenant-home", "home", "dashboard"} <= names
    assert PRIVATE and RESTRICTED


@pytest.mark.parametrize(("route", "callback", "name"), PRIVATE, ids=ids(PRIVATE))
def test_an_outsider_gets_404_on_every_tenant_url(
    world, client_for, route, callback, name
):
    client = client_for(world.outsider)
    url = build(route, world.org.slug)
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404


@pytest.mark.parametrize(("route", "callback", "name"), ROUTES, ids=ids(ROUTES))
def test_an_unknown_organization_is_404(world, client_for, route, callback, name):
    client = client_for(world.owner)
    assert client.get(build(route, "no-such-org")).status_code == 404


@pytest.mark.parametrize(("route", "callback", "name"), PRIVATE, ids=ids(PRIVATE))
def test_anonymous_callers_are_sent_to_log_in(world, client, route, callback, name):
    url = build(route, world.org.slug)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(("route", "callback", "name"), RESTRICTED, ids=ids(RESTRICTED))
def test_a_role_that_may_not_act_gets_403(world, client_for, route, callback, name):
    roles = getattr(callback, "tenant_roles", MEMBERS)
    client = client_for(world.subscriber)
    url = build(route, world.org.slug)
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    if "publisher" not in roles:  # owner-only pages
        assert client_for(world.publisher).get(url).status_code == 403
