"""Currencies: ISO exponents, exact half-up conversions and display formats."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.currencies import (
    CURRENCIES,
    CURRENCY_CHOICES,
    UnknownCurrency,
    decimal_places,
    format_money,
    format_unit_price,
    from_minor,
    is_known,
    minor_units,
    to_minor,
)

# Written out from ISO 4217 list one, independently of the module's table.
ZERO_DECIMAL = {
    "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw",
    "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
}  # fmt: skip
THREE_DECIMAL = {"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"}


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("usd", 2), ("eur", 2), ("gbp", 2), ("chf", 2), ("inr", 2), ("mga", 2),
        ("jpy", 0), ("krw", 0), ("vnd", 0), ("clp", 0), ("xaf", 0), ("isk", 0),
        ("bhd", 3), ("kwd", 3), ("jod", 3), ("omr", 3), ("tnd", 3), ("iqd", 3),
        ("lyd", 3),
    ],
)  # fmt: skip
def test_it_knows_the_iso_exponent(code, exponent):
    assert minor_units(code) == exponent


def test_every_currency_outside_the_zero_and_three_decimal_sets_has_two_decimals():
    assert {c for c, info in CURRENCIES.items() if info.exponent == 0} == ZERO_DECIMAL
    assert {c for c, info in CURRENCIES.items() if info.exponent == 3} == THREE_DECIMAL
    assert {info.exponent for info in CURRENCIES.values()} == {0, 2, 3}


def test_the_list_is_the_active_iso_list_without_funds_metals_or_test_codes():
    assert len(CURRENCIES) > 150
    for code in ("usd", "eur", "sle", "ves", "ved", "zwg", "xcg", "stn", "mru"):
        assert is_known(code), code
    for code in ("xau", "xag", "xts", "xxx", "xdr", "clf", "uyw", "usn", "bov"):
        assert not is_known(code), code
    for code in ("hrk", "sll", "zwl", "ltl", "dem"):  # withdrawn
        assert not is_known(code), code
    assert all(len(code) == 3 and code.islower() for code in CURRENCIES)


def test_codes_are_case_insensitive():
    assert minor_units("USD") == 2
    assert minor_units("Jpy") == 0
    assert is_known("BHD")


@pytest.mark.parametrize("code", ["xyz", "", "us", "usdd", None, 840])
def test_it_raises_a_clear_error_for_an_unknown_currency(code):
    with pytest.raises(UnknownCurrency) as raised:
        minor_units(code)
    assert isinstance(raised.value, ValueError)
    assert repr(code) in str(raised.value)
    assert not is_known(code)


def test_choices_are_sorted_by_code_with_readable_labels():
    assert ("usd", "USD — US Dollar") in CURRENCY_CHOICES
    assert ("jpy", "JPY — Yen") in CURRENCY_CHOICES
    assert ("bhd", "BHD — Bahraini Dinar") in CURRENCY_CHOICES
    codes = [code for code, _label in CURRENCY_CHOICES]
    assert codes == sorted(codes)
    assert set(codes) == set(CURRENCIES)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        # 12,345 requests at $0.0004 = $4.938 -> 493.8 cents -> 494
        (Decimal("4.938"), "usd", 494),
        # 492.5 cents: half-up gives 493 (banker's rounding would give 492)
        (Decimal("4.925"), "usd", 493),
        (Decimal("4.9249999999"), "usd", 492),
        (Decimal("0.005"), "usd", 1),
        (Decimal("0.004999999999"), "usd", 0),
        (Decimal("0"), "usd", 0),
        (Decimal("12.30"), "eur", 1230),
        (3, "usd", 300),
        # yen have no minor unit: 1,234.5 yen -> 1,235 (banker's: 1,234)
        (Decimal("1234.5"), "jpy", 1235),
        (Decimal("1234.49"), "jpy", 1234),
        (Decimal("1234.5"), "krw", 1235),
        # 1.2345 BHD = 1,234.5 fils -> 1,235 (banker's: 1,234)
        (Decimal("1.2345"), "bhd", 1235),
        (Decimal("1.2344"), "bhd", 1234),
        # halves of negatives go away from zero
        (Decimal("-0.125"), "usd", -13),
        (Decimal("-0.124"), "usd", -12),
        (Fraction(1, 3), "usd", 33),
        (Fraction(1, 200), "usd", 1),
        (Fraction(2, 3), "jpy", 1),
        # far beyond the default 28-digit decimal context: still exact
        (
            Decimal("123456789012345678901234567890.125"),
            "usd",
            12345678901234567890123456789013,
        ),
    ],
)
def test_to_minor_rounds_half_up(amount, currency, minor):
    assert to_minor(amount, currency) == minor


def test_to_minor_refuses_floats_and_non_numbers():
    with pytest.raises(TypeError):
        to_minor(0.1, "usd")
    with pytest.raises(TypeError):
        to_minor("0.10", "usd")
    with pytest.raises(TypeError):
        to_minor(True, "usd")
    with pytest.raises(ValueError):
        to_minor(Decimal("NaN"), "usd")
    with pytest.raises(ValueError):
        to_minor(Decimal("Infinity"), "usd")
    with pytest.raises(UnknownCurrency):
        to_minor(Decimal(1), "xyz")


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123, "usd", "1.23"),
        (500, "usd", "5.00"),
        (-5, "usd", "-0.05"),
        (0, "eur", "0.00"),
        (1235, "jpy", "1235"),
        (1235, "bhd", "1.235"),
        (5, "kwd", "0.005"),
        (10**40 + 1, "usd", "1" + "0" * 37 + "0.01"),
    ],
)
def test_from_minor_is_exact_with_the_currencys_decimals(minor, currency, text):
    value = from_minor(minor, currency)
    assert isinstance(value, Decimal)
    assert str(value) == text


def test_from_minor_refuses_non_integers():
    with pytest.raises(TypeError):
        from_minor(Decimal("1.5"), "usd")
    with pytest.raises(TypeError):
        from_minor(1.0, "usd")


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123450, "usd", "$1,234.50"),
        (123456789, "gbp", "£1,234,567.89"),
        (5, "usd", "$0.05"),
        (0, "eur", "€0.00"),
        (1235, "jpy", "¥1,235"),
        (1000000, "krw", "₩1,000,000"),
        (1235, "bhd", "BHD 1.235"),
        (1234567, "kwd", "KWD 1,234.567"),
        (100, "chf", "CHF 1.00"),
        (100, "CAD", "CA$1.00"),
        (-300, "usd", "-$3.00"),
        (-1235, "bhd", "-BHD 1.235"),
        (-7, "jpy", "-¥7"),
    ],
)
def test_format_money(minor, currency, text):
    assert format_money(minor, currency) == text


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        ("0.0004", "usd", "$0.0004"),
        ("0.001", "usd", "$0.001"),
        ("0.0010", "usd", "$0.001"),
        ("1", "usd", "$1.00"),
        ("0.10", "usd", "$0.10"),
        ("0.100000", "usd", "$0.10"),
        ("1234.5", "usd", "$1,234.50"),
        ("0.000000000001", "usd", "$0.000000000001"),
        ("0.123456789012", "usd", "$0.123456789012"),
        # more than 12 decimals: shown rounded half-up to 12
        ("0.0000000000005", "usd", "$0.000000000001"),
        ("0", "usd", "$0.00"),
        ("0.5", "jpy", "¥0.5"),
        ("3", "jpy", "¥3"),
        ("1.2", "bhd", "BHD 1.200"),
        ("0.0005", "bhd", "BHD 0.0005"),
        ("-0.5", "usd", "-$0.50"),
    ],
)
def test_format_unit_price(amount, currency, text):
    assert format_unit_price(Decimal(amount), currency) == text


@pytest.mark.parametrize(
    ("value", "places"),
    [("0.1000", 1), ("100", 0), ("1E+2", 0), ("0.000", 0), ("0.0004", 4),
     ("1.000000000001", 12), ("-2.50", 1)],
)  # fmt: skip
def test_decimal_places_ignores_trailing_zeros(value, places):
    assert decimal_places(Decimal(value)) == places


currency_codes = st.sampled_from(sorted(CURRENCIES))


@given(minor=st.integers(min_value=-(10**30), max_value=10**30), code=currency_codes)
def test_minor_units_round_trip_through_major_units(minor, code):
    assert to_minor(from_minor(minor, code), code) == minor


@given(
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=12,
                       min_value=-(10**12), max_value=10**12),
    code=currency_codes,
)  # fmt: skip
def test_to_minor_is_within_half_a_minor_unit(amount, code):
    rounded = from_minor(to_minor(amount, code), code)
    half = Decimal(5) * Decimal(10) ** -(minor_units(code) + 1)
    assert abs(rounded - amount) <= half
