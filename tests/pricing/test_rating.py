"""Rating: every pricing model, worked by hand, and properties checked against
brute-force oracles.

Expected amounts are written as a person computes them, in the comment next to each
number; none is recomputed with the code under test.
"""

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pricing.rating import (
    Band,
    InvalidPricing,
    Line,
    LineKind,
    Pricing,
    PricingModel,
    application_fee_minor,
    fixed_fee_lines,
    period_cost_minor,
    price_preview,
    proration_lines,
    split_fixed_fee,
    total_minor,
    usage_lines,
    validate_pricing,
    with_fixed_fee,
)

D = Decimal
M = PricingModel


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def amounts(lines):
    return [line.amount_minor for line in lines]


def per_unit(price, currency="usd"):
    return Pricing(M.PER_UNIT, currency, unit_price=D(price))


# -- FREE and FLAT ----------------------------------------------------------------


def test_free_charges_nothing():
    free = Pricing(M.FREE, "usd")
    assert usage_lines(free, 1_000_000) == []
    assert (
        fixed_fee_lines(free, period_start=utc(2027, 3, 1), period_end=utc(2027, 4, 1))
        == []
    )
    assert period_cost_minor(free, 1_000_000) == 0


def test_free_needs_no_currency():
    assert validate_pricing(Pricing(M.FREE, "")) == []
    assert usage_lines(Pricing(M.FREE, ""), 5) == []


def test_flat_charges_its_fee_in_advance_and_no_usage():
    flat = Pricing(M.FLAT, "usd", fixed_fee=D("49.00"))
    assert usage_lines(flat, 1_000_000) == []
    start, end = utc(2027, 3, 1, 10), utc(2027, 4, 1, 10)
    assert fixed_fee_lines(flat, period_start=start, period_end=end) == [
        Line(
            kind=LineKind.FIXED,
            description="Flat fee 1 Mar 2027 – 1 Apr 2027",
            quantity=1,
            unit_price=D("49.00"),
            amount_minor=4900,
            currency="usd",
            period_start=start,
            period_end=end,
        )
    ]
    assert period_cost_minor(flat, 0) == 4900
    assert period_cost_minor(flat, 10**9) == 4900


def test_a_flat_fee_is_rounded_half_up_to_the_currency():
    start, end = utc(2027, 3, 1), utc(2027, 4, 1)
    # $9.995 = 999.5 cents -> 1,000
    lines = fixed_fee_lines(
        Pricing(M.FLAT, "usd", fixed_fee=D("9.995")), period_start=start, period_end=end
    )
    assert amounts(lines) == [1000]
    # ¥980.5 -> 981 (banker's rounding would give 980)
    lines = fixed_fee_lines(
        Pricing(M.FLAT, "jpy", fixed_fee=D("980.5")), period_start=start, period_end=end
    )
    assert amounts(lines) == [981]
    assert lines[0].description == "Flat fee 1 Mar 2027 – 1 Apr 2027"
    # BHD 4.5 = 4,500 fils
    lines = fixed_fee_lines(
        Pricing(M.FLAT, "bhd", fixed_fee=D("4.5")), period_start=start, period_end=end
    )
    assert amounts(lines) == [4500]


def test_fixed_fee_lines_need_a_real_period():
    flat = Pricing(M.FLAT, "usd", fixed_fee=D(10))
    with pytest.raises(ValueError):
        fixed_fee_lines(flat, period_start=utc(2027, 4, 1), period_end=utc(2027, 4, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        fixed_fee_lines(
            flat, period_start=datetime(2027, 3, 1), period_end=utc(2027, 4, 1)
        )


def test_a_price_without_a_fixed_fee_has_no_fixed_fee_line():
    start, end = utc(2027, 3, 1), utc(2027, 4, 1)
    assert fixed_fee_lines(per_unit("0.01"), period_start=start, period_end=end) == []


# -- PER_UNIT ---------------------------------------------------------------------


def test_per_unit_usd():
    # 12,345 requests at $0.0004 = $4.938 = 493.8 cents -> 494
    assert usage_lines(per_unit("0.0004"), 12_345) == [
        Line(
            kind=LineKind.USAGE,
            description="12,345 requests at $0.0004",
            quantity=12_345,
            unit_price=D("0.0004"),
            amount_minor=494,
            currency="usd",
        )
    ]


@pytest.mark.parametrize(
    ("price", "quantity", "minor"),
    [
        ("0.0005", 1, 0),  # $0.0005 = 0.05 cents -> 0
        ("0.0005", 10, 1),  # $0.005 = 0.5 cent -> 1 (half-up)
        ("0.0005", 50, 3),  # $0.025 = 2.5 cents -> 3 (banker's: 2)
        ("0.0005", 70, 4),  # $0.035 = 3.5 cents -> 4
        ("0.0005", 69, 3),  # $0.0345 = 3.45 cents -> 3
        # 12-decimal prices: $0.000000000001 per request
        ("0.000000000001", 1_000_000_000, 0),  # $0.001 = 0.1 cent -> 0
        ("0.000000000001", 5_000_000_000, 1),  # $0.005 = 0.5 cent -> 1
        ("0.000000000001", 4_999_999_999, 0),  # $0.004999999999 -> 0
        # $0.123456789012 x 1,000 = $123.456789012 -> 12,346 cents
        ("0.123456789012", 1_000, 12_346),
        ("2.50", 3, 750),
    ],
)
def test_per_unit_rounds_each_line_half_up(price, quantity, minor):
    assert amounts(usage_lines(per_unit(price), quantity)) == [minor]


def test_per_unit_zero_decimal_currency():
    # 3 x ¥0.5 = ¥1.5 -> ¥2; 5 x ¥0.5 = ¥2.5 -> ¥3 (banker's: ¥2)
    assert amounts(usage_lines(per_unit("0.5", "jpy"), 3)) == [2]
    [line] = usage_lines(per_unit("0.5", "jpy"), 5)
    assert line.amount_minor == 3
    assert line.description == "5 requests at ¥0.5"
    # 1,234 x ₩7 = ₩8,638
    assert amounts(usage_lines(per_unit("7", "krw"), 1_234)) == [8_638]


def test_per_unit_three_decimal_currency():
    # 7 x BHD 0.0005 = BHD 0.0035 = 3.5 fils -> 4 fils
    [line] = usage_lines(per_unit("0.0005", "bhd"), 7)
    assert line.amount_minor == 4
    assert line.description == "7 requests at BHD 0.0005"
    # 12,345 x KWD 0.0004 = KWD 4.938 = 4,938 fils exactly
    assert amounts(usage_lines(per_unit("0.0004", "kwd"), 12_345)) == [4_938]


def test_per_unit_with_no_usage_has_no_line():
    assert usage_lines(per_unit("0.0004"), 0) == []


def test_one_request_reads_in_the_singular():
    [line] = usage_lines(per_unit("0.10"), 1)
    assert line.description == "1 request at $0.10"


def test_usage_lines_carry_the_period_when_given():
    start, end = utc(2027, 3, 1), utc(2027, 4, 1)
    [line] = usage_lines(per_unit("0.01"), 3, period_start=start, period_end=end)
    assert (line.period_start, line.period_end) == (start, end)
    with pytest.raises(ValueError):
        usage_lines(per_unit("0.01"), 3, period_start=start)


def test_quantity_must_be_a_non_negative_int():
    with pytest.raises(ValueError):
        usage_lines(per_unit("0.01"), -1)
    with pytest.raises(TypeError):
        usage_lines(per_unit("0.01"), 1.0)
    with pytest.raises(TypeError):
        usage_lines(per_unit("0.01"), D(1))


# -- FLAT_PLUS_OVERAGE ------------------------------------------------------------


def blocks_of_1000():
    # $29 a period includes 10,000 requests; then $5 per block of 1,000
    return Pricing(
        M.FLAT_PLUS_OVERAGE,
        "usd",
        fixed_fee=D(29),
        included_requests=10_000,
        overage_price=D(5),
        overage_block_size=1_000,
    )


@pytest.mark.parametrize(
    ("quantity", "blocks"),
    [
        (0, 0),
        (9_999, 0),
        (10_000, 0),  # exactly the allowance: no overage
        (10_001, 1),  # one request over is a whole block
        (11_000, 1),
        (11_001, 2),
        (12_345, 3),  # 2,345 over -> 3 blocks
        (13_000, 3),
        (13_001, 4),
    ],
)
def test_overage_counts_partial_blocks_as_whole(quantity, blocks):
    lines = usage_lines(blocks_of_1000(), quantity)
    if blocks == 0:
        assert lines == []
    else:
        [line] = lines
        assert line.kind is LineKind.OVERAGE
        assert line.quantity == blocks
        assert line.unit_price == D(5)
        assert line.amount_minor == blocks * 500


def test_overage_line_describes_the_blocks():
    [line] = usage_lines(blocks_of_1000(), 12_345)
    assert line.description == (
        "Overage: 3 blocks of 1,000 requests at $5.00 per block"
        " (2,345 requests above 10,000 included)"
    )
    [line] = usage_lines(blocks_of_1000(), 10_001)
    assert line.description.startswith("Overage: 1 block of 1,000 requests at $5.00")


def test_flat_plus_overage_fee_and_period_cost():
    start, end = utc(2027, 3, 1), utc(2027, 4, 1)
    [fee] = fixed_fee_lines(blocks_of_1000(), period_start=start, period_end=end)
    assert fee.amount_minor == 2900
    assert fee.description == (
        "Flat fee 1 Mar 2027 – 1 Apr 2027 (includes 10,000 requests)"
    )
    # $29 + 3 blocks x $5 = $44
    assert period_cost_minor(blocks_of_1000(), 12_345) == 4_400
    # 10,000 -> $29; 100,000 -> 90 blocks -> $29 + $450; 1,000,000 -> 990 blocks
    assert price_preview(blocks_of_1000()) == [
        (10_000, 2_900),
        (100_000, 47_900),
        (1_000_000, 497_900),
    ]


def test_overage_per_request_by_default():
    pricing = Pricing(
        M.FLAT_PLUS_OVERAGE,
        "usd",
        fixed_fee=D(10),
        included_requests=10_000,
        overage_price=D("0.002"),
    )
    # 250 over x $0.002 = $0.50
    [line] = usage_lines(pricing, 10_250)
    assert (line.quantity, line.amount_minor) == (250, 50)
    assert line.description == ("Overage: 250 requests above 10,000 included at $0.002")


def test_overage_in_yen_rounds_half_up():
    pricing = Pricing(
        M.FLAT_PLUS_OVERAGE,
        "jpy",
        fixed_fee=D(3000),
        included_requests=1_000,
        overage_price=D("0.3"),
    )
    # 5 over x ¥0.3 = ¥1.5 -> ¥2
    assert amounts(usage_lines(pricing, 1_005)) == [2]
    assert period_cost_minor(pricing, 1_005) == 3_002


def test_overage_without_a_fee_or_allowance():
    pricing = Pricing(
        M.FLAT_PLUS_OVERAGE, "usd", overage_price=D(1), overage_block_size=100
    )
    [line] = usage_lines(pricing, 250)
    # 250 requests -> 3 blocks of 100 at $1
    assert (line.quantity, line.amount_minor) == (3, 300)
    assert line.description == (
        "Overage: 3 blocks of 100 requests at $1.00 per block (250 requests)"
    )
    assert (
        fixed_fee_lines(
            pricing, period_start=utc(2027, 1, 1), period_end=utc(2027, 2, 1)
        )
        == []
    )


# -- GRADUATED --------------------------------------------------------------------


def graduated():
    # first 1,000 free, then $0.001 up to 10,000, then $0.0005
    return Pricing(
        M.GRADUATED,
        "usd",
        bands=(
            Band(1_000, D(0)),
            Band(10_000, D("0.001")),
            Band(None, D("0.0005")),
        ),
    )


def test_graduated_prices_each_request_in_its_band():
    lines = usage_lines(graduated(), 12_345)
    assert [
        (line.kind, line.description, line.quantity, line.amount_minor)
        for line in lines
    ] == [
        # 1,000 x $0 = $0
        (LineKind.BAND, "1–1,000 requests at $0.00", 1_000, 0),
        # 9,000 x $0.001 = $9.00
        (LineKind.BAND, "1,001–10,000 requests at $0.001", 9_000, 900),
        # 2,345 x $0.0005 = $1.1725 -> 117 cents
        (LineKind.BAND, "10,001–12,345 requests at $0.0005", 2_345, 117),
    ]
    assert total_minor(lines) == 1_017


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, []),
        (1, [(1, 0)]),
        (1_000, [(1_000, 0)]),  # exactly at up_to: still band 1 only
        # one past: request 1,001 at $0.001 = 0.1 cent -> 0
        (1_001, [(1_000, 0), (1, 0)]),
        (1_005, [(1_000, 0), (5, 1)]),  # 5 x $0.001 = 0.5 cent -> 1
        (10_000, [(1_000, 0), (9_000, 900)]),
        # request 10,001 at $0.0005 = 0.05 cent -> 0
        (10_001, [(1_000, 0), (9_000, 900), (1, 0)]),
    ],
)
def test_graduated_band_boundaries(quantity, expected):
    lines = usage_lines(graduated(), quantity)
    assert [(line.quantity, line.amount_minor) for line in lines] == expected


def test_graduated_single_request_description():
    lines = usage_lines(graduated(), 1_001)
    assert lines[1].description == "Request 1,001 at $0.001"


def flat_fee_bands():
    # up to 100: $0.01 each + $5 once entered; above: $0.005 each + $10
    return Pricing(
        M.GRADUATED,
        "usd",
        bands=(Band(100, D("0.01"), D(5)), Band(None, D("0.005"), D(10))),
    )


def test_graduated_band_flat_fees_are_separate_lines():
    lines = usage_lines(flat_fee_bands(), 101)
    assert [
        (line.kind, line.description, line.quantity, line.amount_minor)
        for line in lines
    ] == [
        (LineKind.BAND, "1–100 requests at $0.01", 100, 100),
        (LineKind.BAND_FLAT, "Flat fee for band 1 (1–100 requests)", 1, 500),
        # 1 x $0.005 = 0.5 cent -> 1
        (LineKind.BAND, "Request 101 at $0.005", 1, 1),
        (LineKind.BAND_FLAT, "Flat fee for band 2 (101+ requests)", 1, 1_000),
    ]
    assert total_minor(lines) == 1_601


def test_graduated_band_flat_fee_only_once_the_band_is_entered():
    # 100 requests: $1.00 + $5 flat; band 2 not entered
    assert amounts(usage_lines(flat_fee_bands(), 100)) == [100, 500]


def test_graduated_quantity_zero_charges_the_first_band_flat_fee_like_stripe():
    lines = usage_lines(flat_fee_bands(), 0)
    assert [(line.kind, line.amount_minor) for line in lines] == [
        (LineKind.BAND_FLAT, 500)
    ]
    assert period_cost_minor(flat_fee_bands(), 0) == 500


def test_lines_are_rounded_one_by_one_never_on_a_sum():
    pricing = Pricing(
        M.GRADUATED, "usd", bands=(Band(1, D("0.005")), Band(None, D("0.005")))
    )
    # two lines of $0.005 = 0.5 cent each, each rounded to 1 cent: 2 cents
    # (rounding their $0.01 sum instead would give 1 cent)
    assert amounts(usage_lines(pricing, 2)) == [1, 1]
    assert period_cost_minor(pricing, 2) == 2
    pricing = Pricing(
        M.GRADUATED, "usd", bands=(Band(1, D("0.004")), Band(None, D("0.004")))
    )
    # 0.4 cent twice: each line rounds to 0, though the sum is 0.8 cent
    assert period_cost_minor(pricing, 2) == 0


def test_graduated_in_yen_and_dinars():
    yen = Pricing(
        M.GRADUATED,
        "jpy",
        bands=(Band(10, D("1.5")), Band(None, D("0.25"), D(100))),
    )
    # 10 x ¥1.5 = ¥15; 3 x ¥0.25 = ¥0.75 -> ¥1; + ¥100 flat
    assert amounts(usage_lines(yen, 13)) == [15, 1, 100]
    dinar = Pricing(
        M.GRADUATED,
        "bhd",
        bands=(Band(1_000, D("0.0015")), Band(None, D("0.0011"))),
    )
    # 1,000 x 0.0015 = BHD 1.5 = 1,500 fils; 5 x 0.0011 = 0.0055 -> 6 fils
    assert amounts(usage_lines(dinar, 1_005)) == [1_500, 6]


# -- VOLUME -----------------------------------------------------------------------


def volume():
    return Pricing(
        M.VOLUME,
        "usd",
        bands=(
            Band(1_000, D("0.002")),
            Band(10_000, D("0.0015"), D(1)),
            Band(None, D("0.001"), D(5)),
        ),
    )


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, []),
        (1, [0]),  # 1 x $0.002 = 0.2 cent -> 0
        (1_000, [200]),  # 1,000 x $0.002 = $2.00, band 1 has no flat fee
        (1_001, [150, 100]),  # 1,001 x $0.0015 = $1.5015 -> 150; + $1 flat
        (10_000, [1_500, 100]),  # 10,000 x $0.0015 = $15.00; + $1
        (10_001, [1_000, 500]),  # 10,001 x $0.001 = $10.001 -> 1,000; + $5
    ],
)
def test_volume_prices_everything_at_the_band_of_the_total(quantity, expected):
    assert amounts(usage_lines(volume(), quantity)) == expected


def test_volume_line_descriptions():
    lines = usage_lines(volume(), 1_001)
    assert [(line.kind, line.description, line.quantity) for line in lines] == [
        (
            LineKind.BAND,
            "1,001 requests at $0.0015 (band 2: 1,001–10,000 requests)",
            1_001,
        ),
        (LineKind.BAND_FLAT, "Flat fee for band 2 (1,001–10,000 requests)", 1),
    ]
    [band, _flat] = usage_lines(volume(), 20_000)
    assert band.description == "20,000 requests at $0.001 (band 3: 10,001+ requests)"


def test_volume_can_cost_less_for_more():
    assert period_cost_minor(volume(), 10_000) == 1_600
    assert period_cost_minor(volume(), 10_001) == 1_500


def test_volume_quantity_zero_charges_the_first_band_flat_fee_like_stripe():
    pricing = Pricing(
        M.VOLUME, "usd", bands=(Band(1_000, D("0.002"), D(3)), Band(None, D("0.001")))
    )
    lines = usage_lines(pricing, 0)
    assert [(line.kind, line.description, line.amount_minor) for line in lines] == [
        (LineKind.BAND_FLAT, "Flat fee for band 1 (1–1,000 requests)", 300)
    ]


def test_volume_in_yen():
    pricing = Pricing(M.VOLUME, "jpy", bands=(Band(100, D(2)), Band(None, D("1.5"))))
    # 101 x ¥1.5 = ¥151.5 -> ¥152
    assert amounts(usage_lines(pricing, 101)) == [152]


# -- proration --------------------------------------------------------------------

APRIL = (utc(2027, 4, 1), utc(2027, 5, 1))  # 30 days = 2,592,000 seconds


def flat(fee, currency="usd"):
    return Pricing(M.FLAT, currency, fixed_fee=D(fee))


def prorate(old, new, changed_at, period=APRIL, **names):
    start, end = period
    return proration_lines(
        old=old,
        new=new,
        period_start=start,
        period_end=end,
        changed_at=changed_at,
        **names,
    )


def test_an_upgrade_after_exactly_10_of_30_days():
    lines = prorate(
        flat(30), flat(90), utc(2027, 4, 11), old_name="Gold", new_name="Platinum"
    )
    assert lines == [
        Line(
            kind=LineKind.PRORATION_CREDIT,
            description=(
                "Unused time on Gold (11 Apr 2027 00:00 – 1 May 2027 00:00 UTC)"
            ),
            quantity=1,
            unit_price=D("-20.00"),  # 20 of 30 days of $30
            amount_minor=-2_000,
            currency="usd",
            period_start=utc(2027, 4, 11),
            period_end=utc(2027, 5, 1),
        ),
        Line(
            kind=LineKind.PRORATION_CHARGE,
            description=(
                "Remaining time on Platinum (11 Apr 2027 00:00 – 1 May 2027 00:00 UTC)"
            ),
            quantity=1,
            unit_price=D("60.00"),  # 20 of 30 days of $90
            amount_minor=6_000,
            currency="usd",
            period_start=utc(2027, 4, 11),
            period_end=utc(2027, 5, 1),
        ),
    ]


def test_proration_is_to_the_second():
    # one second after 10 days: 1,727,999 of 2,592,000 seconds are left
    # $25,920 x 1,727,999 / 2,592,000 = $17,279.99 exactly
    # $51,840 x 1,727,999 / 2,592,000 = $34,559.98 exactly
    lines = prorate(flat(25_920), flat(51_840), utc(2027, 4, 11, 0, 0, 1))
    assert amounts(lines) == [-1_727_999, 3_455_998]
    assert lines[0].description == (
        "Unused time on the previous tier (11 Apr 2027 00:00:01 – 1 May 2027 00:00 UTC)"
    )


def test_proration_uses_the_real_length_of_the_period():
    # February 2027 has 28 days; after 14 days exactly half is left
    february = (utc(2027, 2, 1), utc(2027, 3, 1))
    lines = prorate(flat(31), flat(45), utc(2027, 2, 15), period=february)
    assert amounts(lines) == [-1_550, 2_250]


def test_proration_rounds_each_line_half_up():
    # half of $0.03 = 1.5 cents -> 2; half of $0.05 = 2.5 cents -> 3 (banker's: 2)
    lines = prorate(flat("0.03"), flat("0.05"), utc(2027, 4, 16))
    assert amounts(lines) == [-2, 3]
    assert [line.unit_price for line in lines] == [D("-0.02"), D("0.03")]


def test_proration_in_yen_and_dinars():
    # 2/3 of ¥500 = ¥333.33 -> ¥333; 2/3 of ¥1,000 = ¥666.67 -> ¥667
    assert amounts(prorate(flat(500, "jpy"), flat(1000, "jpy"), utc(2027, 4, 11))) == [
        -333,
        667,
    ]
    # 2/3 of BHD 10 = 6.6667 -> 6,667 fils; 2/3 of BHD 20 = 13.3333 -> 13,333 fils
    assert amounts(prorate(flat(10, "bhd"), flat(20, "bhd"), utc(2027, 4, 11))) == [
        -6_667,
        13_333,
    ]


def test_proration_of_flat_plus_overage_fees():
    # 2/3 of $29 = $19.333 -> $19.33; 2/3 of $99 = $66.00
    lines = prorate(blocks_of_1000(), flat(99), utc(2027, 4, 11))
    assert amounts(lines) == [-1_933, 6_600]


def test_no_proration_line_for_a_model_without_a_fixed_fee():
    assert amounts(prorate(per_unit("0.001"), flat(90), utc(2027, 4, 11))) == [6_000]
    assert amounts(prorate(flat(30), graduated(), utc(2027, 4, 11))) == [-2_000]
    assert prorate(Pricing(M.FREE, ""), graduated(), utc(2027, 4, 11)) == []


def test_proration_at_the_ends_of_the_period():
    assert amounts(prorate(flat(30), flat(90), APRIL[0])) == [-3_000, 9_000]
    assert prorate(flat(30), flat(90), APRIL[1]) == []


def test_proration_refuses_a_change_outside_the_period_or_across_currencies():
    with pytest.raises(ValueError):
        prorate(flat(30), flat(90), utc(2027, 5, 1, 0, 0, 1))
    with pytest.raises(ValueError):
        prorate(flat(30), flat(90), utc(2027, 3, 31))
    with pytest.raises(ValueError, match="currencies"):
        prorate(flat(30), flat(90, "eur"), utc(2027, 4, 11))


# -- totals and commission --------------------------------------------------------


def test_total_is_the_sum_of_rounded_lines():
    lines = usage_lines(graduated(), 12_345)
    lines += prorate(flat(30), flat(90), utc(2027, 4, 11))
    # 0 + 900 + 117 - 2,000 + 6,000
    assert total_minor(lines) == 5_017
    assert total_minor([]) == 0


def test_total_refuses_mixed_currencies():
    lines = usage_lines(per_unit("1"), 1) + usage_lines(per_unit("1", "eur"), 1)
    with pytest.raises(ValueError):
        total_minor(lines)


@pytest.mark.parametrize(
    ("total", "percent", "fee"),
    [
        (10_000, D("2.5"), 250),
        (1_017, D("2.5"), 25),  # 25.425 -> 25
        (1_030, D("2.5"), 26),  # 25.75 -> 26
        (1_060, D("2.5"), 27),  # 26.5 -> 27 (banker's: 26)
        (1_000, D("12.345"), 123),  # 123.45 -> 123
        (1, D(50), 1),  # 0.5 -> 1
        (999, 10, 100),  # 99.9 -> 100
        (10_000, D(0), 0),
        (10_000, D(100), 10_000),
        (0, D(10), 0),
        (-500, D(10), 0),  # a credit invoice carries no fee
    ],
)
def test_application_fee_is_half_up_and_never_negative(total, percent, fee):
    assert application_fee_minor(total, percent) == fee


def test_application_fee_refuses_bad_percentages():
    with pytest.raises(TypeError):
        application_fee_minor(1_000, 2.5)
    with pytest.raises(ValueError):
        application_fee_minor(1_000, D(101))
    with pytest.raises(ValueError):
        application_fee_minor(1_000, D(-1))
    with pytest.raises(ValueError):
        application_fee_minor(1_000, D("NaN"))


def test_price_preview_for_graduated():
    # 10,000: $9.00; 100,000: $9 + 90,000 x $0.0005 = $54; 1,000,000: $9 + $495
    assert price_preview(graduated()) == [
        (10_000, 900),
        (100_000, 5_400),
        (1_000_000, 50_400),
    ]
    assert price_preview(graduated(), quantities=[0, 1_001]) == [(0, 0), (1_001, 0)]


# -- validation -------------------------------------------------------------------


def fields(pricing):
    return [field for field, _message in validate_pricing(pricing)]


@pytest.mark.parametrize(
    "pricing",
    [
        Pricing(M.FREE, "usd"),
        flat("9.99"),
        per_unit("0.000000000001"),
        per_unit("0.1000000000000000"),  # 16 places, but only 1 significant
        blocks_of_1000(),
        graduated(),
        volume(),
        Pricing(M.GRADUATED, "usd", bands=(Band(None, D(0), D(5)),)),
        Pricing(M.FLAT, "USD", fixed_fee=D(1)),
    ],
)
def test_valid_pricings(pricing):
    assert validate_pricing(pricing) == []


def test_currency_is_lowercased():
    assert Pricing(M.FLAT, "USD", fixed_fee=D(1)).currency == "usd"


@pytest.mark.parametrize(
    ("pricing", "expected"),
    [
        (flat(0), ["fixed_fee"]),
        (flat(-1), ["fixed_fee"]),
        (flat("0.0000000000001"), ["fixed_fee"]),  # 13 decimal places
        (flat("NaN"), ["fixed_fee"]),
        (per_unit(0), ["unit_price"]),
        (per_unit("0.0004", "xyz"), ["currency"]),
        (Pricing(M.FLAT, "usd", fixed_fee=D(5), unit_price=D(1)), ["unit_price"]),
        (
            Pricing(M.PER_UNIT, "usd", unit_price=D(1), included_requests=5),
            ["included_requests"],
        ),
        (Pricing(M.FREE, "usd", fixed_fee=D(5)), ["fixed_fee"]),
        (Pricing(M.FLAT, "usd", fixed_fee=D(5), bands=(Band(None, D(1)),)), ["bands"]),
        (Pricing(M.FLAT_PLUS_OVERAGE, "usd", fixed_fee=D(5)), ["overage_price"]),
        (
            Pricing(
                M.FLAT_PLUS_OVERAGE, "usd", overage_price=D(1), overage_block_size=0
            ),
            ["overage_block_size"],
        ),
        (
            Pricing(
                M.FLAT_PLUS_OVERAGE, "usd", overage_price=D(1), included_requests=-1
            ),
            ["included_requests"],
        ),
        (Pricing(M.GRADUATED, "usd"), ["bands"]),
        (Pricing(M.VOLUME, "usd", bands=(Band(10, D(0)), Band(None, D(0)))), ["bands"]),
    ],
)
def test_invalid_pricings_name_the_field(pricing, expected):
    assert fields(pricing) == expected


def test_band_errors_are_keyed_by_band():
    pricing = Pricing(
        M.GRADUATED,
        "usd",
        bands=(
            Band(None, D("0.01")),  # open-ended but not last
            Band(100, D("-0.01")),  # negative price
            Band(100, D("0.01"), D("0.0000000000001")),  # not increasing; 13 places
            Band(0, D("0.01")),  # below 1, and the last band is not open-ended
        ),
    )
    assert validate_pricing(pricing) == [
        ("bands-0-up_to", "Only the last band can be open-ended."),
        ("bands-1-unit_price", "Enter 0 or more."),
        ("bands-2-up_to", "Must be more than 100, the previous band's limit."),
        ("bands-2-flat_fee", "Use at most 12 decimal places."),
        ("bands-3-up_to", "Enter 1 or more."),
        ("bands-3-up_to", "The last band must be open-ended: leave “up to” empty."),
    ]


def test_rating_refuses_an_invalid_pricing():
    with pytest.raises(InvalidPricing) as raised:
        usage_lines(flat(0), 10)
    assert raised.value.errors == [("fixed_fee", "A flat fee must be more than 0.")]
    with pytest.raises(InvalidPricing):
        period_cost_minor(per_unit("0.01", "xyz"), 10)


def test_floats_are_refused_when_building_a_pricing():
    with pytest.raises(TypeError):
        Pricing(M.PER_UNIT, "usd", unit_price=0.0004)
    with pytest.raises(TypeError):
        Band(None, 0.1)
    with pytest.raises(ValueError):
        Pricing("TIERED", "usd")


def test_ints_are_accepted_as_exact_prices():
    pricing = Pricing("FLAT", "usd", fixed_fee=5)
    assert pricing.model is M.FLAT
    assert pricing.fixed_fee == D(5)
    assert isinstance(pricing.fixed_fee, Decimal)


# -- a fixed fee with any requests model (SPEC §10: meters on top of one fee) ----


def test_a_fee_with_per_unit_requests_is_charged_in_advance_and_usage_in_arrears():
    # $10 a month plus $0.0004 per request
    pricing = Pricing(M.PER_UNIT, "usd", fixed_fee=D(10), unit_price=D("0.0004"))
    assert validate_pricing(pricing) == []
    start, end = APRIL
    [fee] = fixed_fee_lines(pricing, period_start=start, period_end=end)
    assert (fee.kind, fee.quantity, fee.unit_price, fee.amount_minor) == (
        LineKind.FIXED,
        1,
        D(10),
        1_000,  # $10.00
    )
    assert fee.description == "Flat fee 1 Apr 2027 \u2013 1 May 2027"
    assert (fee.period_start, fee.period_end) == APRIL
    # 12,345 × $0.0004 = $4.938 -> 494 cents; the fee is not a usage line
    assert amounts(usage_lines(pricing, 12_345)) == [494]
    assert period_cost_minor(pricing, 12_345) == 1_494  # $10.00 + $4.94
    assert period_cost_minor(pricing, 0) == 1_000  # the fee, whatever the usage


def test_a_fee_with_graduated_requests():
    # $5 a month; first 1,000 free, then $0.001 up to 10,000, then $0.0005
    pricing = replace_fee(graduated(), "5")
    start, end = APRIL
    assert amounts(fixed_fee_lines(pricing, period_start=start, period_end=end)) == [
        500
    ]
    # 1,000 × $0 + 9,000 × $0.001 = $9.00; 2,345 × $0.0005 = $1.1725 -> $1.17
    assert amounts(usage_lines(pricing, 12_345)) == [0, 900, 117]
    assert period_cost_minor(pricing, 12_345) == 1_517  # $5 + $0 + $9 + $1.17


def test_a_fee_with_volume_requests_in_yen():
    # ¥300 a week; up to 1,000 at ¥2, then ¥1 each (all of them) + a ¥50 band fee
    pricing = Pricing(
        M.VOLUME,
        "jpy",
        fixed_fee=D(300),
        bands=(Band(1_000, D(2)), Band(None, D(1), D(50))),
    )
    week = (utc(2027, 4, 5), utc(2027, 4, 12))
    [fee] = fixed_fee_lines(pricing, period_start=week[0], period_end=week[1])
    assert fee.amount_minor == 300  # ¥300
    # 1,500 × ¥1 = ¥1,500, then the band's ¥50 flat fee
    assert amounts(usage_lines(pricing, 1_500)) == [1_500, 50]
    assert period_cost_minor(pricing, 1_500) == 1_850  # ¥300 + ¥1,500 + ¥50


def test_a_fee_with_usage_priced_requests_is_prorated_like_a_flat_fee():
    # From $30 + $0.001 per request to $90 flat after 10 of 30 days: -2/3 of $30
    # = -$20.00; 2/3 of $90 = $60.00. Usage is never prorated.
    old = Pricing(M.PER_UNIT, "usd", fixed_fee=D(30), unit_price=D("0.001"))
    assert amounts(prorate(old, flat(90), utc(2027, 4, 11))) == [-2_000, 6_000]
    # and back: $90 flat to $30 + graduated: -$60.00, +$20.00
    new = replace_fee(graduated(), "30")
    assert amounts(prorate(flat(90), new, utc(2027, 4, 11))) == [-6_000, 2_000]


def test_a_fee_does_not_make_an_uncharged_requests_price_valid():
    # A fee with free requests is FLAT; a usage model must still charge usage.
    assert fields(Pricing(M.PER_UNIT, "usd", fixed_fee=D(5))) == ["unit_price"]
    assert fields(
        Pricing(M.GRADUATED, "usd", fixed_fee=D(5), bands=(Band(None, D(0)),))
    ) == ["bands"]
    assert fields(Pricing(M.PER_UNIT, "usd", fixed_fee=D(-1), unit_price=D(1))) == [
        "fixed_fee"
    ]


@pytest.mark.parametrize(
    "usage",
    [
        per_unit("0.0004"),
        Pricing(M.FLAT_PLUS_OVERAGE, "usd", included_requests=10, overage_price=D(1)),
        graduated(),
        volume(),
    ],
    ids=["per-unit", "overage", "graduated", "volume"],
)
def test_a_fee_and_a_requests_price_split_back_as_they_were_joined(usage):
    joined = with_fixed_fee(usage, fee=D("12.50"), currency="usd")
    assert (joined.model, joined.fixed_fee) == (usage.model, D("12.50"))
    assert validate_pricing(joined) == []
    assert split_fixed_fee(joined) == (D("12.50"), usage)
    assert with_fixed_fee(None, fee=D("12.50"), currency="usd") == flat("12.50")
    assert split_fixed_fee(flat("12.50")) == (D("12.50"), None)


def replace_fee(pricing, fee):
    return dataclasses.replace(pricing, fixed_fee=D(fee))


# -- properties -------------------------------------------------------------------


def half_up(amount, exponent):
    """An oracle independent of pricing.currencies: Decimal's own ROUND_HALF_UP."""
    with localcontext(prec=80):
        scaled = amount * Decimal(10) ** exponent
        return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


EXPONENT = {"usd": 2, "jpy": 0, "bhd": 3}
currencies = st.sampled_from(sorted(EXPONENT))
prices = st.decimals(min_value=0, max_value=D("0.05"), places=6)
fees = st.decimals(min_value=0, max_value=D(20), places=3)


@st.composite
def band_lists(draw, max_up_to=300):
    limits = draw(
        st.lists(
            st.integers(min_value=1, max_value=max_up_to),
            max_size=3,
            unique=True,
        )
    )
    tops = [*sorted(limits), None]
    return tuple(Band(top, draw(prices), draw(fees)) for top in tops)


@st.composite
def tiered(draw, model, max_up_to=300):
    pricing = Pricing(model, draw(currencies), bands=draw(band_lists(max_up_to)))
    assume(validate_pricing(pricing) == [])
    return pricing


def band_of(bands, request):
    """The 0-based band a request number (1-based) or a total falls in."""
    return next(
        i for i, band in enumerate(bands) if band.up_to is None or request <= band.up_to
    )


@given(pricing=tiered(M.GRADUATED), quantity=st.integers(min_value=0, max_value=600))
def test_graduated_matches_pricing_every_request_one_by_one(pricing, quantity):
    counts = [0] * len(pricing.bands)
    for request in range(1, quantity + 1):
        counts[band_of(pricing.bands, request)] += 1
    exponent = EXPONENT[pricing.currency]
    expected = 0
    for i, (band, count) in enumerate(zip(pricing.bands, counts, strict=True)):
        if count:
            expected += half_up(count * band.unit_price, exponent)
        if count or i == 0:
            expected += half_up(band.flat_fee, exponent)
    lines = usage_lines(pricing, quantity)
    assert total_minor(lines) == expected
    band_lines = [line for line in lines if line.kind is LineKind.BAND]
    assert sum(line.quantity for line in band_lines) == quantity
    assert [line.quantity for line in band_lines] == [c for c in counts if c]


@given(pricing=tiered(M.VOLUME), quantity=st.integers(min_value=0, max_value=600))
def test_volume_matches_the_band_of_the_total(pricing, quantity):
    band = pricing.bands[band_of(pricing.bands, quantity)]
    exponent = EXPONENT[pricing.currency]
    expected = half_up(quantity * band.unit_price, exponent) + half_up(
        band.flat_fee, exponent
    )
    assert period_cost_minor(pricing, quantity) == expected


@given(
    pricing=tiered(M.GRADUATED, max_up_to=100_000),
    a=st.integers(min_value=0, max_value=2_000_000),
    b=st.integers(min_value=0, max_value=2_000_000),
)
def test_a_graduated_total_never_falls_as_quantity_grows(pricing, a, b):
    low, high = sorted((a, b))
    assert period_cost_minor(pricing, low) <= period_cost_minor(pricing, high)


@given(
    currency=currencies,
    price=prices,
    fee=fees,
    quantity=st.integers(min_value=0, max_value=10**9),
)
def test_with_one_band_graduated_equals_volume(currency, price, fee, quantity):
    assume(price or fee)
    bands = (Band(None, price, fee),)
    graduated_lines = usage_lines(Pricing(M.GRADUATED, currency, bands=bands), quantity)
    volume_lines = usage_lines(Pricing(M.VOLUME, currency, bands=bands), quantity)
    assert amounts(graduated_lines) == amounts(volume_lines)
    assert total_minor(graduated_lines) == total_minor(volume_lines)


@given(
    pricing=st.one_of(tiered(M.GRADUATED), tiered(M.VOLUME)),
    quantity=st.integers(min_value=0, max_value=10**7),
)
def test_every_line_is_its_quantity_times_its_unit_price_rounded(pricing, quantity):
    exponent = EXPONENT[pricing.currency]
    for line in usage_lines(pricing, quantity):
        assert line.amount_minor == half_up(line.quantity * line.unit_price, exponent)
        assert line.currency == pricing.currency


@given(
    fee=st.decimals(min_value=D("0.01"), max_value=D(10_000), places=2),
    seconds=st.integers(min_value=0, max_value=2_592_000),
)
def test_prorating_a_fee_against_itself_nets_to_zero(fee, seconds):
    changed_at = APRIL[0] + timedelta(seconds=seconds)
    lines = prorate(flat(fee), flat(fee), changed_at)
    assert total_minor(lines) == 0
    for line in lines:
        assert abs(line.amount_minor) <= half_up(fee, 2)


@given(
    total=st.integers(min_value=-(10**9), max_value=10**12),
    percent=st.decimals(min_value=0, max_value=100, places=4),
)
def test_the_application_fee_is_between_zero_and_the_total(total, percent):
    fee = application_fee_minor(total, percent)
    assert 0 <= fee <= max(total, 0)
    if total > 0:
        assert fee == half_up(total * percent / 100, 0)
