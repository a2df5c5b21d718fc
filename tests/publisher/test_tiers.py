"""Tiers: the form for every pricing model, its validation, the live price preview,
archiving, and offering tiers on APIs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from apimon.models import User
from gateway import meter
from pricing.rating import Band, Pricing
from publisher import services
from publisher.models import (
    ApiTier,
    BillingPlan,
    MeterPriceBand,
    PricingModel,
    Tier,
    TierVersion,
)
from tests.billing.test_meters import add_meter
from tests.helpers import field_error, submitted_values
from tests.publisher.helpers import make_api, make_tier, subscribe

D = Decimal


GATEWAY_URL = "/gateway/acme/weather/v1/fast"  # the `metering` fixture's API


def url(org, rest=""):
    return f"/t/{org.slug}/publisher/tiers/{rest}"


def requests_row(**fields):
    """The requests' price row of the tier form (a meter row, prefix
    `meter-requests`; no quota: the requests' quota is the tier's)."""
    row = {
        "pricing_model": "FREE",
        "unit_price": "",
        "included_units": "",
        "overage_price": "",
        "overage_block_size": "",
        "bands": "",
    }
    row.update(fields)
    return {f"meter-requests-{k}": v for k, v in row.items() if v is not None}


def form_data(requests=None, **fields):
    data = {
        "name": "Gold",
        "description": "",
        "quota_limit": "",
        "quota_unit": "month",
        "stop_on_quota_reach": "on",
        "rate_limit": "",
        "rate_unit": "second",
        "billing_plan": "FREE",
        "currency": "usd",
        "billing_cycle": "month",
        "trial_days": "0",
        "fixed_fee": "",
        **requests_row(**(requests or {})),
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def commercial(model="FREE", *, fixed_fee="", **fields):
    """A commercial tier's form: its fixed fee and the requests row priced with
    `model` (`requests_price` keys: unit_price, included_units, … bands)."""
    row = {
        key: fields.pop(key)
        for key in list(fields)
        if key
        in (
            "unit_price",
            "included_units",
            "overage_price",
            "overage_block_size",
            "bands",
        )
    }
    return form_data(
        billing_plan="COMMERCIAL",
        fixed_fee=fixed_fee,
        requests={"pricing_model": model, **row},
        **fields,
    )


GRADUATED_BANDS = "100000 0.0010 99\n1000000 0.0006\n* 0.0003"


def row_errors(response, name):
    """The errors of a field of the requests row, in the form and on the page."""
    form = response.context["form"]
    return str(form.requests_form.errors.get(name, "")), field_error(
        response.content, f"meter-requests-{name}"
    )


@pytest.mark.django_db
def test_a_publisher_creates_a_free_tier_with_limits(world, client_for):
    response = client_for(world.publisher).post(
        url(world.org, "new/"),
        form_data(
            name="Free",
            quota_limit="1000",
            quota_unit="day",
            rate_limit="5",
            count_every_request="on",
        ),
    )
    tier = Tier.objects.get(organization=world.org)
    assert response.status_code == 302
    assert response["Location"] == url(world.org, f"{tier.pk}/")
    assert (tier.quota_limit, tier.quota_unit, tier.rate_limit, tier.rate_unit) == (
        1000,
        "day",
        5,
        "second",
    )
    assert tier.stop_on_quota_reach and tier.count_every_request
    assert tier.billing_plan == BillingPlan.FREE
    version = tier.current_version
    assert (version.number, version.pricing_model) == (1, PricingModel.FREE)


@pytest.mark.parametrize(
    ("data", "model", "expected"),
    [
        (
            commercial(fixed_fee="29.99", billing_cycle="year", trial_days="14"),
            "FLAT",
            {"fixed_fee": D("29.99"), "billing_cycle": "year", "trial_days": 14},
        ),
        (
            commercial("PER_UNIT", unit_price="0.000400000001", currency="eur"),
            "PER_UNIT",
            {"unit_price": D("0.000400000001"), "currency": "eur", "fixed_fee": 0},
        ),
        (
            commercial(
                "FLAT_PLUS_OVERAGE",
                fixed_fee="19",
                included_units="10000",
                overage_price="0.50",
                overage_block_size="1000",
            ),
            "FLAT_PLUS_OVERAGE",
            {
                "fixed_fee": D("19"),
                "included_requests": 10000,
                "overage_price": D("0.5"),
                "overage_block_size": 1000,
            },
        ),
        (commercial("GRADUATED", bands=GRADUATED_BANDS), "GRADUATED", {"bands": 3}),
        (
            commercial("VOLUME", currency="jpy", bands="10 5\n* 1"),
            "VOLUME",
            {"currency": "jpy", "bands": 2},
        ),
        # SPEC §10: meters are priced on top of one fixed fee, whatever their model.
        (
            commercial("PER_UNIT", fixed_fee="10", unit_price="0.001"),
            "PER_UNIT",
            {"fixed_fee": D("10"), "unit_price": D("0.001")},
        ),
        (
            commercial("GRADUATED", fixed_fee="5", bands=GRADUATED_BANDS),
            "GRADUATED",
            {"fixed_fee": D("5"), "bands": 3},
        ),
    ],
    ids=[
        "flat",
        "per-unit",
        "overage",
        "graduated",
        "volume",
        "fee-per-unit",
        "fee-graduated",
    ],
)
@pytest.mark.django_db
def test_a_publisher_creates_a_commercial_tier_of_every_model(
    world, client_for, data, model, expected
):
    response = client_for(world.publisher).post(url(world.org, "new/"), data)
    assert response.status_code == 302, response.context["form"].errors
    tier = Tier.objects.get()
    version = tier.current_version
    assert tier.billing_plan == BillingPlan.COMMERCIAL
    assert version.pricing_model == model
    pricing = version.pricing()
    for key, value in expected.items():
        if key == "bands":
            assert len(pricing.bands) == value
            assert version.requests_price().bands.count() == value
        elif key in ("billing_cycle", "trial_days", "fixed_fee"):
            assert getattr(version, key) == value
        else:
            assert getattr(pricing, key) == value


@pytest.mark.django_db
def test_graduated_bands_are_stored_in_order_with_an_open_last_band(world, client_for):
    client_for(world.publisher).post(
        url(world.org, "new/"), commercial("GRADUATED", bands=GRADUATED_BANDS)
    )
    bands = list(
        MeterPriceBand.objects.filter(price__meter="requests")
        .order_by("position")
        .values_list("position", "up_to", "unit_price", "flat_fee")
    )
    assert bands == [
        (0, 100_000, D("0.001"), D("99")),
        (1, 1_000_000, D("0.0006"), D("0")),
        (2, None, D("0.0003"), D("0")),
    ]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (commercial(), "fixed_fee", "must charge something"),
        (commercial(fixed_fee="0"), "fixed_fee", "must charge something"),
        (commercial(fixed_fee="-1"), "fixed_fee", "greater than or equal to 0"),
        (
            commercial("PER_UNIT", unit_price="1", currency="xyz"),
            "currency",
            "valid choice",
        ),
        (
            commercial(fixed_fee="9", trial_days="400"),
            "trial_days",
            "less than",
        ),
        (form_data(name=""), "name", "required"),
        (form_data(quota_limit="0"), "quota_limit", "greater than or equal to 1"),
    ],
)
@pytest.mark.django_db
def test_a_bad_tier_form_shows_the_error_next_to_the_field_and_writes_nothing(
    world, client_for, data, field, message
):
    response = client_for(world.publisher).post(url(world.org, "new/"), data)
    assert response.status_code == 200
    assert message in str(response.context["form"].errors[field])
    assert message in field_error(response.content, field)
    assert (Tier.objects.count(), TierVersion.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            commercial("PER_UNIT", unit_price="0.0000000000001"),
            "unit_price",
            "12 decimal places",
        ),
        (commercial("PER_UNIT", unit_price=""), "unit_price", "more than 0"),
        (
            commercial("PER_UNIT", fixed_fee="10", unit_price="0"),
            "unit_price",
            "price per request must be more than 0",
        ),
        (
            commercial("FLAT_PLUS_OVERAGE", fixed_fee="5", overage_price="0"),
            "overage_price",
            "more than 0",
        ),
        (
            commercial("FLAT_PLUS_OVERAGE", overage_price="1", overage_block_size="0"),
            "overage_block_size",
            "greater than or equal to 1",
        ),
        (commercial("FLAT"), "pricing_model", "Select a valid choice"),
    ],
)
@pytest.mark.django_db
def test_the_requests_rows_errors_show_next_to_its_fields_and_nothing_is_written(
    world, client_for, data, field, message
):
    response = client_for(world.publisher).post(url(world.org, "new/"), data)
    assert response.status_code == 200
    in_form, on_page = row_errors(response, field)
    assert message in in_form
    assert message in on_page
    # Not on the tier's own fields, nor on the row's other fields.
    assert not response.context["form"].errors
    for other in ("pricing_model", "unit_price", "overage_price", "bands"):
        if other != field:
            assert row_errors(response, other) == ("", "")
    assert (Tier.objects.count(), TierVersion.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_the_fees_and_the_rows_errors_show_at_once(world, client_for):
    data = commercial("PER_UNIT", fixed_fee="-1", unit_price="")
    response = client_for(world.publisher).post(url(world.org, "new/"), data)
    assert "greater than or equal to 0" in field_error(response.content, "fixed_fee")
    assert (
        "price per request must be more than 0" in row_errors(response, "unit_price")[1]
    )
    assert Tier.objects.count() == 0


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ("100 1\n50 1\n* 1", "Line 2: Must be more than 100"),
        ("100 1\n200 1", "Line 2: The last band must be open-ended"),
        ("* 1\n* 1", "Line 1: Only the last band"),
        ("100 -1\n* 1", "Line 1: Enter 0 or more"),
        ("* 0.1234567890123", "Line 1: Use at most 12 decimal places"),
        ("100 1\nabc", "Line 2: write up-to, price and an optional flat fee"),
    ],
)
@pytest.mark.django_db
def test_band_errors_name_their_line(world, client_for, bands, message):
    response = client_for(world.publisher).post(
        url(world.org, "new/"), commercial("VOLUME", bands=bands)
    )
    assert response.status_code == 200
    in_form, on_page = row_errors(response, "bands")
    assert message in in_form
    assert message in on_page
    assert Tier.objects.count() == 0


@pytest.mark.django_db
def test_band_tables_need_a_band_and_a_price(world, client_for):
    client = client_for(world.publisher)
    empty = client.post(url(world.org, "new/"), commercial("GRADUATED", bands=""))
    assert "Add at least one band." in row_errors(empty, "bands")[0]
    assert "Add at least one band." in row_errors(empty, "bands")[1]
    free = client.post(url(world.org, "new/"), commercial("GRADUATED", bands="* 0 0"))
    assert "needs a price or a flat fee" in row_errors(free, "bands")[0]
    assert "needs a price or a flat fee" in row_errors(free, "bands")[1]
    assert Tier.objects.count() == 0


@pytest.mark.django_db
def test_fields_of_another_model_are_ignored(world, client_for):
    # Left over in hidden inputs after the publisher switched model.
    data = commercial(
        "PER_UNIT",
        unit_price="0.01",
        included_units="-4",
        overage_price="-3",
        overage_block_size="x",
        bands="x y z w",
    )
    response = client_for(world.publisher).post(url(world.org, "new/"), data)
    assert response.status_code == 302
    version = Tier.objects.get().current_version
    pricing = version.pricing()
    assert (pricing.fixed_fee, pricing.overage_price, len(pricing.bands)) == (0, 0, 0)
    assert pricing.included_requests == 0
    assert version.requests_price().bands.count() == 0


@pytest.mark.django_db
def test_a_free_tier_ignores_the_hidden_price_fields(world, client_for):
    data = form_data(
        fixed_fee="abc",
        trial_days="-1",
        requests={"pricing_model": "PER_UNIT", "unit_price": "-1"},
    )
    response = client_for(world.publisher).post(url(world.org, "new/"), data)
    assert response.status_code == 302
    version = Tier.objects.get().current_version
    assert version.pricing_model == PricingModel.FREE
    assert (version.fixed_fee, version.meter_prices.count()) == (0, 0)


@pytest.mark.django_db
def test_a_tier_name_is_unique_per_organization(world, client_for):
    make_tier(world.org, name="Gold")
    make_tier(world.other_org, name="Silver")
    client = client_for(world.publisher)
    taken = client.post(url(world.org, "new/"), form_data(name="gold"))
    assert "already a tier named" in str(taken.context["form"].errors["name"])
    assert "already a tier named" in field_error(taken.content, "name")
    client.post(url(world.org, "new/"), form_data(name="Silver"))
    assert Tier.objects.filter(organization=world.org).count() == 2


# -- the live price preview ----------------------------------------------------------


def preview(client, org, data):
    response = client.post(url(org, "preview/"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response


def rows(response, meter="requests"):
    """(quantity, cost) of each row of a meter's table in the preview."""
    (table,) = [t for t in response.context["preview"].tables if t.key == meter]
    return [(row.quantity, row.amount) for row in table.rows]


def amounts(response, meter="requests"):
    return [amount for _quantity, amount in rows(response, meter)]


REQUESTS = ["100", "1,000", "10,000", "100,000", "1,000,000"]


def per_request(*amounts):
    """The rows of a price per request: the decades from 100 to 1,000,000."""
    return list(zip(REQUESTS, amounts, strict=True))


@pytest.mark.parametrize(
    ("data", "expected", "fixed_fee"),
    [
        # 100 × $0.0004 = $0.04 … 1,000,000 × $0.0004 = $400.00
        (
            commercial("PER_UNIT", unit_price="0.0004"),
            per_request("$0.04", "$0.40", "$4.00", "$40.00", "$400.00"),
            None,
        ),
        # A fee on top of a price per request: the same rows, and the fee apart
        (
            commercial("PER_UNIT", fixed_fee="10", unit_price="0.0004"),
            per_request("$0.04", "$0.40", "$4.00", "$40.00", "$400.00"),
            "$10.00",
        ),
        # A fixed fee alone charges nothing by usage: no requests table.
        (commercial(fixed_fee="10"), [], "$10.00"),
        # $19 includes 10,000 (the rows: half, the allowance, 2× and 5×); then 10
        # and 40 blocks of 1,000 at $0.50
        (
            commercial(
                "FLAT_PLUS_OVERAGE",
                fixed_fee="19",
                included_units="10000",
                overage_price="0.50",
                overage_block_size="1000",
            ),
            [
                ("5,000", "$0.00"),
                ("10,000", "$0.00"),
                ("20,000", "$5.00"),
                ("50,000", "$20.00"),
            ],
            "$19.00",
        ),
        # Half the first edge, the edges, 2× and 10× the last: $99 + 50,000 ×
        # $0.001; $99 + $100; + 900,000 × $0.0006; + 1,000,000 and 9,000,000 ×
        # $0.0003
        (
            commercial("GRADUATED", bands=GRADUATED_BANDS),
            [
                ("50,000", "$149.00"),
                ("100,000", "$199.00"),
                ("1,000,000", "$739.00"),
                ("2,000,000", "$1,039.00"),
                ("10,000,000", "$3,439.00"),
            ],
            None,
        ),
        # the whole quantity at its band: 25,000 and 50,000 × $0.002; 100,000 and
        # 500,000 × $0.001 + $5
        (
            commercial("VOLUME", bands="50000 0.002\n* 0.001 5"),
            [
                ("25,000", "$50.00"),
                ("50,000", "$100.00"),
                ("100,000", "$105.00"),
                ("500,000", "$505.00"),
            ],
            None,
        ),
        # yen have no decimals: 100 × ¥0.5 = ¥50
        (
            commercial("PER_UNIT", unit_price="0.5", currency="jpy"),
            per_request("¥50", "¥500", "¥5,000", "¥50,000", "¥500,000"),
            None,
        ),
        # BHD has three: 100 × 0.0001 = 0.010
        (
            commercial("PER_UNIT", unit_price="0.0001", currency="bhd"),
            per_request(
                "BHD 0.010", "BHD 0.100", "BHD 1.000", "BHD 10.000", "BHD 100.000"
            ),
            None,
        ),
    ],
    ids=[
        "per-unit",
        "fee-per-unit",
        "flat",
        "overage",
        "graduated",
        "volume",
        "jpy",
        "bhd",
    ],
)
@pytest.mark.django_db
def test_the_preview_shows_what_a_period_costs(
    world, client_for, data, expected, fixed_fee
):
    response = preview(client_for(world.publisher), world.org, data)
    shown = response.context["preview"]
    if expected:
        assert rows(response) == [(f"{q} requests", a) for q, a in expected]
    else:
        assert shown.tables == []
    assert shown.fixed_fee == fixed_fee
    page = response.content.decode()
    for quantity, amount in expected:
        assert f"{quantity} requests" in page
        assert amount in page
    if fixed_fee:
        assert f"{fixed_fee} per month" in page
    assert Tier.objects.count() == 0


@pytest.mark.django_db
def test_the_preview_adds_the_fee_to_the_example_period(world, client_for):
    data = commercial("PER_UNIT", fixed_fee="10", unit_price="0.0004")
    shown = preview(client_for(world.publisher), world.org, data).context["preview"]
    # $10.00 + 10,000 × $0.0004 = $10.00 + $4.00
    assert (shown.example, shown.example_total) == (
        "the $10.00 fee + 10,000 requests",
        "$14.00",
    )


@pytest.mark.django_db
def test_the_preview_shows_errors_instead_of_amounts(world, client_for):
    bands = "100 1\n50 1\n* 1"
    response = preview(
        client_for(world.publisher), world.org, commercial("GRADUATED", bands=bands)
    )
    page = response.content.decode()
    assert "Fix the price to see a preview" in page
    assert "Requests: Line 2: Must be more than 100" in page
    assert "preview" not in response.context


@pytest.mark.django_db
def test_the_preview_of_a_free_tier(world, client_for):
    response = preview(client_for(world.publisher), world.org, form_data())
    assert "subscribers pay nothing" in response.content.decode()


@pytest.mark.django_db
def test_the_preview_ignores_a_missing_name(world, client_for):
    data = commercial("PER_UNIT", unit_price="0.0004", name="")
    assert amounts(preview(client_for(world.publisher), world.org, data))[2] == "$4.00"


@pytest.mark.django_db
def test_the_preview_is_for_publishers_only(world, client_for):
    data = commercial("PER_UNIT", unit_price="1")
    path = url(world.org, "preview/")
    assert client_for(world.subscriber).post(path, data).status_code == 403
    assert client_for(world.outsider).post(path, data).status_code == 404
    assert client_for(world.publisher).get(path).status_code == 405


# -- editing, limits and archiving ---------------------------------------------------


@pytest.mark.django_db
def test_the_edit_form_starts_with_the_tier_and_its_bands(world, client_for):
    from tests.publisher.helpers import graduated

    tier = make_tier(world.org, price=graduated(), rate_limit=20)
    response = client_for(world.publisher).get(url(world.org, f"{tier.pk}/edit/"))
    form = response.context["form"]
    row = form.requests_form
    assert row["pricing_model"].value() == "GRADUATED"
    assert form["rate_limit"].value() == 20
    assert row["bands"].value() == "100000 0.001 99\n1000000 0.0006\n* 0.0003"
    assert "quota_limit" not in row.fields  # the requests' quota is the tier's
    # half the first edge, the edges, 2× and 10× the last (as in the preview test)
    assert amounts(response) == [
        "$149.00",
        "$199.00",
        "$739.00",
        "$1,039.00",
        "$3,439.00",
    ]


def _fee_and_per_unit():
    return services.TierPrice(
        pricing=Pricing(
            PricingModel.PER_UNIT, "eur", fixed_fee=D("10"), unit_price=D("0.0004")
        ),
        billing_cycle="year",
        trial_days=7,
    )


def _overage_with_tokens():
    return services.TierPrice(
        pricing=Pricing(
            PricingModel.FLAT_PLUS_OVERAGE,
            "usd",
            fixed_fee=D("19"),
            included_requests=10_000,
            overage_price=D("0.50"),
            overage_block_size=1_000,
        ),
        meters=(
            services.MeterPriceSpec(
                meter="tokens",
                pricing=Pricing(
                    PricingModel.GRADUATED,
                    "usd",
                    bands=(Band(1_000_000, D("0")), Band(None, D("0.0000015"), D(5))),
                ),
                quota_limit=50_000_000,
                quota_unit="day",
                stop_on_quota_reach=False,
            ),
        ),
    )


@pytest.mark.parametrize(
    "price",
    [
        lambda: services.TierPrice(),
        lambda: services.TierPrice(
            pricing=Pricing(PricingModel.FLAT, "jpy", fixed_fee=D("3000")),
            billing_cycle="week",
        ),
        lambda: services.TierPrice(
            pricing=Pricing(
                PricingModel.PER_UNIT, "usd", unit_price=D("0.000400000001")
            )
        ),
        _fee_and_per_unit,
        _overage_with_tokens,
        lambda: services.TierPrice(
            pricing=Pricing(
                PricingModel.VOLUME,
                "bhd",
                bands=(Band(50_000, D("0.0009")), Band(None, D("0.0004"), D("2.5"))),
            )
        ),
    ],
    ids=["free", "flat", "per-unit", "fee-per-unit", "overage-and-tokens", "volume"],
)
@pytest.mark.django_db
def test_an_existing_tier_saved_unchanged_through_the_form_keeps_its_version(
    world, client_for, price
):
    api = make_api(world.org)
    add_meter(api, "tokens", "Tokens", "token", scale=1000)
    tier = make_tier(world.org, price=price(), quota_limit=100, quota_unit="day")
    services.api_set_tiers(api=api, tiers=[tier], actor=None)
    # In use, so any change of price would make a version 2.
    subscribe(api, tier, world.subscriber)
    before = services.TierPrice.of(tier.current_version)
    client = client_for(world.publisher)
    page = client.get(url(world.org, f"{tier.pk}/edit/")).content

    response = client.post(
        url(world.org, f"{tier.pk}/edit/"), submitted_values(page, "tier-form")
    )

    assert response.status_code == 302, response.context["form"].pricing_errors()
    tier.refresh_from_db()
    assert list(tier.versions.values_list("number", flat=True)) == [1]
    assert services.TierPrice.of(tier.current_version) == before
    assert (tier.quota_limit, tier.quota_unit) == (100, "day")


@pytest.mark.django_db(transaction=True)
def test_changing_limits_applies_at_once_at_the_gateway(metering, gateway, client_for):
    """Limits are no new version: the gateway applies them to the next request."""
    tier = metering.tier
    assert gateway.get(GATEWAY_URL, key=metering.key).status_code == 200
    assert gateway.get(GATEWAY_URL, key=metering.key).status_code == 200  # no limit
    response = client_for(User.objects.get(email="owner@acme.test")).post(
        url(metering.org, f"{tier.pk}/edit/"),
        form_data(name="Bronze", quota_limit="500", rate_limit="1", rate_unit="minute"),
    )
    assert response.status_code == 302
    tier.refresh_from_db()
    assert (tier.quota_limit, tier.rate_limit, tier.rate_unit) == (500, 1, "minute")
    assert tier.versions.count() == 1
    assert gateway.get(GATEWAY_URL, key=metering.key).status_code == 200
    assert gateway.get(GATEWAY_URL, key=metering.key).status_code == 429


@pytest.mark.django_db
def test_saving_without_changes_leaves_the_gateways_cache_alone(
    world, client_for, redis_db, django_capture_on_commit_callbacks
):
    tier = make_tier(world.org, name="Gold", quota_limit=100)
    generation = redis_db.get(meter.GEN)  # every invalidation moves it
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(world.publisher).post(
            url(world.org, f"{tier.pk}/edit/"),
            form_data(name="Gold", quota_limit="100"),
        )
    assert response.status_code == 302
    assert redis_db.get(meter.GEN) == generation
    with django_capture_on_commit_callbacks(execute=True):
        client_for(world.publisher).post(
            url(world.org, f"{tier.pk}/edit/"),
            form_data(name="Gold", quota_limit="101"),
        )
    assert redis_db.get(meter.GEN) != generation  # (what a change does)


@pytest.mark.django_db
def test_a_publisher_archives_and_unarchives_a_tier(world, client_for):
    tier = make_tier(world.org)
    api = make_api(world.org, tiers=[tier], publish=True)
    client = client_for(world.publisher)
    page = client.get(url(world.org, f"{tier.pk}/archive/")).content.decode()
    assert "would have no tier left" in page and api.name in page

    client.post(url(world.org, f"{tier.pk}/archive/"), {"archive": "1"})
    tier.refresh_from_db()
    assert tier.archived_at is not None
    assert ApiTier.objects.filter(api=api, tier=tier).exists()  # offers stay
    listed = client.get(url(world.org)).context["tiers"]
    assert tier not in listed
    assert tier in client.get(url(world.org) + "?archived=1").context["tiers"]

    client.post(url(world.org, f"{tier.pk}/archive/"), {"archive": "0"})
    tier.refresh_from_db()
    assert tier.archived_at is None


@pytest.mark.django_db
def test_tier_pages_of_another_organization_are_404(world, client_for):
    theirs = make_tier(world.other_org, name="Theirs")
    client = client_for(world.publisher)
    for path in (f"{theirs.pk}/", f"{theirs.pk}/edit/", f"{theirs.pk}/archive/"):
        assert client.get(url(world.org, path)).status_code == 404
    assert client.post(url(world.org, f"{theirs.pk}/archive/")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.archived_at is None


@pytest.mark.django_db
def test_a_subscriber_gets_403_and_an_outsider_404_on_tier_pages(world, client_for):
    tier = make_tier(world.org)
    for user, status in ((world.subscriber, 403), (world.outsider, 404)):
        client = client_for(user)
        for path in (
            "",
            "new/",
            f"{tier.pk}/",
            f"{tier.pk}/edit/",
            f"{tier.pk}/archive/",
        ):
            assert client.get(url(world.org, path)).status_code == status
        assert client.post(url(world.org, "new/"), form_data()).status_code == status
    assert Tier.objects.count() == 1


# -- offering tiers on APIs ----------------------------------------------------------


@pytest.mark.django_db
def test_a_publisher_chooses_the_tiers_of_an_api(world, client_for):
    gold, silver = (
        make_tier(world.org, name="Gold"),
        make_tier(world.org, name="Silver"),
    )
    api = make_api(world.org)
    client = client_for(world.publisher)
    path = f"/t/acme/publisher/apis/{api.pk}/tiers/"

    client.post(path, {"tiers": [gold.pk, silver.pk]})
    assert set(api.tiers.all()) == {gold, silver}
    client.post(path, {"tiers": [silver.pk]})
    assert list(api.tiers.all()) == [silver]


@pytest.mark.django_db
def test_archived_and_foreign_tiers_cannot_be_offered(world, client_for):
    archived = make_tier(world.org, name="Old")
    services.tier_archive(tier=archived, actor=None)
    theirs = make_tier(world.other_org, name="Theirs")
    api = make_api(world.org)
    client = client_for(world.publisher)
    path = f"/t/acme/publisher/apis/{api.pk}/tiers/"
    for tier in (archived, theirs):
        response = client.post(path, {"tiers": [tier.pk]})
        assert response.status_code == 200
        assert "Select a valid choice" in str(response.context["form"].errors["tiers"])
    assert ApiTier.objects.count() == 0


@pytest.mark.django_db
def test_a_published_api_keeps_at_least_one_tier(world, client_for):
    tier = make_tier(world.org)
    api = make_api(world.org, tiers=[tier], publish=True)
    response = client_for(world.publisher).post(
        f"/t/acme/publisher/apis/{api.pk}/tiers/", {}
    )
    assert "must stay offered" in str(response.context["form"].errors["tiers"])
    assert list(api.tiers.all()) == [tier]


@pytest.mark.django_db
def test_a_retired_api_takes_no_new_tiers(world):
    gold, silver = (
        make_tier(world.org, name="Gold"),
        make_tier(world.org, name="Silver"),
    )
    api = make_api(world.org, tiers=[gold], publish=True)
    services.api_transition(api=api, action="retire", actor=None)
    with pytest.raises(ValidationError):
        services.api_set_tiers(api=api, tiers=[gold, silver], actor=None)
    assert list(api.tiers.all()) == [gold]


BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint
INT_MAX = 2**31 - 1  # PostgreSQL integer


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (form_data(quota_limit=str(BIGINT_MAX + 1)), "quota_limit"),
        (form_data(rate_limit=str(INT_MAX + 1)), "rate_limit"),
        (
            commercial(
                "FLAT_PLUS_OVERAGE",
                fixed_fee="9",
                included_units=str(BIGINT_MAX + 1),
                overage_price="1",
            ),
            "meter-requests-included_units",
        ),
        (
            commercial(
                "FLAT_PLUS_OVERAGE",
                fixed_fee="9",
                overage_price="1",
                overage_block_size=str(INT_MAX + 1),
            ),
            "meter-requests-overage_block_size",
        ),
        (form_data(quota_limit=str(10**40)), "quota_limit"),
    ],
)
@pytest.mark.django_db
def test_integers_past_the_databases_range_are_a_form_error(
    world, client_for, data, field
):
    response = client_for(world.publisher).post(url(world.org, "new/"), data)

    assert response.status_code == 200
    assert "Ensure this value is less than or equal to" in field_error(
        response.content, field
    )
    assert (Tier.objects.count(), TierVersion.objects.count()) == (0, 0)


@pytest.mark.django_db
def test_a_band_up_to_past_the_databases_range_is_a_form_error(world, client_for):
    bands = f"{BIGINT_MAX + 1} 1\n* 1"
    response = client_for(world.publisher).post(
        url(world.org, "new/"), commercial("GRADUATED", bands=bands)
    )

    assert response.status_code == 200
    assert f"Line 1: “up to” must be 1 to {BIGINT_MAX:,}" in field_error(
        response.content, "meter-requests-bands"
    )
    assert Tier.objects.count() == 0


@pytest.mark.django_db
def test_the_largest_values_the_database_holds_are_accepted(world, client_for):
    data = commercial(
        "GRADUATED",
        bands=f"{BIGINT_MAX} 1\n* 1",
        quota_limit=str(BIGINT_MAX),
        rate_limit=str(INT_MAX),
    )
    response = client_for(world.publisher).post(url(world.org, "new/"), data)

    assert response.status_code == 302
    tier = Tier.objects.get()
    assert (tier.quota_limit, tier.rate_limit) == (BIGINT_MAX, INT_MAX)
    assert tier.current_version.pricing().bands[0].up_to == BIGINT_MAX
