"""The demo catalog seeded by `manage.py seed_demo`."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings

from apimon import demo
from pricing.rating import price_preview
from publisher.models import Api, ApiState, PriceBand, Tier, TierVersion


@pytest.mark.django_db
def test_the_demo_has_four_tiers_and_two_published_apis_and_seeds_once():
    demo.seed()
    counts = (
        Tier.objects.count(),
        TierVersion.objects.count(),
        PriceBand.objects.count(),
        Api.objects.count(),
    )
    demo.seed()
    assert (
        counts
        == (
            Tier.objects.count(),
            TierVersion.objects.count(),
            PriceBand.objects.count(),
            Api.objects.count(),
        )
        == (4, 4, 3, 2)
    )

    weather = Api.objects.get(context="weather")
    quotes = Api.objects.get(context="quotes")
    assert weather.state == quotes.state == ApiState.PUBLISHED
    assert weather.backend_url == settings.SAMPLE_API_URL + "/weather"
    assert quotes.backend_url == settings.SAMPLE_API_URL + "/quotes"
    assert sorted(t.name for t in weather.tiers.all()) == [
        "Free",
        "Pay as you go",
        "Starter",
    ]
    assert sorted(t.name for t in quotes.tiers.all()) == ["Enterprise", "Free"]
    assert sorted(t.name for t in weather.tags.all()) == ["forecast", "weather"]
    assert weather.openapi_spec["openapi"].startswith("3.")

    free = Tier.objects.get(name="Free")
    assert (free.quota_limit, free.quota_unit, free.rate_limit, free.rate_unit) == (
        1000,
        "day",
        5,
        "second",
    )
    starter = Tier.objects.get(name="Starter").current_version
    assert (starter.fixed_fee, starter.included_requests, starter.overage_price) == (
        Decimal("19"),
        10_000,
        Decimal("0.5"),
    )
    assert Tier.objects.get(name="Pay as you go").current_version.unit_price == Decimal(
        "0.0004"
    )
    enterprise = Tier.objects.get(name="Enterprise").current_version.pricing()
    assert price_preview(enterprise) == [
        (10_000, 10900),
        (100_000, 19900),
        (1_000_000, 73900),
    ]


@pytest.mark.django_db
def test_seeding_with_private_networks_denied_says_what_to_allow(settings):
    from django.core.management import CommandError, call_command

    settings.BACKEND_PRIVATE_NETWORKS = "deny"
    settings.BACKEND_ALLOWED_NETWORKS = []
    with pytest.raises(CommandError) as exc:
        call_command("seed_demo")
    assert "127.0.0.1 is a loopback address" in str(exc.value)
    assert "BACKEND_ALLOWED_NETWORKS" in str(exc.value)

    settings.BACKEND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    call_command("seed_demo")
    assert Api.objects.filter(state=ApiState.PUBLISHED).count() == 2
