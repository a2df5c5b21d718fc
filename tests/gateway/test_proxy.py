"""Forwarding: what reaches the backend and what comes back."""

from __future__ import annotations

from tests.gateway.conftest import flush_all, usage_total


def echo(gateway, metering, path="/gateway/acme/weather/v1/echo", **kwargs):
    return gateway.request(
        kwargs.pop("method", "GET"), path, key=metering.key, **kwargs
    )


def test_it_forwards_method_path_query_and_body(metering, gateway):
    response = echo(
        gateway,
        metering,
        "/gateway/acme/weather/v1/echo/a%20b/c?x=1&y=%C3%A9",
        method="PUT",
        content=b'{"n": 1}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == "/_bench/echo/a%20b/c?x=1&y=%C3%A9"
    assert seen["body"] == '{"n": 1}'
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["content-type"] == "application/json"


def test_every_method_is_forwarded(metering, gateway):
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        response = echo(gateway, metering, method=method)
        assert response.json()["method"] == method


def test_the_key_and_hop_by_hop_headers_stay_behind(metering, gateway):
    response = echo(
        gateway,
        metering,
        headers={
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic abc",
            "X-Forwarded-For": "203.0.113.9",
            "X-Custom": "kept",
        },
    )
    headers = {k.lower(): v for k, v in response.json()["headers"]}
    assert "authorization" not in headers
    assert metering.key not in str(response.json())
    for dropped in ("connection", "x-private-hop", "keep-alive", "proxy-authorization"):
        assert dropped not in headers
    assert headers["x-custom"] == "kept"
    assert headers["x-forwarded-for"] == "203.0.113.9, 10.1.2.3"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "gateway.test"
    assert headers["host"].startswith("127.0.0.1:")


def test_a_key_in_x_api_key_is_not_forwarded_but_authorization_is(metering, gateway):
    response = gateway.get(
        "/gateway/acme/weather/v1/echo",
        headers={"X-API-Key": metering.key, "Authorization": "Basic backend-creds"},
    )
    assert response.status_code == 200
    headers = {k.lower(): v for k, v in response.json()["headers"]}
    assert "x-api-key" not in headers
    assert headers["authorization"] == "Basic backend-creds"


def test_the_backend_status_and_headers_come_back(metering, gateway):
    response = gateway.get("/gateway/acme/weather/v1/status/418", key=metering.key)
    assert response.status_code == 418
    assert response.json() == {"status": 418}
    redirect = gateway.get("/gateway/acme/weather/v1/status/302", key=metering.key)
    assert redirect.status_code == 302  # not followed by the gateway
    assert redirect.headers["location"] == "/_bench/fast"


def test_a_large_body_comes_back_whole(metering, gateway):
    response = gateway.get("/gateway/acme/weather/v1/bytes?n=3000000", key=metering.key)
    assert response.status_code == 200
    assert len(response.content) == 3_000_000


def test_an_unreachable_backend_is_502_and_not_counted(
    metering, gateway, unreachable_url
):
    metering.api.backend_url = unreachable_url
    metering.api.save()
    response = gateway.get("/gateway/acme/weather/v1/fast", key=metering.key)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "backend_unreachable"
    flush_all()
    assert usage_total(metering.subscription) == 0


def test_a_slow_backend_is_504_after_the_timeout(metering, gateway, settings):
    settings.GATEWAY_BACKEND_TIMEOUT = 0.3
    metering.set_tier(count_every_request=True)
    response = gateway.get("/gateway/acme/weather/v1/slow?ms=3000", key=metering.key)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "backend_timeout"
    flush_all()
    assert usage_total(metering.subscription) == 0  # never counted, whatever the tier


def test_the_demo_weather_api_answers_through_the_gateway(metering, gateway):
    metering.api.backend_url = metering.backend_url.removesuffix("/_bench") + "/weather"
    metering.api.save()
    response = gateway.get(
        "/gateway/acme/weather/v1/current?city=Lisbon", key=metering.key
    )
    assert response.status_code == 200
    assert response.json()["city"] == "Lisbon"


def test_without_redis_the_gateway_answers_503_and_serves_nothing(
    metering, gateway, settings
):
    from gateway import redis as gateway_redis

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    gateway_redis.reset_clients()
    response = gateway.get("/gateway/acme/weather/v1/fast", key=metering.key)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "metering_unavailable"
    assert response.headers["retry-after"] == "5"
