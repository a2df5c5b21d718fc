"""The store's writes reach the real gateway at once: its services tell the gateway
(`gateway.entitlements.invalidate`) when their transaction commits."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from publisher.models import ApiTier
from store import services
from store.keys import hash_key
from store.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/gateway/acme/weather/v1/fast"


def key_row(raw: str) -> ApiKey:
    return ApiKey.objects.get(key_hash=hash_key(raw))


def test_a_revoked_key_is_refused_at_once(metering, gateway):
    assert gateway.get(URL, key=metering.key).status_code == 200
    services.api_key_revoke(key=key_row(metering.key), actor=None)
    assert gateway.get(URL, key=metering.key).status_code == 401


def test_after_rotation_both_keys_work_until_the_old_one_stops(metering, gateway):
    gateway.clock.now = time.time()  # grace periods are in real time
    assert gateway.get(URL, key=metering.key).status_code == 200
    issued = services.api_key_rotate(
        key=key_row(metering.key), actor=None, grace=timedelta(hours=1)
    )
    assert gateway.get(URL, key=metering.key).status_code == 200
    assert gateway.get(URL, key=issued.raw).status_code == 200
    services.api_key_rotate(key=issued.key, actor=None, grace=timedelta(0))
    gateway.clock.now = time.time()
    assert gateway.get(URL, key=issued.raw).status_code == 401


def test_block_unblock_and_cancel_reach_the_gateway(metering, gateway):
    sub = metering.subscription
    assert gateway.get(URL, key=metering.key).status_code == 200
    services.subscription_block(subscription=sub, actor=None, reason="Abuse")
    assert gateway.get(URL, key=metering.key).status_code == 403
    services.subscription_unblock(subscription=sub, actor=None)
    assert gateway.get(URL, key=metering.key).status_code == 200
    services.subscription_cancel(subscription=sub, actor=None, at_period_end=False)
    assert gateway.get(URL, key=metering.key).status_code == 403


def test_an_upgrade_applies_the_new_tiers_limits_at_once(metering, gateway):
    sub = metering.subscription
    metering.set_tier(quota_limit=10)
    strict = metering.make_tier(
        name="Unlimited but slow", rate_limit=1, rate_unit="minute"
    )
    ApiTier.objects.create(api=metering.api, tier=strict)
    assert gateway.get(URL, key=metering.key).status_code == 200
    assert gateway.get(URL, key=metering.key).status_code == 200
    result = services.subscription_change_tier(
        subscription=sub, tier=strict, actor=None
    )
    assert result.kind == "upgrade"  # free to free, unlimited quota: at once
    assert gateway.get(URL, key=metering.key).status_code == 200
    assert gateway.get(URL, key=metering.key).status_code == 429
