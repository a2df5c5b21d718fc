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
# ISO 4217 active currencies ("list one"), lowercase: the codes the emulator knows.
# Fund codes, units of account, precious metals and XTS/XXX are not currencies anyone is
# charged in, so they are not here. The same list as apimon's `pricing.currencies`
# (the emulator does not import apimon; tests/stripe_emulator checks they agree).
_ISO_4217_CODES = (
    "aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl "
    "bsd btn bwp byn bzd cad cdf chf clp cny cop crc cuc cup cve czk djf dkk dop dzd "
    "egp ern etb eur fjd fkp gbp gel ghs gip gmd gnf gtq gyd hkd hnl htg huf idr ils "
    "inr iqd irr isk jmd jod jpy kes kgs khr kmf kpw krw kwd kyd kzt lak lbp lkr lrd "
    "lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn myr mzn nad ngn nio nok "
    "npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sdg sek "
    "sgd shp sle sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd tzs uah "
    "ugx usd uyu uzs ved ves vnd vuv wst xaf xcd xcg xof xpf yer zar zmw zwg"
)
ISO_4217 = frozenset(_ISO_4217_CODES.split())
# ISO 4217 currencies that are not Stripe presentment currencies: Stripe refuses a
# price, invoice, invoice item or Checkout Session in them. apimon keeps the same
# list (pricing.stripe_money.NOT_ON_STRIPE); tests/stripe_emulator checks they agree.
NOT_ON_STRIPE = frozenset(["iqd", "lyd"])
# What the emulator takes, as Stripe does: every other code is `Invalid currency`.
STRIPE_CURRENCIES = ISO_4217 - NOT_ON_STRIPE
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
    if currency not in STRIPE_CURRENCIES:
        raise invalid(
            f"Invalid currency: {currency}. Stripe currently supports these "
            f"currencies: {_SUPPORTED}",
            param=param,
        )
    return currency


# Stripe's message lists USD first, then the others alphabetically.
_SUPPORTED = ", ".join(["usd", *sorted(STRIPE_CURRENCIES - {"usd"})])


def format_amount(amount: int, currency: str) -> str:
    places = exponent(currency)
    value = Decimal(amount).scaleb(-places)
    symbol = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}.get(currency.lower())
    text = f"{value:,.{places}f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"
