"""The entitlement cache: explicit invalidation takes effect at once (well within the
one second a change may take to reach the gateway), even though the gateway keeps in-process copies."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from gateway import entitlements, meter
from gateway import redis as gateway_redis
from gateway.entitlements import invalidate
from publisher.models import ApiState
from store.keys import hash_key
from store.models import ApiKey, SubscriptionState
from store.models import Subscription as SubscriptionModel

URL = "/gateway/acme/weather/v1/fast"


def test_a_revoked_key_is_refused_at_once(metering, gateway):
    assert gateway.get(URL, key=metering.key).status_code == 200  # now cached
    started = time.monotonic()
    ApiKey.objects.filter(key_hash=hash_key(metering.key)).update(
        revoked_at=datetime(2020, 1, 1, tzinfo=UTC)
    )
    invalidate(key_hashes=[hash_key(metering.key)])
    assert gateway.get(URL, key=metering.key).status_code == 401
    assert time.monotonic() - started < 1.0


def test_a_blocked_subscription_is_refused_at_once(metering, gateway):
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.subscription.state = SubscriptionState.BLOCKED
    metering.subscription.save()
    invalidate(subscription_ids=[metering.subscription.pk])
    assert gateway.get(URL, key=metering.key).status_code == 403
    metering.subscription.state = SubscriptionState.ACTIVE
    metering.subscription.save()
    invalidate(subscription_ids=[metering.subscription.pk])
    assert gateway.get(URL, key=metering.key).status_code == 200


def test_a_retired_api_is_refused_at_once(metering, gateway):
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.api.state = ApiState.RETIRED
    metering.api.save()
    invalidate(api_ids=[metering.api.pk])
    assert gateway.get(URL, key=metering.key).status_code == 410
    assert gateway.get(URL).status_code == 410  # keyless callers too


def test_a_tier_change_applies_at_once(metering, gateway):
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.set_tier(rate_limit=1, rate_unit="minute")
    invalidate(tier_ids=[metering.tier.pk])
    assert gateway.get(URL, key=metering.key).status_code == 200
    assert gateway.get(URL, key=metering.key).status_code == 429


def test_without_invalidation_the_cache_answers(metering, gateway):
    """What invalidation is for: a change nobody announces is not seen."""
    assert gateway.get(URL, key=metering.key).status_code == 200
    metering.subscription.state = SubscriptionState.BLOCKED
    metering.subscription.save()
    assert gateway.get(URL, key=metering.key).status_code == 200


def test_without_redis_another_process_change_is_seen_within_a_second(
    without_redis, metering, gateway
):
    """The worker (dunning, webhooks, the billing engine) cannot reach the web
    process's in-process cache to invalidate it: without Redis, entries live one
    second, so a subscription blocked elsewhere is refused within about a second."""
    assert gateway_redis.uses_stand_in()
    assert gateway.get(URL, key=metering.key).status_code == 200
    SubscriptionModel.objects.filter(pk=metering.subscription.pk).update(
        state=SubscriptionState.BLOCKED
    )  # as the worker would, with no invalidation reaching this process
    time.sleep(2.1)  # the in-process copy (1 s) and the stand-in entry (1 s)
    assert gateway.get(URL, key=metering.key).status_code == 403


def test_a_new_subscription_is_served_within_a_second(metering, gateway):
    """ "Not subscribed" is cached for one second only (no row to invalidate it by)."""
    app = metering.make_app()
    raw, _ = metering.make_key(app)
    assert gateway.get(URL, key=raw).status_code == 403
    metering.subscribe(app, metering.api, metering.tier)
    time.sleep(1.1)
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


def test_invalidate_accepts_generators_and_nothing(redis_db):
    invalidate(key_hashes=(h for h in ["a"]), api_ids=iter([1]))
    invalidate()


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
