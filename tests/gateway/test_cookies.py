"""The gateway keeps apimon's cookies: the caller's session and CSRF cookies never
reach a tenant's backend, a backend cannot set a cookie under one of apimon's names,
and every answer carries X-Content-Type-Options: nosniff."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.gateway.conftest import T0

ECHO = "/gateway/acme/weather/v1/echo"


def cookie_seen_by_backend(gateway, metering, cookie: str) -> list[str]:
    response = gateway.get(ECHO, key=metering.key, headers={"Cookie": cookie})
    assert response.status_code == 200
    return [v for k, v in response.json()["headers"] if k.lower() == "cookie"]


def test_apimons_cookies_are_taken_out_of_the_forwarded_cookie_header(
    metering, gateway
):
    seen = cookie_seen_by_backend(
        gateway,
        metering,
        "sessionid=s3cr3t; csrftoken=tok; theirs=1; messages=m; "
        "django_language=fr; mfa_trusted=t; other=two",
    )
    assert seen == ["theirs=1; other=two"]


def test_a_cookie_header_of_apimons_cookies_only_is_not_forwarded(metering, gateway):
    assert cookie_seen_by_backend(gateway, metering, "sessionid=s; csrftoken=t") == []


def test_the_names_come_from_the_settings(metering, gateway, settings):
    settings.SESSION_COOKIE_NAME = "__Host-apimon_session"
    settings.CSRF_COOKIE_NAME = "apimon_csrf"
    seen = cookie_seen_by_backend(
        gateway,
        metering,
        "__Host-apimon_session=s; apimon_csrf=t; sessionid=theirs-too",
    )
    assert seen == ["sessionid=theirs-too"]


def backend_sets(gateway, metering, *cookies: str, **headers: str):
    query = urlencode([("Set-Cookie", c) for c in cookies] + list(headers.items()))
    return gateway.get(f"/gateway/acme/weather/v1/headers?{query}", key=metering.key)


def test_a_backend_cannot_set_apimons_cookies(metering, gateway):
    response = backend_sets(
        gateway,
        metering,
        "sessionid=evil; Path=/; HttpOnly",
        "theirs=1; Path=/",
        " csrftoken = evil ; Domain=example.com",
        "messages=evil",
        "mfa_trusted=evil",
        "session=kept",
    )
    assert response.status_code == 200
    assert response.headers.get_list("set-cookie") == [
        "theirs=1; Path=/",
        "session=kept",
    ]


def test_nosniff_is_on_a_proxied_answer_once(metering, gateway):
    plain = gateway.get("/gateway/acme/weather/v1/fast", key=metering.key)
    assert plain.headers.get_list("x-content-type-options") == ["nosniff"]
    # A backend's own header (whatever its value) gives way to the gateway's.
    response = backend_sets(gateway, metering, **{"X-Content-Type-Options": "sniff"})
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


def test_nosniff_is_on_every_refusal(metering, gateway, unreachable_url):
    metering.set_tier(rate_limit=1, rate_unit="minute")
    gateway.clock.now = T0 + 1
    answers = {
        "missing key (401)": gateway.get("/gateway/acme/weather/v1/fast"),
        "unknown API (404)": gateway.get("/gateway/acme/nope/v1/x", key=metering.key),
        "bad path (400)": gateway.get(
            "/gateway/acme/weather/v1/a/%2e%2e/b", key=metering.key
        ),
        "verify, allowed (200)": gateway.get(
            "/gateway-verify/acme/weather/v1/fast", key=metering.key
        ),
        "rate limited (429)": gateway.get(
            "/gateway/acme/weather/v1/fast", key=metering.key
        ),
    }
    assert answers["rate limited (429)"].status_code == 429
    metering.set_tier(rate_limit=None)
    metering.api.backend_url = unreachable_url
    metering.api.save()
    from gateway.entitlements import invalidate

    invalidate(api_ids=[metering.api.pk], tier_ids=[metering.tier.pk])
    answers["unreachable (502)"] = gateway.get(
        "/gateway/acme/weather/v1/fast", key=metering.key
    )
    assert answers["unreachable (502)"].status_code == 502
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
