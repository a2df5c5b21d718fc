"""Helpers for the monetization tests: organizations on a paid plan, APIs and tiers
of every pricing model, and "Connect with Stripe" run through apimon's own views
against the in-process emulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from apimon.models import Organization, PlatformPlan
from billing import services
from publisher.models import (
    Api,
    ApiState,
    ApiTier,
    BillingPlan,
    PriceBand,
    PricingModel,
    Tier,
    TierVersion,
)
from stripe_emulator import testing


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
    version = TierVersion.objects.create(
        tier=tier, number=1, pricing_model=model, **_prices(price)
    )
    for position, (up_to, unit, flat) in enumerate(bands or []):
        PriceBand.objects.create(
            version=version,
            position=position,
            up_to=up_to,
            unit_price=Decimal(unit),
            flat_fee=Decimal(flat),
        )
    tier.current_version = version
    tier.save(update_fields=["current_version"])
    return tier


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
