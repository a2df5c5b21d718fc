"""The verify endpoint for external gateways (docs/metering.md "External
gateways"): nginx `auth_request`, Envoy or Kong ask `/gateway-verify/…` whether a call
may pass. Same key check, subscription state, burst rate limit, quota and count as the
built-in gateway; an empty 200 on allow, the gateway's JSON refusals on deny; nothing proxied."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from django.core import mail

from gateway.services import quota_alerts_send
from publisher.models import ApiState
from store.models import SubscriptionState
from tests.gateway.conftest import T0, flush_all, usage_total

VERIFY = "/gateway-verify/acme/weather/v1/fast"


def error(response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()["error"]["code"]


def verify(gateway, metering, path=VERIFY, **kwargs):
    return gateway.get(path, key=metering.key, **kwargs)


def test_an_allowed_call_is_200_counted_and_flushed(metering, gateway):
    response = verify(gateway, metering)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-apimon-subscription"] == str(metering.subscription.pk)
    assert response.headers["x-apimon-application"] == str(metering.application.pk)
    assert response.headers["x-apimon-api"] == str(metering.api.pk)
    assert verify(gateway, metering).status_code == 200
    assert gateway.get(VERIFY, headers={"X-API-Key": metering.key}).status_code == 200
    flush_all()
    assert usage_total(metering.subscription) == 3


def test_nothing_is_forwarded_to_the_backend(metering, gateway, unreachable_url):
    """The external gateway calls the backend itself: verifying never touches it (a
    backend nothing listens on is no 502 here), and every allowed call counts."""
    metering.api.backend_url = unreachable_url
    metering.api.save()
    assert verify(gateway, metering).status_code == 200
    assert (
        verify(gateway, metering, VERIFY.replace("fast", "status/500")).status_code
        == 200
    )
    flush_all()
    assert usage_total(metering.subscription) == 2


def test_a_missing_or_unknown_key_is_401(metering, gateway):
    missing = gateway.get(VERIFY)
    assert error(missing) == (401, "missing_key")
    assert "Bearer" in missing.headers["www-authenticate"]
    assert error(gateway.get(VERIFY, key="am_00000000_unknown")) == (401, "invalid_key")


def test_a_key_of_another_organization_is_refused_like_an_unknown_key(
    metering, gateway
):
    outsider_app = metering.make_app(
        metering.other_org.memberships.first().user, org=metering.other_org
    )
    raw, _ = metering.make_key(outsider_app)
    globex_api = metering.make_api(org=metering.other_org)
    metering.subscribe(
        outsider_app, globex_api, metering.make_tier(org=metering.other_org)
    )
    globex = "/gateway-verify/globex/weather/v1/fast"
    assert gateway.get(globex, key=raw).status_code == 200

    on_acme = gateway.get(VERIFY, key=raw)
    unknown = gateway.get(VERIFY, key="am_00000000_unknown")
    assert error(on_acme) == (401, "invalid_key")
    assert on_acme.json() == unknown.json()
    assert error(gateway.get(globex, key=metering.key)) == (401, "invalid_key")


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (SubscriptionState.BLOCKED, "subscription_blocked"),
        (SubscriptionState.PENDING_PAYMENT, "payment_pending"),
        (SubscriptionState.CANCELLED, "subscription_cancelled"),
    ],
)
def test_a_subscription_not_served_is_403(metering, gateway, state, code):
    metering.subscription.state = state
    metering.subscription.save()
    assert error(verify(gateway, metering)) == (403, code)


def test_an_application_without_a_subscription_is_403(metering, gateway):
    raw, _ = metering.make_key(metering.make_app())
    assert error(gateway.get(VERIFY, key=raw)) == (403, "not_subscribed")


@pytest.mark.parametrize(
    ("state", "status", "code"),
    [
        (ApiState.CREATED, 404, "not_found"),
        (ApiState.RETIRED, 410, "api_retired"),
        (ApiState.BLOCKED, 503, "api_blocked"),
    ],
)
def test_api_states_refuse(metering, gateway, state, status, code):
    metering.api.state = state
    metering.api.save()
    assert error(verify(gateway, metering)) == (status, code)


def test_an_unknown_api_is_404(metering, gateway):
    path = "/gateway-verify/acme/nope/v1/fast"
    assert error(verify(gateway, metering, path)) == (404, "not_found")


def test_the_rate_limit_is_429_with_retry_after(metering, gateway):
    metering.set_tier(rate_limit=2, rate_unit="minute")
    gateway.clock.now += 30
    first = verify(gateway, metering)
    assert (first.status_code, first.headers["x-ratelimit-limit"]) == (200, "2")
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert verify(gateway, metering).headers["x-ratelimit-remaining"] == "0"
    refused = verify(gateway, metering)
    assert error(refused) == (429, "rate_limited")
    assert refused.headers["retry-after"] == "30"
    assert 'rel="upgrade"' in refused.headers["link"]
    flush_all()
    assert usage_total(metering.subscription) == 2  # the refusal is not counted


def test_the_quota_counts_alerts_and_stops(metering, gateway):
    """The same quota counter as the built-in gateway: calls through either count
    against it, the 80 % alert goes out, and a hard stop refuses with 429."""
    metering.set_tier(quota_limit=5, quota_unit="day", stop_on_quota_reach=True)
    assert (
        gateway.get("/gateway/acme/weather/v1/fast", key=metering.key).status_code
        == 200
    )
    remaining = [
        verify(gateway, metering).headers["x-apimon-quota-remaining"] for _ in range(3)
    ]
    assert remaining == ["3", "2", "1"]  # 4 of 5 used: 80 %
    flush_all()
    assert quota_alerts_send(now=datetime.fromtimestamp(T0 + 30, UTC)).sent == 1
    assert "80 %" in mail.outbox[0].subject
    assert verify(gateway, metering).headers["x-apimon-quota-remaining"] == "0"
    refused = verify(gateway, metering)
    assert error(refused) == (429, "quota_exceeded")
    assert int(refused.headers["retry-after"]) > 0
    flush_all()
    assert usage_total(metering.subscription) == 5


@pytest.mark.parametrize(
    "uri",
    [
        "/acme/weather/v1/fast",
        "/acme/weather/v1/fast?city=Berlin&x=%2F",
        "/gateway/acme/weather/v1/fast",
        "/acme/weather/v1",
        "/acme/weather/v1/caf%C3%A9",
    ],
)
def test_the_api_path_can_come_in_x_original_uri(metering, gateway, uri):
    """nginx `auth_request` with a fixed location sends the caller's URI in a
    header; the path in the URL, when there is one, wins."""
    response = gateway.get(
        "/gateway-verify", key=metering.key, headers={"X-Original-URI": uri}
    )
    assert response.status_code == 200
    assert response.headers["x-apimon-subscription"] == str(metering.subscription.pk)
    flush_all()
    assert usage_total(metering.subscription) == 1


def test_x_original_uri_is_checked_like_a_path(metering, gateway):
    def ask(uri):
        return gateway.get(
            "/gateway-verify/", key=metering.key, headers={"X-Original-URI": uri}
        )

    assert error(ask("/acme/quotes/v1/x")) == (404, "not_found")
    assert error(ask("/acme/weather/v1/../../globex/weather/v1")) == (400, "bad_path")
    assert error(ask("/acme/weather/v1/%2e%2e/x")) == (400, "bad_path")
    assert error(ask("acme/weather/v1")) == (400, "missing_uri")
    assert error(gateway.get("/gateway-verify", key=metering.key)) == (
        400,
        "missing_uri",
    )
    flush_all()
    assert usage_total(metering.subscription) == 0


def test_the_site_routes_the_verify_endpoint_to_the_gateway(metering, gateway):
    """apimon.asgi sends /gateway-verify to the gateway app, not to Django."""
    import apimon.asgi

    apimon.asgi.gateway_application.forget_local()

    async def go():
        transport = httpx.ASGITransport(app=apimon.asgi.application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://apimon.test"
        ) as client:
            headers = {"Authorization": f"Bearer {metering.key}"}
            return [
                await client.get("/gateway-verify/acme/weather/v1/x", headers=headers),
                await client.get(
                    "/gateway-verify",
                    headers={**headers, "X-Original-URI": "/acme/weather/v1/x"},
                ),
            ]

    try:
        answers = gateway.loop.run(go())
    finally:
        gateway.loop.run(apimon.asgi.gateway_application.close())
    assert [a.status_code for a in answers] == [200, 200]
    flush_all()
    assert usage_total(metering.subscription) == 2
