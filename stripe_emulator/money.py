"""Amounts: integers in the currency's minor unit; decimals only for unit prices."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from stripe_emulator.errors import invalid

# Stripe's zero-decimal and three-decimal currencies.
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
# ISO 4217 currencies that are not Stripe presentment currencies: Stripe refuses a
# price, invoice, invoice item or Checkout Session in them. apimon keeps the same
# list (billing.stripe_money.NOT_ON_STRIPE); tests/stripe_emulator checks they agree.
NOT_ON_STRIPE = frozenset(["iqd", "lyd"])
MAX_AMOUNT = 99_999_999


def exponent(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def round_minor(value: Decimal) -> int:
    """Stripe rounds fractional minor-unit amounts to the nearest integer, half up."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def check_decimal(value: Decimal, param: str) -> Decimal:
    """`unit_amount_decimal` and friends: at most 12 decimal places."""
    exponent_ = value.as_tuple().exponent
    if isinstance(exponent_, int) and exponent_ < -12:
        raise invalid(
            f"Invalid {param}: the value can have at most 12 decimal places.",
            param=param,
        )
    return value


def decimal_string(value: Decimal) -> str:
    """Decimal as Stripe prints it: no exponent, no trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def check_currency(currency: str, param: str = "currency") -> str:
    """A currency Stripe takes, lowercased; else Stripe's invalid_request_error."""
    currency = currency.lower()
    if len(currency) != 3 or not currency.isalpha() or currency in NOT_ON_STRIPE:
        raise invalid(
            f"Invalid currency: {currency}. Stripe currently supports these "
            "currencies: usd, eur, gbp, jpy, …",
            param=param,
        )
    return currency


def format_amount(amount: int, currency: str) -> str:
    places = exponent(currency)
    value = Decimal(amount).scaleb(-places)
    symbol = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}.get(currency.lower())
    text = f"{value:,.{places}f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"
