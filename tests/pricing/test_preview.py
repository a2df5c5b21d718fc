"""The price preview's quantities and quota arithmetic (pricing.preview)."""

from decimal import Decimal

import pytest

from pricing.preview import Quota, meter_preview, period_limit, quantities
from pricing.rating import Band, Pricing, PricingModel

D = Decimal


@pytest.mark.parametrize(
    ("unit", "cycle", "expected"),
    [
        ("period", "month", 50),
        ("month", "month", 50),
        ("month", "year", 600),
        ("month", "week", 50),
        ("day", "week", 350),
        ("day", "month", 1_550),
        ("day", "year", 18_300),
        ("hour", "month", 50 * 24 * 31),
        ("minute", "week", 50 * 60 * 24 * 7),
    ],
)
def test_a_quota_is_the_most_a_period_can_use(unit, cycle, expected):
    assert period_limit(Quota(50, unit, hard=True), cycle) == expected


def test_per_unit_quantities_are_decades_of_the_display_scale():
    pricing = Pricing(model=PricingModel.PER_UNIT, currency="usd", unit_price=D(1))
    assert quantities(pricing, 1_000) == (
        [100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000],
        10_000_000,
    )


def test_band_quantities_are_the_edges_with_half_the_first_and_multiples_of_the_last():
    pricing = Pricing(
        model=PricingModel.VOLUME,
        currency="usd",
        bands=(Band(10, D(1)), Band(100, D("0.5")), Band(None, D("0.1"))),
    )
    assert quantities(pricing) == ([5, 10, 100, 200, 1_000], 10)


def test_a_soft_quota_adds_its_row_and_marks_the_rows_above():
    pricing = Pricing(model=PricingModel.PER_UNIT, currency="usd", unit_price=D(1))
    preview = meter_preview(pricing, quota=Quota(5_000, "period", hard=False))
    assert [(r.quantity, r.at_quota, r.over_quota) for r in preview.rows] == [
        (100, False, False),
        (1_000, False, False),
        (5_000, True, False),
        (10_000, False, True),
        (100_000, False, True),
        (1_000_000, False, True),
    ]
    assert preview.typical.quantity == 10_000


def test_a_hard_quota_below_every_row_still_shows_two():
    pricing = Pricing(model=PricingModel.PER_UNIT, currency="jpy", unit_price=D(3))
    preview = meter_preview(pricing, quota=Quota(10, "day", hard=True), cycle="week")
    assert [(r.quantity, r.amount_minor) for r in preview.rows] == [
        (35, 105),
        (70, 210),
    ]
    assert preview.typical.quantity == 70
