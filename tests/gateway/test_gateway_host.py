"""GATEWAY_HOST: the gateway on a host of its own and apimon's pages on theirs, so a
backend's answer is never served from the pages' origin. Requests go through the
project's ASGI entry point (apimon.asgi.application), which dispatches on the path and,
with GATEWAY_HOST set, on the host."""

from __future__ import annotations

import httpx
import pytest

import apimon.asgi

GATEWAY_HOST = "gw.apimon.test"
PAGES_HOST = "localhost"  # in the test settings' ALLOWED_HOSTS
FAST = "/gateway/acme/weather/v1/fast"
VERIFY = "/gateway-verify/acme/weather/v1/fast"


@pytest.fixture
def asgi(gateway, monkeypatch):
    """Sends requests to apimon.asgi.application (its gateway being the fixture's) on
    the gateway fixture's loop."""
    monkeypatch.setattr(apimon.asgi, "gateway_application", gateway.app)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(
            app=apimon.asgi.application, client=("10.1.2.3", 5555)
        )
    )

    def request(host: str, path: str, *, key: str | None = None, **kwargs):
        headers = {"Host": host, **kwargs.pop("headers", {})}
        if key:
            headers["X-API-Key"] = key

        async def go():
            return await client.get(f"http://{host}{path}", headers=headers, **kwargs)

        return gateway.loop.run(go())

    yield request
    gateway.loop.run(client.aclose())


def not_found(response) -> str:
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["error"]["code"] == "not_found"
    return response.json()["error"]["message"]


def test_without_a_gateway_host_the_gateway_answers_on_any_host(metering, asgi):
    assert asgi(PAGES_HOST, FAST, key=metering.key).status_code == 200
    assert asgi("anything.example", FAST, key=metering.key).status_code == 200


def test_the_gateway_answers_on_its_host_only(metering, asgi, settings):
    settings.GATEWAY_HOST = GATEWAY_HOST
    settings.GATEWAY_URL = f"https://{GATEWAY_HOST}"
    assert asgi(GATEWAY_HOST, FAST, key=metering.key).json() == {"ok": True}
    assert asgi(f"{GATEWAY_HOST}:8443", FAST, key=metering.key).status_code == 200
    assert asgi("GW.apimon.test", FAST, key=metering.key).status_code == 200
    assert asgi(GATEWAY_HOST, VERIFY, key=metering.key).status_code == 200

    message = not_found(asgi(PAGES_HOST, FAST, key=metering.key))
    assert f"https://{GATEWAY_HOST}/gateway/" in message
    not_found(asgi(PAGES_HOST, VERIFY, key=metering.key))
    not_found(asgi("gw.apimon.test.evil.example", FAST, key=metering.key))


def test_the_pages_do_not_answer_on_the_gateway_host(metering, asgi, settings):
    settings.GATEWAY_HOST = GATEWAY_HOST
    for path in ("/", "/accounts/login/", "/t/acme/store/", "/admin/login/"):
        message = not_found(asgi(GATEWAY_HOST, path))
        assert settings.SITE_URL in message
    # The pages answer on their host as before...
    login = asgi(PAGES_HOST, "/accounts/login/")
    assert login.status_code == 200
    assert "text/html" in login.headers["content-type"]
    # ...and the health check on both (a load balancer probes each).
    assert asgi(GATEWAY_HOST, "/healthz").status_code == 200
    assert asgi(PAGES_HOST, "/healthz").status_code == 200


def test_a_login_cookie_set_on_the_pages_host_never_reaches_a_backend(
    metering, asgi, settings
):
    """Even if a browser sent the pages' cookies to the gateway's host (a cookie set
    for a parent domain), they are taken out before forwarding."""
    settings.GATEWAY_HOST = GATEWAY_HOST
    response = asgi(
        GATEWAY_HOST,
        "/gateway/acme/weather/v1/echo",
        key=metering.key,
        headers={"Cookie": "sessionid=abc; csrftoken=def; theirs=1"},
    )
    headers = [v for k, v in response.json()["headers"] if k.lower() == "cookie"]
    assert headers == ["theirs=1"]
