"""Helpers for the monetization tests: organizations on a paid plan, APIs and tiers
of every pricing model, and "Connect with Stripe" run through apimon's own views
against the in-process emulator.

Builders for billing tests: a monetizable organization, tiers of every pricing
model, subscriptions started at a given time through the subscription lifecycle
(`store.lifecycle`, as the store starts them), and usage rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apimon.models import Organization, PlatformPlan
from billing import services
from billing.models import Invoice, InvoiceKind, InvoiceStatus, StripeConnection
from gateway.models import UsageRecord
from pricing.rating import Band, Pricing
from pricing.rating import PricingModel as RatingModel
from publisher import services as publisher_services
from publisher.models import (
    Api,
    ApiState,
    ApiTier,
    BillingPlan,
    MeterPrice,
    MeterPriceBand,
    PricingModel,
    Tier,
    TierVersion,
)
from store import lifecycle
from store.models import Application, StripeCustomer, Subscription, SubscriptionState
from stripe_emulator import testing
from tests.fixtures.stripe import connect_account, create_customer_with_card
from tests.publisher.helpers import make_api as make_unpublished_api


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def starter() -> PlatformPlan:
    return PlatformPlan.objects.get(slug="starter")


def put_on_plan(org: Organization, plan: PlatformPlan | None = None) -> None:
    org.plan = plan or starter()
    org.save(update_fields=["plan"])


def start_connect(client, org: Organization) -> str:
    """Click "Connect with Stripe"; returns the authorize URL apimon redirected to."""
    response = client.post(reverse("monetization:connect", args=[org.slug]))
    assert response.status_code == 302, response.content
    return response["Location"]


def connect_through_apimon(
    client,
    emulator: Any,
    org: Organization,
    *,
    country: str = "US",
    business_name: str = "Acme Weather",
    email: str = "owner@acme.test",
):
    """The whole "Connect with Stripe" round trip: apimon's button, the emulator's
    authorize page, apimon's callback. Returns the callback's response."""
    authorize_url = start_connect(client, org)
    back = testing.authorize(
        emulator,
        authorize_url,
        email=email,
        business_name=business_name,
        country=country,
    )
    return client.get(path_of(back))


def make_api(org: Organization, name: str = "Weather", **extra) -> Api:
    return Api.objects.create(
        organization=org,
        name=name,
        version=extra.pop("version", "v1"),
        context=extra.pop("context", name.lower()),
        backend_url="https://backend.example.test",
        description=extra.pop("description", f"The {name} API."),
        state=extra.pop("state", ApiState.PUBLISHED),
        **extra,
    )


def make_tier(
    org: Organization,
    name: str,
    model: str = PricingModel.FLAT,
    *,
    bands: list[tuple[int | None, str, str]] | None = None,
    **price,
) -> Tier:
    """A tier with its first version. FREE pricing makes a FREE tier."""
    tier = Tier.objects.create(
        organization=org,
        name=name,
        billing_plan=(
            BillingPlan.FREE if model == PricingModel.FREE else BillingPlan.COMMERCIAL
        ),
    )
    version = make_version(tier, 1, model, bands=bands, **price)
    tier.current_version = version
    tier.save(update_fields=["current_version"])
    return tier


def make_version(
    tier: Tier,
    number: int,
    model: str = PricingModel.FLAT,
    *,
    bands: list[tuple[int | None, str, str]] | None = None,
    **price,
) -> TierVersion:
    """A version's rows: its fixed fee, and a `requests` MeterPrice (with its
    bands) unless requests are free (FREE, FLAT)."""
    price = _prices(price)
    version = TierVersion.objects.create(
        tier=tier,
        number=number,
        fixed_fee=price.pop("fixed_fee", Decimal(0)),
        **{
            k: price.pop(k)
            for k in ("currency", "billing_cycle", "trial_days")
            if k in price
        },
    )
    if model in (PricingModel.FREE, PricingModel.FLAT):
        assert not price and not bands, "FREE and FLAT price no requests"
        return version
    if "included_requests" in price:
        price["included_units"] = price.pop("included_requests")
    row = MeterPrice.objects.create(
        version=version, meter="requests", pricing_model=model, **price
    )
    for position, (up_to, unit, flat) in enumerate(bands or []):
        MeterPriceBand.objects.create(
            price=row,
            position=position,
            up_to=up_to,
            unit_price=Decimal(unit),
            flat_fee=Decimal(flat),
        )
    return version


def _prices(price: dict[str, Any]) -> dict[str, Any]:
    money = {"fixed_fee", "unit_price", "overage_price"}
    return {
        key: Decimal(value) if key in money else value for key, value in price.items()
    }


def offer(api: Api, *tiers: Tier) -> None:
    for tier in tiers:
        ApiTier.objects.get_or_create(api=api, tier=tier)


@pytest.fixture
def paid_org(world):
    """world.org on the Starter plan (the upgrade itself is tested on its own)."""
    put_on_plan(world.org)
    return world.org


@pytest.fixture
def owner_client(world, client_for):
    return client_for(world.owner)


@pytest.fixture
def connected(paid_org, owner_client, stripe_emulator):
    """world.org on Starter with a connected US account; returns the connection."""
    response = connect_through_apimon(owner_client, stripe_emulator, paid_org)
    assert response.status_code == 302, response.content
    return services.connected_account(paid_org)


@pytest.fixture
def catalog(paid_org):
    """One API on a FLAT and a PER_UNIT tier, one on a GRADUATED tier, one only on a
    free tier, and an API that is created but not offered."""
    weather = make_api(paid_org, "Weather")
    maps = make_api(paid_org, "Maps")
    free_only = make_api(paid_org, "Status")
    make_api(paid_org, "Draft", state=ApiState.CREATED)
    gold = make_tier(paid_org, "Gold", PricingModel.FLAT, fixed_fee="49.00")
    metered = make_tier(paid_org, "Metered", PricingModel.PER_UNIT, unit_price="0.0004")
    bands = make_tier(
        paid_org,
        "Bands",
        PricingModel.GRADUATED,
        bands=[(1000, "0.01", "5.00"), (None, "0.005", "0")],
    )
    free = make_tier(paid_org, "Free", PricingModel.FREE)
    offer(weather, gold, metered, free)
    offer(maps, bands)
    offer(free_only, free)
    return {
        "weather": weather,
        "maps": maps,
        "status": free_only,
        "gold": gold,
        "metered": metered,
        "bands": bands,
        "free": free,
    }


# --- Invoices (the billing engine) --------------------------------------------


D = Decimal


M = RatingModel


HOUR = timedelta(hours=1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def flat(fee: str = "49.00", currency: str = "usd") -> Pricing:
    return Pricing(M.FLAT, currency, fixed_fee=D(fee))


def per_unit(price: str = "0.0004", currency: str = "usd") -> Pricing:
    return Pricing(M.PER_UNIT, currency, unit_price=D(price))


def overage(
    fee="20.00", included=10_000, price="0.01", block=1, currency="usd"
) -> Pricing:
    return Pricing(
        M.FLAT_PLUS_OVERAGE,
        currency,
        fixed_fee=D(fee),
        included_requests=included,
        overage_price=D(price),
        overage_block_size=block,
    )


def graduated(currency: str = "usd") -> Pricing:
    return Pricing(
        M.GRADUATED,
        currency,
        bands=(
            Band(1_000, D("0"), D("5.00")),
            Band(10_000, D("0.002")),
            Band(None, D("0.001")),
        ),
    )


def volume(currency: str = "usd") -> Pricing:
    return Pricing(
        M.VOLUME,
        currency,
        bands=(
            Band(1_000, D("0.01")),
            Band(10_000, D("0.005"), D("2.00")),
            Band(None, D("0.002"), D("10.00")),
        ),
    )


def free() -> Pricing:
    return Pricing(M.FREE, "usd")


@dataclass
class Shop:
    """A monetizable organization (paid plan with 10 % commission) with one API
    and a subscriber."""

    org: object
    subscriber: object
    api: object
    plan: PlatformPlan

    def tier(
        self,
        pricing: Pricing,
        *,
        name: str | None = None,
        cycle: str = "month",
        trial_days: int = 0,
    ) -> Tier:
        tier = publisher_services.tier_create(
            organization=self.org,
            actor=None,
            name=name or f"Tier {Tier.objects.count() + 1}",
            price=publisher_services.TierPrice(
                pricing=pricing, billing_cycle=cycle, trial_days=trial_days
            ),
        )
        publisher_services.api_set_tiers(
            api=self.api, tiers=[*self.api.tiers.all(), tier], actor=None
        )
        return tier

    def subscribe(
        self,
        tier: Tier,
        *,
        at: datetime,
        user=None,
        customer: StripeCustomer | None = None,
        app_name: str | None = None,
    ) -> Subscription:
        """Subscribe and start at `at`, as the store does once checkout saved a card
        (a free tier starts at once)."""
        user = user or self.subscriber
        app, _ = Application.objects.get_or_create(
            organization=self.org,
            owner=user,
            name=app_name or f"app-{Subscription.objects.count() + 1}",
        )
        sub = lifecycle.create(
            application=app,
            api=self.api,
            tier=tier,
            subscriber=user,
            customer=customer,
            at=at,
        )
        if sub.state == SubscriptionState.PENDING_PAYMENT:
            sub = lifecycle.activate(sub, at=at)
        return sub

    def change_tier(
        self, sub: Subscription, tier: Tier, *, at: datetime, usage_before: int
    ) -> Subscription:
        """Move `sub` to `tier` at `at` as the store's tier change does, with
        `usage_before` requests counted in the period so far."""
        with transaction.atomic():
            locked = lifecycle.lock(sub, "tier", "tier_version")
            lifecycle.change_tier(locked, tier=tier, usage=usage_before, at=at)
        sub.refresh_from_db()
        return sub


def add_usage(sub: Subscription, at: datetime, count: int) -> None:
    """`count` requests at `at`, in the subscription hour that holds it."""
    anchor = sub.started_at
    hour = anchor + ((at - anchor) // HOUR) * HOUR
    row, created = UsageRecord.objects.get_or_create(
        organization_id=sub.organization_id,
        subscription=sub,
        hour=hour,
        defaults={"count": count},
    )
    if not created:
        row.count += count
        row.save(update_fields=["count"])


def make_shop(org, subscriber, *, commission: str = "10") -> Shop:
    plan = PlatformPlan.objects.create(
        name=f"Growth {org.slug}",
        slug=f"growth-{org.slug}",
        monthly_price_minor=4900,
        commission_percent=D(commission),
        allows_monetization=True,
    )
    org.plan = plan
    org.save(update_fields=["plan"])
    api = make_unpublished_api(org, tiers=[], publish=False)
    return Shop(org=org, subscriber=subscriber, api=api, plan=plan)


@pytest.fixture
def shop(world) -> Shop:
    return make_shop(world.org, world.subscriber)


@dataclass
class Stripe:
    """The shop's organization connected to an emulated Stripe account."""

    emulator: object
    account: str

    def customer(self, shop: Shop, *, card: str = "pm_card_visa", user=None):
        user = user or shop.subscriber
        customer_id, pm_id = create_customer_with_card(
            self.account, card=card, email=user.email
        )
        return StripeCustomer.objects.create(
            organization=shop.org,
            user=user,
            stripe_account_id=self.account,
            stripe_customer_id=customer_id,
            default_payment_method_id=pm_id,
        )


@pytest.fixture
def stripe(shop, stripe_emulator) -> Stripe:
    account = connect_account(stripe_emulator, business_name="Acme APIs")
    StripeConnection.objects.create(
        organization=shop.org,
        account_id=account,
        monetization_enabled=True,
        charges_enabled=True,
    )
    return Stripe(emulator=stripe_emulator, account=account)


class Crash(Exception):
    """A process dying at a named step of the push (see `crash_at`)."""


def crash_at(name):
    """A push `step` hook that crashes at `name`."""

    def hook(step):
        if step == name:
            raise Crash(step)

    return hook


def paid_invoice(subscription, *, version, total_minor: int = 1900, fee_minor: int = 0):
    """A paid renewal invoice for the last 30 days, written directly: for pages that
    list or chart invoices (revenue, the store's invoices), not for billing."""
    now = timezone.now()
    return Invoice.objects.create(
        organization=subscription.organization,
        subscription=subscription,
        kind=InvoiceKind.RENEWAL,
        number=f"{subscription.organization.slug.upper()}-000001",
        status=InvoiceStatus.PAID,
        period_start=now - timedelta(days=30),
        period_end=now,
        currency=version.currency,
        total_minor=total_minor,
        application_fee_minor=fee_minor,
        api=subscription.api,
        tier_version=version,
        paid_at=now,
    )
