"""The entitlement cache: explicit invalidation takes effect at once (well within the
one second a change may take to reach the gateway), even though the gateway keeps
in-process copies.

`cache_clock` stands still unless the test moves it, so "at once" means with no time
passing at all, and "within a second" means after exactly one second."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway import entitlements, meter
from gateway import redis as gateway_redis
from gateway.entitlements import invalidate
from publisher.models import ApiState
from store.keys import hash_key
from store.models import ApiKey, SubscriptionState
from store.models import Subscription as SubscriptionModel

URL = "/gateway/acme/weather/v1/fast"
ROUTE = "acme/weather/v1"


@dataclass
class CacheClock:
    """Time as the gateway's cache sees it. `advance(seconds)` moves the in-process
    copies' monotonic clock and the gateway's wall clock, and shortens by as much the
    life left to every Redis key (Redis keeps its own clock; that is what the time
    passing does to its keys)."""

    gateway: Any
    redis: Any
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.gateway.clock.now += seconds
        elapsed_ms = round(seconds * 1000)
        for key in self.redis.scan_iter():
            left = self.redis.pttl(key)
            if left < 0:  # no time to live (-1), or gone meanwhile (-2)
                continue
            if left <= elapsed_ms:
                self.redis.delete(key)
            else:
                self.redis.pexpire(key, left - elapsed_ms)


@pytest.fixture
def cache_clock(gateway, redis_db) -> CacheClock:
    clock = CacheClock(gateway=gateway, redis=redis_db)
    gateway.app.monotonic = clock
    return clock


def test_a_revoked_key_is_refused_at_once(metering, gateway, cache_clock):
    assert gateway.get(URL, key=metering.key).status_code == 200  # now cached
    ApiKey.objects.filter(key_hash=hash_key(metering.key)).update(
        revoked_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    invalidate(key_hashes=[hash_key(metering.key)])
    # No time passed: the in-process copy is within its second, yet it is not used.
    assert gateway.get(URL, key=metering.key).status_code == 401


def test_a_blocked_subscription_is_refused_at_once(metering, gateway, cache_clock):
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.subscription.state = SubscriptionState.BLOCKED
    metering.subscription.save()
    invalidate(subscription_ids=[metering.subscription.pk])
    assert gateway.get(URL, key=metering.key).status_code == 403
    metering.subscription.state = SubscriptionState.ACTIVE
    metering.subscription.save()
    invalidate(subscription_ids=[metering.subscription.pk])
    assert gateway.get(URL, key=metering.key).status_code == 200


def test_a_retired_api_is_refused_at_once(metering, gateway, cache_clock):
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.api.state = ApiState.RETIRED
    metering.api.save()
    invalidate(api_ids=[metering.api.pk])
    assert gateway.get(URL, key=metering.key).status_code == 410
    assert gateway.get(URL).status_code == 410  # keyless callers too


def test_a_tier_change_applies_at_once(metering, gateway, cache_clock):
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.set_tier(rate_limit=1, rate_unit="minute")
    invalidate(tier_ids=[metering.tier.pk])
    assert gateway.get(URL, key=metering.key).status_code == 200
    assert gateway.get(URL, key=metering.key).status_code == 429


def test_without_invalidation_the_cache_answers(metering, gateway, cache_clock):
    """What invalidation is for: a change nobody announces is not seen."""
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.subscription.state = SubscriptionState.BLOCKED
    metering.subscription.save()
    assert gateway.get(URL, key=metering.key).status_code == 200


def test_without_redis_another_process_change_is_seen_within_a_second(
    without_redis, metering, gateway, cache_clock
):
    """The worker (dunning, webhooks, the billing engine) cannot reach the web
    process's in-process cache to invalidate it: without Redis, entries live one
    second, so a subscription blocked elsewhere is refused one second later."""
    assert gateway_redis.uses_stand_in()
    assert gateway.get(URL, key=metering.key).status_code == 200
    SubscriptionModel.objects.filter(pk=metering.subscription.pk).update(
        state=SubscriptionState.BLOCKED
    )  # as the worker would, with no invalidation reaching this process
    assert gateway.get(URL, key=metering.key).status_code == 200  # still cached

    cache_clock.advance(1.0)

    response = gateway.get(URL, key=metering.key)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "subscription_blocked"


def test_a_new_subscription_is_served_within_a_second(metering, gateway, cache_clock):
    """ "Not subscribed" is cached for one second only (no row to invalidate it by)."""
    app = metering.make_app()
    raw, _ = metering.make_key(app)
    refused = gateway.get(URL, key=raw)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "not_subscribed"
    metering.subscribe(app, metering.api, metering.tier)
    # The refusal is cached (unknown keys do not reach the database each time)…
    assert gateway.get(URL, key=raw).status_code == 403

    cache_clock.advance(1.0)

    # …for one second.
    assert gateway.get(URL, key=raw).status_code == 200


def test_a_fill_that_raced_an_invalidation_is_not_stored(metering, gateway, redis_db):
    """The gateway read the database before a change committed; the invalidation ran
    meanwhile; the stale entry must not land in the cache."""
    route = "acme/weather/v1"
    key_hash = hash_key(metering.key)

    def load_then_change():
        entry = entitlements.load_entitlement(
            key_hash, {"id": metering.api.pk, "org": metering.org.pk}
        )
        invalidate(subscription_ids=[metering.subscription.pk])
        return entry

    async def fill():
        return await gateway.app._cached(
            meter.ent_key(key_hash, route), load_then_change, lambda e: []
        )

    entry = gateway.loop.run(fill())
    assert entry["sub"] == metering.subscription.pk
    assert redis_db.get(meter.ent_key(key_hash, route)) is None


def test_invalidate_drops_what_depends_on_the_rows_it_is_given(
    metering, gateway, redis_db, cache_clock
):
    other_raw, _ = metering.make_key(metering.application)
    for raw in (metering.key, other_raw):
        assert gateway.get(URL, key=raw).status_code == 200
    mine = meter.ent_key(hash_key(metering.key), ROUTE)
    other = meter.ent_key(hash_key(other_raw), ROUTE)
    route = meter.api_key(ROUTE)
    assert redis_db.exists(mine, other, route) == 3
    generation = int(redis_db.get(meter.GEN) or 0)

    # Any iterable, generators included.
    invalidate(key_hashes=(h for h in [hash_key(metering.key)]))
    assert [redis_db.exists(k) for k in (mine, other, route)] == [0, 1, 1]

    # Nothing named: nothing dropped, but a fill in flight is no longer stored.
    invalidate()
    assert int(redis_db.get(meter.GEN)) == generation + 2
    assert redis_db.exists(other, route) == 2

    invalidate(api_ids=iter([metering.api.pk]))
    assert redis_db.exists(other, route) == 0
    # Both keys are read from the database again and served.
    for raw in (metering.key, other_raw):
        assert gateway.get(URL, key=raw).status_code == 200
    assert redis_db.exists(mine, other, route) == 3


def test_concurrent_requests_on_a_cold_cache_read_the_database_once(
    metering, gateway, monkeypatch
):
    import asyncio

    loads = []
    original = entitlements.load_entitlement

    def counting(*args):
        loads.append(args)
        time.sleep(0.05)  # a slowish query, so the requests overlap
        return original(*args)

    monkeypatch.setattr(entitlements, "load_entitlement", counting)

    async def burst():
        import httpx

        transport = httpx.ASGITransport(app=gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            return await asyncio.gather(
                *(c.get(URL, headers={"X-API-Key": metering.key}) for _ in range(20))
            )

    answers = gateway.loop.run(burst())
    assert [a.status_code for a in answers] == [200] * 20
    assert len(loads) == 1
