"""Builders for billing tests: a monetizable organization, tiers of every pricing
model, subscriptions activated as the store does it, and usage rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apimon.models import PlatformPlan
from billing.models import StripeConnection
from billing.periods import period_bounds
from billing.rating import Band, Pricing, PricingModel
from gateway.models import UsageRecord
from publisher import services as publisher_services
from publisher.models import Tier
from store.models import StripeCustomer, Subscription, SubscriptionState
from tests.fixtures.stripe import connect_account, create_customer_with_card
from tests.publisher.helpers import make_api

D = Decimal
M = PricingModel
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
        """Subscribe and activate at `at`, following the store's contract."""
        from store.models import Application

        user = user or self.subscriber
        app, _ = Application.objects.get_or_create(
            organization=self.org,
            owner=user,
            name=app_name or f"app-{Subscription.objects.count() + 1}",
        )
        version = tier.current_version
        sub = Subscription(
            organization=self.org,
            application=app,
            api=self.api,
            tier=tier,
            tier_version=version,
            subscriber=user,
            customer=customer,
        )
        activate(sub, at=at)
        sub.save()
        return sub


def activate(sub: Subscription, *, at: datetime) -> None:
    """The store's activation contract (data-driven handoff to billing)."""
    version = sub.tier_version
    sub.started_at = at
    sub.current_period_start, sub.current_period_end = period_bounds(
        at, version.billing_cycle, 0
    )
    pricing = version.pricing()
    if pricing.model == M.FREE:
        sub.state = SubscriptionState.ACTIVE
        sub.next_invoice_at = None
    elif version.trial_days:
        sub.state = SubscriptionState.TRIALING
        sub.trial_end = at + timedelta(days=version.trial_days)
        sub.next_invoice_at = sub.trial_end
    else:
        sub.state = SubscriptionState.ACTIVE
        has_fee = pricing.model in (M.FLAT, M.FLAT_PLUS_OVERAGE) and pricing.fixed_fee
        sub.next_invoice_at = at if has_fee else sub.current_period_end


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
    api = make_api(org, tiers=[], publish=False)
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
