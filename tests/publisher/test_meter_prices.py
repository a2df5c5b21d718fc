"""Tiers price meters: a row per meter in the tier form, prices typed per the
meter's display scale and kept per unit, versioning that covers meter prices."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from pricing.rating import Band, Pricing, PricingModel
from publisher import meters, services
from publisher.models import BillingPlan, MeterSource, Tier
from tests.helpers import field_error
from tests.publisher.helpers import make_api, make_tier, per_unit, subscribe
from tests.publisher.test_tiers import commercial, form_data, url

D = Decimal


@pytest.fixture
def api(world):
    api = make_api(world.org)
    meters.meter_create(
        api=api,
        actor=None,
        key="tokens",
        display_name="Tokens",
        unit_label="token",
        display_scale=1000,
        source=MeterSource.RESPONSE,
    )
    return api


def tokens(**fields):
    base = {
        "pricing_model": "FREE",
        "unit_price": "",
        "included_units": "",
        "overage_price": "",
        "overage_block_size": "",
        "bands": "",
        "quota_limit": "",
        "quota_unit": "month",
        "stop_on_quota_reach": "on",
    }
    base.update(fields)
    return {f"meter-tokens-{k}": v for k, v in base.items() if v is not None}


@pytest.mark.django_db
def test_the_tier_form_has_a_row_per_meter_of_the_organizations_apis(
    world, client_for, api
):
    page = client_for(world.publisher).get(url(world.org, "new/")).content.decode()

    assert 'id="meter-tokens"' in page
    assert "Price per 1K tokens" in page
    assert 'id="meter-requests"' not in page


@pytest.mark.django_db
def test_graduated_token_bands_are_typed_per_1k_and_kept_per_token(
    world, client_for, api
):
    data = {
        **commercial("PER_UNIT", unit_price="0.001"),
        **tokens(pricing_model="GRADUATED", bands="1000000 0.002\n* 0.0015 5"),
    }

    response = client_for(world.publisher).post(url(world.org, "new/"), data)

    assert response.status_code == 302, field_error(
        response.content, "meter-tokens-bands"
    )
    version = Tier.objects.get(name="Gold").current_version
    (price,) = version.meter_prices.all()
    assert price.pricing(version.currency) == Pricing(
        model=PricingModel.GRADUATED,
        currency="usd",
        bands=(
            Band(1_000_000, D("0.000002"), D(0)),
            Band(None, D("0.0000015"), D(5)),
        ),
    )
    # The edit form shows what was typed.
    page = client_for(world.publisher).get(url(world.org, f"{version.tier_id}/edit/"))
    assert "1000000 0.002\n* 0.0015 5" in page.content.decode()


@pytest.mark.django_db
def test_a_commercial_tier_may_charge_only_a_meter(world, client_for, api):
    data = {
        **commercial(""),
        **tokens(pricing_model="PER_UNIT", unit_price="0.5"),
    }

    response = client_for(world.publisher).post(url(world.org, "new/"), data)

    assert response.status_code == 302
    tier = Tier.objects.get(name="Gold")
    assert tier.billing_plan == BillingPlan.COMMERCIAL
    assert tier.current_version.pricing_model == PricingModel.FREE
    assert tier.current_version.meter_prices.get().unit_price == D("0.0005")


@pytest.mark.django_db
def test_a_commercial_tier_that_charges_nothing_is_still_refused(
    world, client_for, api
):
    response = client_for(world.publisher).post(
        url(world.org, "new/"), {**commercial(""), **tokens()}
    )

    assert "must charge something" in field_error(response.content, "pricing_model")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"pricing_model": "PER_UNIT"}, "unit_price", "price per token must be"),
        ({"pricing_model": "GRADUATED", "bands": "x y"}, "bands", "Line 1:"),
        ({"pricing_model": "GRADUATED", "bands": "5 1\n3 1"}, "bands", "previous"),
        (
            {"pricing_model": "PER_UNIT", "unit_price": "0.0000000001"},
            "unit_price",
            "decimal places",
        ),
        ({"quota_limit": "0"}, "quota_limit", "greater than or equal to 1"),
        ({"pricing_model": "FLAT"}, "pricing_model", "Select a valid choice"),
    ],
)
@pytest.mark.django_db
def test_a_meter_rows_errors_are_shown_next_to_its_fields(
    world, client_for, api, fields, field, message
):
    data = {**commercial("PER_UNIT", unit_price="0.001"), **tokens(**fields)}

    response = client_for(world.publisher).post(url(world.org, "new/"), data)

    assert response.status_code == 200
    assert message in field_error(response.content, f"meter-tokens-{field}")
    assert not Tier.objects.filter(name="Gold").exists()


@pytest.mark.django_db
def test_a_free_tier_may_limit_a_meter_but_not_price_it(world, client_for, api):
    client = client_for(world.publisher)
    refused = client.post(
        url(world.org, "new/"),
        {**form_data(), **tokens(pricing_model="PER_UNIT", unit_price="1")},
    )
    assert "free tier charges nothing" in field_error(
        refused.content, "meter-tokens-pricing_model"
    )

    response = client.post(
        url(world.org, "new/"), {**form_data(), **tokens(quota_limit="50000")}
    )

    assert response.status_code == 302
    tier = Tier.objects.get(name="Gold")
    assert tier.billing_plan == BillingPlan.FREE
    price = tier.current_version.meter_prices.get()
    assert (price.pricing_model, price.quota_limit, price.stop_on_quota_reach) == (
        "FREE",
        50_000,
        True,
    )


def tokens_price(unit_price: str) -> services.TierPrice:
    base = per_unit("0.001")
    return services.TierPrice(
        pricing=base.pricing,
        meters=(
            services.MeterPriceSpec(
                meter="tokens",
                pricing=Pricing(
                    model=PricingModel.PER_UNIT,
                    currency="usd",
                    unit_price=D(unit_price),
                ),
            ),
        ),
    )


@pytest.mark.django_db
def test_a_meter_price_change_with_subscribers_makes_a_new_version(world, api):
    tier = make_tier(world.org, price=tokens_price("0.000002"))
    services.api_set_tiers(api=api, tiers=[tier], actor=None)
    subscribe(api, tier, world.subscriber)
    v1 = tier.current_version

    result = services.tier_update(
        tier=tier,
        actor=None,
        name=tier.name,
        limits=services.TierLimits(),
        price=tokens_price("0.000003"),
    )

    tier.refresh_from_db()
    assert result.price_outcome == "new_version"
    assert tier.current_version.meter_prices.get().unit_price == D("0.000003")
    assert v1.meter_prices.get().unit_price == D("0.000002")
    # The same price again changes nothing.
    again = services.tier_update(
        tier=tier,
        actor=None,
        name=tier.name,
        limits=services.TierLimits(),
        price=tokens_price("0.000003"),
    )
    assert again.price_outcome == "unchanged"


@pytest.mark.django_db
def test_a_meter_in_another_currency_than_the_tier_is_refused(world):
    price = tokens_price("1")
    spec = price.meters[0]
    wrong = services.TierPrice(
        pricing=price.pricing,
        meters=(
            services.MeterPriceSpec(
                meter="tokens",
                pricing=Pricing(
                    model=PricingModel.PER_UNIT, currency="eur", unit_price=D(1)
                ),
            ),
        ),
    )
    assert spec.pricing.currency == "usd"

    with pytest.raises(ValidationError, match="tier's currency"):
        make_tier(world.org, price=wrong)


@pytest.mark.django_db
def test_a_priced_meter_cannot_be_deleted(world, api):
    tier = make_tier(world.org, price=tokens_price("0.000002"))
    services.api_set_tiers(api=api, tiers=[tier], actor=None)

    with pytest.raises(ValidationError, match="prices this meter"):
        meters.meter_delete(meter=api.meters.get(key="tokens"), actor=None)


@pytest.mark.django_db
def test_the_tier_page_shows_each_meter_price_per_its_display_scale(
    world, client_for, api
):
    tier = make_tier(world.org, price=tokens_price("0.000002"))

    page = client_for(world.publisher).get(url(world.org, f"{tier.pk}/"))

    assert "$0.002 per 1K tokens" in page.content.decode()


@pytest.mark.django_db
def test_the_stores_pricing_table_lists_each_charged_meter(world, client_for, api):
    tier = make_tier(world.org, name="Tokens", price=tokens_price("0.000002"))
    services.api_set_tiers(api=api, tiers=[tier], actor=None)
    services.api_transition(api=api, action="publish", actor=None)

    page = client_for(world.subscriber).get(f"/t/{world.org.slug}/store/apis/{api.pk}/")

    assert page.status_code == 200
    assert "Tokens: $0.002 per 1K tokens" in page.content.decode()


@pytest.mark.django_db
def test_the_admin_shows_a_versions_meter_prices_and_an_apis_meters(client, world, api):
    from apimon.models import User

    tier = make_tier(world.org, price=tokens_price("0.000002"))
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")

    version_page = client.get(
        f"/admin/publisher/tierversion/{tier.current_version_id}/change/"
    )
    api_page = client.get(f"/admin/publisher/api/{api.pk}/change/")

    assert version_page.status_code == api_page.status_code == 200
    assert "0.000002" in version_page.content.decode()
    assert "tokens" in api_page.content.decode()


@pytest.mark.django_db
def test_a_tier_that_charges_meters_is_never_summed_up_as_free(world):
    from publisher.templatetags.publisher_tags import pricing_summary

    only_meters = make_tier(
        world.org,
        name="Only tokens",
        price=services.TierPrice(
            pricing=Pricing(model=PricingModel.FREE, currency="usd"),
            meters=tokens_price("0.000002").meters,
        ),
    )
    both = make_tier(world.org, name="Both", price=tokens_price("0.000002"))

    assert pricing_summary(only_meters.current_version) == (
        "Requests free; priced by its meters, billed monthly"
    )
    assert pricing_summary(both.current_version) == (
        "$0.001 per request, billed monthly, plus its meters"
    )
