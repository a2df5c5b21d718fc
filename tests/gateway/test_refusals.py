"""Refusals: 401 / 403 / 404 / 410 / 503, each with a JSON error body, never counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest

from publisher.models import ApiState
from store.models import SubscriptionState
from tests.gateway.conftest import T0, flush_all, usage_total

URL = "/gateway/acme/weather/v1/fast"


def error(response) -> str:
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]["code"]


def test_a_subscribed_key_is_served(metering, gateway):
    assert gateway.get(URL, key=metering.key).status_code == 200


def test_a_missing_key_is_401(metering, gateway):
    response = gateway.get(URL)
    assert response.status_code == 401
    assert error(response) == "missing_key"
    assert "Bearer" in response.headers["www-authenticate"]
    assert response.json()["error"]["message"]


def test_an_unknown_key_is_401(metering, gateway):
    response = gateway.get(URL, key="am_00000000_not-a-real-key")
    assert (response.status_code, error(response)) == (401, "invalid_key")


def test_the_x_api_key_header_is_accepted(metering, gateway):
    assert gateway.get(URL, headers={"X-API-Key": metering.key}).status_code == 200


def test_a_revoked_key_is_401(metering, gateway):
    raw, _row = metering.make_key(
        metering.application, revoked_at=datetime.fromtimestamp(T0 - 1, UTC)
    )
    response = gateway.get(URL, key=raw)
    assert (response.status_code, error(response)) == (401, "key_revoked")


def test_a_rotated_key_works_until_its_grace_period_ends(metering, gateway):
    raw, _row = metering.make_key(
        metering.application, expires_at=datetime.fromtimestamp(T0 + 60, UTC)
    )
    assert gateway.get(URL, key=raw).status_code == 200
    gateway.clock.now = T0 + 60
    response = gateway.get(URL, key=raw)
    assert (response.status_code, error(response)) == (401, "key_expired")


def test_a_key_of_another_organization_is_401_like_an_unknown_key(metering, gateway):
    """An outsider's key on acme's API: the answer is the unknown-key answer, so it
    does not tell that the key exists in another tenant."""
    outsider_app = metering.make_app(
        metering.other_org.memberships.first().user, org=metering.other_org
    )
    raw, _ = metering.make_key(outsider_app)
    globex_api = metering.make_api(org=metering.other_org)
    globex_tier = metering.make_tier(org=metering.other_org)
    metering.subscribe(outsider_app, globex_api, globex_tier)
    assert gateway.get("/gateway/globex/weather/v1/fast", key=raw).status_code == 200

    on_acme = gateway.get(URL, key=raw)
    unknown = gateway.get(URL, key="am_00000000_unknown")
    assert on_acme.status_code == unknown.status_code == 401
    assert on_acme.json() == unknown.json()
    # And acme's key on globex's API likewise.
    response = gateway.get("/gateway/globex/weather/v1/fast", key=metering.key)
    assert (response.status_code, error(response)) == (401, "invalid_key")


def test_an_application_without_a_subscription_is_403(metering, gateway):
    raw, _ = metering.make_key(metering.make_app())
    response = gateway.get(URL, key=raw)
    assert (response.status_code, error(response)) == (403, "not_subscribed")


def test_a_key_works_only_for_the_apis_its_application_subscribes_to(metering, gateway):
    metering.make_api(context="quotes")
    response = gateway.get("/gateway/acme/quotes/v1/fast", key=metering.key)
    assert (response.status_code, error(response)) == (403, "not_subscribed")


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
    response = gateway.get(URL, key=metering.key)
    assert (response.status_code, error(response)) == (403, code)


@pytest.mark.parametrize(
    "state", [SubscriptionState.TRIALING, SubscriptionState.ON_HOLD]
)
def test_trialing_and_on_hold_subscriptions_are_served(metering, gateway, state):
    metering.subscription.state = state
    metering.subscription.save()
    assert gateway.get(URL, key=metering.key).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/gateway/nope/weather/v1/fast",
        "/gateway/acme/nope/v1/fast",
        "/gateway/acme/weather/v9/fast",
        "/gateway/acme/weather",
        "/gateway/",
    ],
)
def test_an_unknown_organization_api_or_version_is_404(metering, gateway, path):
    response = gateway.get(path, key=metering.key)
    assert (response.status_code, error(response)) == (404, "not_found")


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
    response = gateway.get(URL, key=metering.key)
    assert (response.status_code, error(response)) == (status, code)


def test_a_deprecated_api_still_serves_its_subscribers(metering, gateway):
    metering.api.state = ApiState.DEPRECATED
    metering.api.save()
    assert gateway.get(URL, key=metering.key).status_code == 200


def test_refused_requests_are_never_counted(metering, gateway):
    gateway.get(URL)
    gateway.get(URL, key="am_00000000_unknown")
    metering.set_tier(rate_limit=1, rate_unit="minute")
    assert gateway.get(URL, key=metering.key).status_code == 200
    assert gateway.get(URL, key=metering.key).status_code == 429
    flush_all()
    assert usage_total(metering.subscription) == 1


def test_the_other_tenants_api_with_the_same_context_is_separate(metering, gateway):
    globex_api = metering.make_api(org=metering.other_org, state=ApiState.RETIRED)
    assert globex_api.context == metering.api.context
    assert gateway.get(URL, key=metering.key).status_code == 200
    assert gateway.get("/gateway/globex/weather/v1/fast").status_code == 410


def raw_call(gateway, raw_path: str, key: str):
    """Call the ASGI app with a path exactly as given: HTTP clients remove dot
    segments themselves, so this is what a hand-made request looks like."""

    async def go():
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": unquote(raw_path),
            "raw_path": raw_path.encode(), "query_string": b"",
            "headers": [(b"authorization", f"Bearer {key}".encode())],
            "client": ("127.0.0.1", 5000), "server": ("gateway.test", 80),
        }  # fmt: skip
        await gateway.app(scope, receive, send)
        return sent

    sent = gateway.loop.run(go())
    return sent[0]["status"], json.loads(sent[1]["body"])["error"]["code"]


@pytest.mark.parametrize(
    "rest", ["../quotes/random", "a/../../x", "%2e%2e/quotes", "..%2Fquotes", "./fast"]
)
def test_dot_segments_cannot_leave_the_apis_backend_path(metering, gateway, rest):
    path = f"/gateway/acme/weather/v1/{rest}"
    assert raw_call(gateway, path, metering.key) == (400, "bad_path")
    flush_all()
    assert usage_total(metering.subscription) == 0
    ok = gateway.get("/gateway/acme/weather/v1/fast", key=metering.key)
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/gateway/acme/weather/%00/fast",
        "/gateway/acme/we%00ather/v1/fast",
        "/gateway/ac%0Ame/weather/v1/fast",
        "/gateway-verify/acme/weather/v1%00/fast",
    ],
)
def test_a_control_character_in_the_api_route_is_not_found(metering, gateway, path):
    """Found by the fuzz tests: the route went to the database as it was (a NUL is
    an exception on PostgreSQL); no organization, context or version has one."""
    assert raw_call(gateway, path, metering.key) == (404, "not_found")
