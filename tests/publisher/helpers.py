"""Builders for publisher tests: tiers, APIs and (ORM-made) subscriptions."""

from __future__ import annotations

from decimal import Decimal

from pricing.rating import Band, Pricing, PricingModel
from publisher import services
from publisher.models import Api, LifecycleAction, Tier
from store.models import Application, Subscription, SubscriptionState

D = Decimal


def per_unit(price: str = "0.0004", currency: str = "usd") -> services.TierPrice:
    return services.TierPrice(
        pricing=Pricing(
            model=PricingModel.PER_UNIT, currency=currency, unit_price=D(price)
        )
    )


def graduated() -> services.TierPrice:
    return services.TierPrice(
        pricing=Pricing(
            model=PricingModel.GRADUATED,
            currency="usd",
            bands=(
                Band(100_000, D("0.0010"), D("99")),
                Band(1_000_000, D("0.0006")),
                Band(None, D("0.0003")),
            ),
        )
    )


def make_tier(org, name: str = "Gold", price=None, **limits) -> Tier:
    return services.tier_create(
        organization=org,
        actor=None,
        name=name,
        limits=services.TierLimits(**limits),
        price=price or services.TierPrice(),
    )


def make_api(
    org,
    *,
    name: str = "Weather API",
    context: str = "weather",
    version: str = "v1",
    tiers=(),
    publish: bool = False,
    **fields,
) -> Api:
    api = services.api_create(
        organization=org,
        actor=None,
        name=name,
        version=version,
        context=context,
        backend_url=fields.pop("backend_url", "https://backend.example.com/"),
        **fields,
    )
    if tiers:
        services.api_set_tiers(api=api, tiers=tiers, actor=None)
    if publish:
        services.api_transition(api=api, action=LifecycleAction.PUBLISH, actor=None)
    return api


def subscribe(
    api: Api,
    tier: Tier,
    user,
    *,
    state: str = SubscriptionState.ACTIVE,
    app_name: str | None = None,
    version=None,
) -> Subscription:
    """A subscription made directly with the ORM (the store's services come later)."""
    app, _ = Application.objects.get_or_create(
        organization=api.organization,
        owner=user,
        name=app_name or f"app-{api.pk}-{tier.pk}-{Subscription.objects.count()}",
    )
    return Subscription.objects.create(
        organization=api.organization,
        application=app,
        api=api,
        tier=tier,
        tier_version=version or tier.current_version,
        subscriber=user,
        state=state,
    )
