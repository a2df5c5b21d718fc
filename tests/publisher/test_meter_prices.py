"""Tiers price meters: a row per meter in the tier form, prices typed per the
meter's display scale and kept per unit, versioning that covers meter prices."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from pricing.rating import Band, Pricing, PricingModel
from publisher import meters, services
from publisher.models import BillingPlan, Tier
from tests.billing.test_meters import add_meter
from tests.helpers import field_error
from tests.publisher.helpers import make_api, make_tier, per_unit, subscribe
from tests.publisher.test_tiers import commercial, form_data, url

D = Decimal


@pytest.fixture
def api(world):
    api = make_api(world.org)
    add_meter(api, "tokens", "Tokens", "token", scale=1000)
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
    # Requests are a row like the others, first, without a quota of their own
    # (theirs is the tier's limit).
    assert 'id="meter-requests"' in page
    assert page.index('id="meter-requests"') < page.index('id="meter-tokens"')
    assert "Price per request" in page
    assert 'name="meter-tokens-quota_limit"' in page
    assert 'name="meter-requests-quota_limit"' not in page


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
    (price,) = version.meter_prices.filter(meter="tokens")
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
        **commercial(),
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
        url(world.org, "new/"), {**commercial(), **tokens()}
    )

    assert "must charge something" in field_error(response.content, "fixed_fee")


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
    assert tier.current_version.meter_prices.get(meter="tokens").unit_price == D(
        "0.000003"
    )
    assert v1.meter_prices.get(meter="tokens").unit_price == D("0.000002")
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


# -- the live price preview per meter --------------------------------------------


def preview_of(client, org, data):
    response = client.post(url(org, "preview/"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response


def table(response, key):
    (found,) = [t for t in response.context["preview"].tables if t.key == key]
    return found


def shown_rows(response, key):
    return [(r.quantity, r.amount) for r in table(response, key).rows]


@pytest.mark.django_db
def test_the_preview_has_a_table_per_priced_meter_in_its_unit(world, client_for, api):
    # $0.002 per 1K tokens: previewed from 100K tokens (100 × the display scale)
    data = {
        **commercial("PER_UNIT", unit_price="0.001"),
        **tokens(pricing_model="PER_UNIT", unit_price="0.002"),
    }

    response = preview_of(client_for(world.publisher), world.org, data)

    assert shown_rows(response, "tokens") == [
        ("100,000 tokens", "$0.20"),
        ("1,000,000 tokens", "$2.00"),
        ("10,000,000 tokens", "$20.00"),
        ("100,000,000 tokens", "$200.00"),
        ("1,000,000,000 tokens", "$2,000.00"),
    ]
    assert shown_rows(response, "requests")[0] == ("100 requests", "$0.10")
    page = response.content.decode()
    assert 'id="preview-tokens"' in page
    assert "$0.002 per 1K tokens" in page
    assert "Tokens per month" in page
    # The example: 10,000 requests ($10.00) + 10,000,000 tokens ($20.00)
    assert response.context["preview"].example_total == "$30.00"
    assert "10,000 requests + 10,000,000 tokens" in page


@pytest.mark.django_db
def test_a_free_meter_has_no_table(world, client_for, api):
    data = {
        **commercial("PER_UNIT", unit_price="0.001"),
        **tokens(quota_limit="5000"),
    }

    response = preview_of(client_for(world.publisher), world.org, data)

    assert [t.key for t in response.context["preview"].tables] == ["requests"]


@pytest.mark.django_db
def test_a_hard_quota_stops_the_rows_at_the_quota(world, client_for, api):
    # 50 requests a day, hard: a month (at most 31 days) stops at 1,550 requests.
    data = {
        **commercial("PER_UNIT", unit_price="0.01", quota_limit="50", quota_unit="day"),
        **tokens(),
    }

    response = preview_of(client_for(world.publisher), world.org, data)

    assert shown_rows(response, "requests") == [
        ("100 requests", "$1.00"),
        ("1,000 requests", "$10.00"),
        ("1,550 requests", "$15.50"),
    ]
    (stop,) = [r.row for r in table(response, "requests").rows if r.row.at_quota]
    assert stop.quantity == 1_550
    page = response.content.decode()
    assert "Stops at 1,550 requests per month" in page
    assert "stops here" in page
    assert "1,000,000 requests" not in page
    # The example total is never above what the quota lets through.
    assert response.context["preview"].example_total == "$15.50"


@pytest.mark.django_db
def test_a_meters_hard_quota_caps_its_own_rows(world, client_for, api):
    # 20,000 tokens a day, hard: at most 620,000 tokens in a month.
    data = {
        **commercial("PER_UNIT", unit_price="0.001"),
        **tokens(
            pricing_model="PER_UNIT",
            unit_price="0.002",
            quota_limit="20000",
            quota_unit="day",
        ),
    }

    response = preview_of(client_for(world.publisher), world.org, data)

    assert shown_rows(response, "tokens") == [
        ("100,000 tokens", "$0.20"),
        # half the quota, so that a table has two rows below it at least
        ("310,000 tokens", "$0.62"),
        ("620,000 tokens", "$1.24"),
    ]
    assert table(response, "tokens").hard
    # The requests' rows are not cut by the tokens' quota.
    assert shown_rows(response, "requests")[-1] == ("1,000,000 requests", "$1,000.00")


@pytest.mark.django_db
def test_a_soft_quota_marks_the_rows_over_it(world, client_for, api):
    # 10,000 included, soft quota 30,000 per period: rows above it are billed.
    data = {
        **commercial(
            "FLAT_PLUS_OVERAGE",
            fixed_fee="19",
            included_units="10000",
            overage_price="0.50",
            overage_block_size="1000",
            quota_limit="30000",
            quota_unit="period",
            stop_on_quota_reach=None,
        ),
        **tokens(),
    }

    response = preview_of(client_for(world.publisher), world.org, data)

    shown = table(response, "requests")
    assert [(r.quantity, r.amount, r.row.over_quota) for r in shown.rows] == [
        ("5,000 requests", "$0.00", False),
        ("10,000 requests", "$0.00", False),
        ("20,000 requests", "$5.00", False),
        ("30,000 requests", "$10.00", False),
        ("50,000 requests", "$20.00", True),
    ]
    assert not shown.hard
    page = response.content.decode()
    assert "over the quota" in page
    assert "Soft quota of 30,000 requests per billing period" in page
    assert response.context["preview"].fixed_fee == "$19.00"
    # $19.00 fee + the 10,000 included requests
    assert response.context["preview"].example_total == "$19.00"


@pytest.mark.django_db
def test_the_preview_of_a_graduated_tokens_price_by_hand(world, client_for, api):
    # Up to 1M tokens at $0.002 per 1K, then $0.0015 per 1K and a $5 band fee.
    data = {
        **commercial(),
        **tokens(pricing_model="GRADUATED", bands="1000000 0.002\n* 0.0015 5"),
    }

    response = preview_of(client_for(world.publisher), world.org, data)

    assert shown_rows(response, "tokens") == [
        # 500,000 × $0.000002
        ("500,000 tokens", "$1.00"),
        # 1,000,000 × $0.000002
        ("1,000,000 tokens", "$2.00"),
        # $2.00 + 1,000,000 × $0.0000015 ($1.50) + $5.00
        ("2,000,000 tokens", "$8.50"),
        # $2.00 + 9,000,000 × $0.0000015 ($13.50) + $5.00
        ("10,000,000 tokens", "$20.50"),
    ]
    shown = response.context["preview"]
    # Only the tokens are charged: no requests table, no fee, never "free".
    assert [t.key for t in shown.tables] == ["tokens"]
    assert shown.fixed_fee is None
    assert shown.example_total == "$2.00"
    assert "pay nothing" not in response.content.decode()


@pytest.mark.django_db
def test_the_preview_lists_a_meter_rows_errors(world, client_for, api):
    data = {
        **commercial("PER_UNIT", unit_price="0.001"),
        **tokens(pricing_model="GRADUATED", bands="x y"),
    }

    response = preview_of(client_for(world.publisher), world.org, data)

    page = response.content.decode()
    assert "Fix the price to see a preview" in page
    assert "Tokens: Line 1:" in page
    assert "preview" not in response.context


@pytest.mark.django_db
def test_the_tier_page_previews_each_meter_of_its_version(world, client_for, api):
    tier = make_tier(
        world.org,
        price=tokens_price("0.000002"),
        quota_limit=5_000,
        quota_unit="month",
        stop_on_quota_reach=True,
    )

    response = client_for(world.publisher).get(url(world.org, f"{tier.pk}/"))

    assert shown_rows(response, "requests") == [
        ("100 requests", "$0.10"),
        ("1,000 requests", "$1.00"),
        ("5,000 requests", "$5.00"),
    ]
    assert shown_rows(response, "tokens")[1] == ("1,000,000 tokens", "$2.00")
    assert "Stops at 5,000 requests per month (hard quota)" in (
        response.content.decode()
    )


@pytest.mark.django_db
def test_the_requests_price_is_the_tiers_own_not_a_second_meter_price(world):
    wrong = services.TierPrice(
        pricing=per_unit("0.001").pricing,
        meters=(
            services.MeterPriceSpec(
                meter="requests",
                pricing=Pricing(
                    model=PricingModel.PER_UNIT, currency="usd", unit_price=D(1)
                ),
            ),
        ),
    )

    with pytest.raises(ValidationError, match="tier's own price"):
        make_tier(world.org, price=wrong)


@pytest.mark.django_db
def test_a_versions_requests_price_is_one_meter_price_row(world, api):
    tier = make_tier(world.org, price=tokens_price("0.000002"))

    version = tier.current_version
    rows = version.meter_prices.order_by("meter").values_list(
        "meter", "pricing_model", "unit_price"
    )
    assert list(rows) == [
        ("requests", "PER_UNIT", D("0.001")),
        ("tokens", "PER_UNIT", D("0.000002")),
    ]
    assert version.pricing() == per_unit("0.001").pricing
    assert services.TierPrice.of(version) == tokens_price("0.000002")


@pytest.mark.django_db
def test_the_tier_page_lists_requests_like_any_meter_with_the_tiers_quota(
    world, client_for, api
):
    tier = make_tier(
        world.org,
        price=tokens_price("0.000002"),
        quota_limit=5_000,
        quota_unit="day",
        stop_on_quota_reach=True,
    )

    page = client_for(world.publisher).get(url(world.org, f"{tier.pk}/")).content

    html = page.decode()
    requests_row = html[html.index('id="price-requests"') :].split("</tr>")[0]
    assert "$0.001 per request" in requests_row
    assert "5,000 requests per day (hard)" in requests_row
    tokens_row = html[html.index('id="price-tokens"') :].split("</tr>")[0]
    assert "$0.002 per 1K tokens" in tokens_row
    assert "unlimited" in tokens_row
