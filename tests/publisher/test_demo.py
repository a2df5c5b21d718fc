"""The demo's catalogs (`publisher.demo.CATALOGS`), as `seed_demo` makes them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings

from apimon.models import Organization
from apimon.services import trial_plan
from pricing.rating import PricingModel, price_preview
from publisher.demo import CATALOGS, seed_catalog
from publisher.models import (
    Api,
    ApiState,
    MeterPrice,
    MeterPriceBand,
    Tier,
    TierVersion,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def seed(slug: str) -> Organization:
    org = Organization.objects.create(slug=slug, name=slug.title(), plan=trial_plan())
    seed_catalog(org, actor=make_user(f"publisher@{slug}.test"))
    return org


def counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (Tier, TierVersion, MeterPrice, MeterPriceBand, Api)
    )


def test_each_catalog_is_made_once_with_every_api_published():
    acme, globex = seed("acme"), seed("globex")
    first = counts()
    seed_catalog(acme, actor=None)
    seed_catalog(globex, actor=None)
    assert counts() == first

    for org in (acme, globex):
        catalog = CATALOGS[org.slug]
        apis = Api.objects.filter(organization=org)
        assert sorted(apis.values_list("context", flat=True)) == sorted(
            spec.context for spec in catalog.apis
        )
        for spec in catalog.apis:
            api = apis.get(context=spec.context)
            assert api.state == ApiState.PUBLISHED
            assert api.backend_url == settings.SAMPLE_API_URL + spec.backend_path
            assert sorted(t.name for t in api.tiers.all()) == sorted(spec.tiers)
            assert api.openapi_spec["openapi"].startswith("3.")
            assert api.documentation.startswith(f"# {spec.name}")


def test_the_catalogs_cover_every_pricing_model_in_three_currencies():
    for slug in CATALOGS:
        seed(slug)
    priced = {
        (v.tier.organization.slug, v.pricing_model, v.currency)
        for v in TierVersion.objects.select_related("tier__organization")
    }
    assert {model for _, model, _ in priced} == set(PricingModel)
    paid = {(org, currency) for org, model, currency in priced if model != "FREE"}
    assert {currency for _, currency in paid} == {"usd", "eur", "jpy"}
    assert {currency for org, currency in paid if org == "globex"} == {
        "usd",
        "eur",
        "jpy",
    }
    # Each organization sells with several models, and both a weekly and a monthly
    # cycle appear.
    for slug in CATALOGS:
        models = {m for org, m, _ in priced if org == slug and m != "FREE"}
        assert len(models) >= 4, slug
    assert set(TierVersion.objects.values_list("billing_cycle", flat=True)) >= {
        "week",
        "month",
    }


def test_the_readme_tiers_keep_their_prices():
    # The README and the store's first page describe these.
    seed("acme")
    free = Tier.objects.get(name="Free")
    assert (free.quota_limit, free.quota_unit, free.rate_limit, free.rate_unit) == (
        1000,
        "day",
        5,
        "second",
    )
    starter = Tier.objects.get(name="Starter").current_version
    starter = starter.pricing()
    assert (starter.fixed_fee, starter.included_requests, starter.overage_price) == (
        Decimal("19"),
        10_000,
        Decimal("0.5"),
    )
    pay_as_you_go = Tier.objects.get(name="Pay as you go").current_version
    assert pay_as_you_go.pricing().unit_price == Decimal("0.0004")
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
    published = Api.objects.filter(state=ApiState.PUBLISHED).count()
    assert published == sum(len(catalog.apis) for catalog in CATALOGS.values())
