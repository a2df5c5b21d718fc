"""Fixtures for the store: a published API on a free and two paid tiers, an
organization that can take payments (paid platform plan + connected Stripe account
with monetization on), and helpers to subscribe through the real flows."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from apimon.models import Organization, PlatformPlan
from billing.models import StripeConnection
from gateway import redis as gateway_redis
from pricing.rating import Pricing, PricingModel
from publisher import services as publisher_services
from publisher.models import Api, BillingCycle, QuotaUnit, Tier
from store import services
from store.models import Application, Subscription
from stripe_emulator import testing
from tests.gateway.conftest import (  # noqa: F401 - the gateway's fixtures, reused
    backend_url,
    gateway,
    metering,
    redis_db,
    short_lived_connections,
)
from tests.publisher.helpers import make_api, make_tier

D = Decimal


def flat(fee: str = "19.00", *, currency="usd", cycle=BillingCycle.MONTH, trial=0):
    return publisher_services.TierPrice(
        pricing=Pricing(model=PricingModel.FLAT, currency=currency, fixed_fee=D(fee)),
        billing_cycle=cycle,
        trial_days=trial,
    )


def per_request(price: str = "0.001", currency: str = "usd"):
    return publisher_services.TierPrice(
        pricing=Pricing(
            model=PricingModel.PER_UNIT, currency=currency, unit_price=D(price)
        )
    )


@pytest.fixture(autouse=True)
def clean_redis(settings):
    """Usage previews read the gateway's counters: start each test from none."""
    gateway_redis.reset_clients()
    client = gateway_redis.get_redis()
    client.flushdb()
    yield client
    client.flushdb()
    gateway_redis.reset_clients()


@dataclass
class Shop:
    org: Organization
    api: Api
    free: Tier
    gold: Tier  # FLAT $19 / month
    metered: Tier  # PER_UNIT $0.001


@pytest.fixture
def shop(world) -> Shop:
    free = make_tier(
        world.org, "Free", quota_limit=1000, quota_unit=QuotaUnit.DAY, rate_limit=5
    )
    gold = make_tier(world.org, "Gold", price=flat(), quota_limit=100_000)
    metered = make_tier(world.org, "Metered", price=per_request())
    api = make_api(
        world.org,
        tiers=[free, gold, metered],
        publish=True,
        description="Forecasts for any city.",
        documentation="# Weather\n\nCall **/forecast**.",
        tags=["weather", "forecast"],
    )
    return Shop(org=world.org, api=api, free=free, gold=gold, metered=metered)


def enable_monetization(org: Organization, account: str) -> StripeConnection:
    plan, _ = PlatformPlan.objects.get_or_create(
        slug="pro",
        defaults={
            "name": "Pro",
            "allows_monetization": True,
            "monthly_price_minor": 4900,
        },
    )
    org.plan = plan
    org.save(update_fields=["plan"])
    connection = StripeConnection.objects.create(
        organization=org, account_id=account, monetization_enabled=True
    )
    org.refresh_from_db()
    return connection


@pytest.fixture
def monetized(shop, stripe_account) -> str:
    """The shop takes payments; returns its connected account id."""
    enable_monetization(shop.org, stripe_account)
    return stripe_account


@pytest.fixture
def app(world) -> Application:
    return services.application_create(
        organization=world.org, owner=world.subscriber, name="Dashboard"
    )


def freeze_store_clock(monkeypatch, clock) -> None:
    """Stamp the store's writes (every module of its services) with `clock.at`."""
    fake = SimpleNamespace(now=lambda: clock.at)
    for info in pkgutil.iter_modules(services.__path__):
        module = importlib.import_module(f"{services.__name__}.{info.name}")
        if hasattr(module, "clock"):
            monkeypatch.setattr(module, "clock", fake)


def store_url(org, path: str = "") -> str:
    return f"/t/{org.slug}/store/{path}"


def local(url: str) -> str:
    """A URL Stripe sends the browser to, as a path for Django's test client."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def pay(emulator, checkout_url: str, card: str = "4242 4242 4242 4242") -> str:
    """Type `card` on the emulator's Checkout page; the success_url it returns to."""
    status, location = testing.submit_card(emulator, checkout_url, card)
    assert status == 303, location
    return location


def kinds(subscription) -> list[str]:
    """The kinds of the subscription's history events, oldest first."""
    return list(subscription.events.order_by("at", "pk").values_list("kind", flat=True))


def complete_by_webhook(emulator, capture, account: str) -> None:
    """Deliver Stripe's pending webhooks and apply the checkout.session.completed one
    as the webhook view would (the browser's return being the other path)."""
    emulator.deliver_pending()
    event = next(
        e for e in capture.events() if e["type"] == "checkout.session.completed"
    )
    services.checkout_session_completed(event["data"]["object"], account=account)


def subscribe_paid(
    client, shop, app, emulator, tier=None, card: str = "4242 4242 4242 4242"
) -> Subscription:
    """Subscribe through the store's pages and the Checkout page; back at the store."""
    tier = tier or shop.gold
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": tier.pk},
    )
    assert response.status_code == 302, response.content[:2000]
    back = pay(emulator, response["Location"], card)
    assert client.get(local(back)).status_code == 302
    return Subscription.objects.get(application=app, api=shop.api)
