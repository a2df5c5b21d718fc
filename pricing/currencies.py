"""ISO 4217 currencies, minor units, exact conversions and display formatting.

Amounts are stored as integers in the currency's minor unit (cents for USD, yen for
JPY, fils for BHD) next to a lowercase ISO code, as Stripe does. This module converts
between those integers and exact ``Decimal`` major units and formats both for people.
It has no Django imports and never touches a binary float.

Decisions:

- The list is ISO 4217 "list one" of active currencies with their ISO exponent. Fund
  codes and units of account (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW, XDR, XSU,
  XUA, XB*), precious metals (XAU, XAG, XPD, XPT) and the test / no-currency codes
  (XTS, XXX) are left out: nobody is charged in them. Currencies in a transition keep
  both codes while ISO lists both (ANG and its successor XCG; BGN).
- Codes are accepted in any case ("USD", "usd") and always produced in lowercase.
- Half-up means half away from zero (``ROUND_HALF_UP``): 2.5 → 3 and -2.5 → -3.
  Rounding is exact at any size: amounts go through ``fractions.Fraction``, so no
  decimal context precision can truncate a large amount.
- ``format_money`` writes negative amounts with an ASCII hyphen-minus ("-$3.00"):
  it survives CSV exports, e-mails and Stripe descriptions unchanged.
- Common currencies get a symbol ("$1,234.50", "€0.00", "¥1,235"); every other
  currency is written with its upper-case code and a space ("BHD 1.235"). Digits are
  grouped with "," and the decimal mark is "." whatever the currency.

ISO exponents are what every amount in apimon uses. Stripe
departs from ISO for a few currencies (it treats MGA as zero-decimal, wants ISK and
UGX amounts with two "00" decimals, and wants three-decimal amounts to end in 0);
the Stripe seam must translate those, not this module.
"""

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import NamedTuple

UNIT_PRICE_MAX_DECIMAL_PLACES = 12


class UnknownCurrency(ValueError):
    """A currency code that is not in the ISO 4217 list apimon supports."""

    def __init__(self, code: object) -> None:
        self.code = code
        super().__init__(f"Unknown currency code: {code!r}")


class Currency(NamedTuple):
    code: str  # lowercase, as Stripe writes it
    exponent: int  # number of decimals of the minor unit
    name: str


# (code, exponent, ISO 4217 English name)
_ISO_4217 = (
    ("aed", 2, "UAE Dirham"),
    ("afn", 2, "Afghani"),
    ("all", 2, "Lek"),
    ("amd", 2, "Armenian Dram"),
    ("ang", 2, "Netherlands Antillean Guilder"),
    ("aoa", 2, "Kwanza"),
    ("ars", 2, "Argentine Peso"),
    ("aud", 2, "Australian Dollar"),
    ("awg", 2, "Aruban Florin"),
    ("azn", 2, "Azerbaijan Manat"),
    ("bam", 2, "Convertible Mark"),
    ("bbd", 2, "Barbados Dollar"),
    ("bdt", 2, "Taka"),
    ("bgn", 2, "Bulgarian Lev"),
    ("bhd", 3, "Bahraini Dinar"),
    ("bif", 0, "Burundi Franc"),
    ("bmd", 2, "Bermudian Dollar"),
    ("bnd", 2, "Brunei Dollar"),
    ("bob", 2, "Boliviano"),
    ("brl", 2, "Brazilian Real"),
    ("bsd", 2, "Bahamian Dollar"),
    ("btn", 2, "Ngultrum"),
    ("bwp", 2, "Pula"),
    ("byn", 2, "Belarusian Ruble"),
    ("bzd", 2, "Belize Dollar"),
    ("cad", 2, "Canadian Dollar"),
    ("cdf", 2, "Congolese Franc"),
    ("chf", 2, "Swiss Franc"),
    ("clp", 0, "Chilean Peso"),
    ("cny", 2, "Yuan Renminbi"),
    ("cop", 2, "Colombian Peso"),
    ("crc", 2, "Costa Rican Colon"),
    ("cuc", 2, "Peso Convertible"),
    ("cup", 2, "Cuban Peso"),
    ("cve", 2, "Cabo Verde Escudo"),
    ("czk", 2, "Czech Koruna"),
    ("djf", 0, "Djibouti Franc"),
    ("dkk", 2, "Danish Krone"),
    ("dop", 2, "Dominican Peso"),
    ("dzd", 2, "Algerian Dinar"),
    ("egp", 2, "Egyptian Pound"),
    ("ern", 2, "Nakfa"),
    ("etb", 2, "Ethiopian Birr"),
    ("eur", 2, "Euro"),
    ("fjd", 2, "Fiji Dollar"),
    ("fkp", 2, "Falkland Islands Pound"),
    ("gbp", 2, "Pound Sterling"),
    ("gel", 2, "Lari"),
    ("ghs", 2, "Ghana Cedi"),
    ("gip", 2, "Gibraltar Pound"),
    ("gmd", 2, "Dalasi"),
    ("gnf", 0, "Guinean Franc"),
    ("gtq", 2, "Quetzal"),
    ("gyd", 2, "Guyana Dollar"),
    ("hkd", 2, "Hong Kong Dollar"),
    ("hnl", 2, "Lempira"),
    ("htg", 2, "Gourde"),
    ("huf", 2, "Forint"),
    ("idr", 2, "Rupiah"),
    ("ils", 2, "New Israeli Sheqel"),
    ("inr", 2, "Indian Rupee"),
    ("iqd", 3, "Iraqi Dinar"),
    ("irr", 2, "Iranian Rial"),
    ("isk", 0, "Iceland Krona"),
    ("jmd", 2, "Jamaican Dollar"),
    ("jod", 3, "Jordanian Dinar"),
    ("jpy", 0, "Yen"),
    ("kes", 2, "Kenyan Shilling"),
    ("kgs", 2, "Som"),
    ("khr", 2, "Riel"),
    ("kmf", 0, "Comorian Franc"),
    ("kpw", 2, "North Korean Won"),
    ("krw", 0, "Won"),
    ("kwd", 3, "Kuwaiti Dinar"),
    ("kyd", 2, "Cayman Islands Dollar"),
    ("kzt", 2, "Tenge"),
    ("lak", 2, "Lao Kip"),
    ("lbp", 2, "Lebanese Pound"),
    ("lkr", 2, "Sri Lanka Rupee"),
    ("lrd", 2, "Liberian Dollar"),
    ("lsl", 2, "Loti"),
    ("lyd", 3, "Libyan Dinar"),
    ("mad", 2, "Moroccan Dirham"),
    ("mdl", 2, "Moldovan Leu"),
    ("mga", 2, "Malagasy Ariary"),
    ("mkd", 2, "Denar"),
    ("mmk", 2, "Kyat"),
    ("mnt", 2, "Tugrik"),
    ("mop", 2, "Pataca"),
    ("mru", 2, "Ouguiya"),
    ("mur", 2, "Mauritius Rupee"),
    ("mvr", 2, "Rufiyaa"),
    ("mwk", 2, "Malawi Kwacha"),
    ("mxn", 2, "Mexican Peso"),
    ("myr", 2, "Malaysian Ringgit"),
    ("mzn", 2, "Mozambique Metical"),
    ("nad", 2, "Namibia Dollar"),
    ("ngn", 2, "Naira"),
    ("nio", 2, "Cordoba Oro"),
    ("nok", 2, "Norwegian Krone"),
    ("npr", 2, "Nepalese Rupee"),
    ("nzd", 2, "New Zealand Dollar"),
    ("omr", 3, "Rial Omani"),
    ("pab", 2, "Balboa"),
    ("pen", 2, "Sol"),
    ("pgk", 2, "Kina"),
    ("php", 2, "Philippine Peso"),
    ("pkr", 2, "Pakistan Rupee"),
    ("pln", 2, "Zloty"),
    ("pyg", 0, "Guarani"),
    ("qar", 2, "Qatari Rial"),
    ("ron", 2, "Romanian Leu"),
    ("rsd", 2, "Serbian Dinar"),
    ("rub", 2, "Russian Ruble"),
    ("rwf", 0, "Rwanda Franc"),
    ("sar", 2, "Saudi Riyal"),
    ("sbd", 2, "Solomon Islands Dollar"),
    ("scr", 2, "Seychelles Rupee"),
    ("sdg", 2, "Sudanese Pound"),
    ("sek", 2, "Swedish Krona"),
    ("sgd", 2, "Singapore Dollar"),
    ("shp", 2, "Saint Helena Pound"),
    ("sle", 2, "Leone"),
    ("sos", 2, "Somali Shilling"),
    ("srd", 2, "Surinam Dollar"),
    ("ssp", 2, "South Sudanese Pound"),
    ("stn", 2, "Dobra"),
    ("svc", 2, "El Salvador Colon"),
    ("syp", 2, "Syrian Pound"),
    ("szl", 2, "Lilangeni"),
    ("thb", 2, "Baht"),
    ("tjs", 2, "Somoni"),
    ("tmt", 2, "Turkmenistan New Manat"),
    ("tnd", 3, "Tunisian Dinar"),
    ("top", 2, "Pa'anga"),
    ("try", 2, "Turkish Lira"),
    ("ttd", 2, "Trinidad and Tobago Dollar"),
    ("twd", 2, "New Taiwan Dollar"),
    ("tzs", 2, "Tanzanian Shilling"),
    ("uah", 2, "Hryvnia"),
    ("ugx", 0, "Uganda Shilling"),
    ("usd", 2, "US Dollar"),
    ("uyu", 2, "Peso Uruguayo"),
    ("uzs", 2, "Uzbekistan Sum"),
    ("ved", 2, "Bolívar Soberano (VED)"),
    ("ves", 2, "Bolívar Soberano"),
    ("vnd", 0, "Dong"),
    ("vuv", 0, "Vatu"),
    ("wst", 2, "Tala"),
    ("xaf", 0, "CFA Franc BEAC"),
    ("xcd", 2, "East Caribbean Dollar"),
    ("xcg", 2, "Caribbean Guilder"),
    ("xof", 0, "CFA Franc BCEAO"),
    ("xpf", 0, "CFP Franc"),
    ("yer", 2, "Yemeni Rial"),
    ("zar", 2, "Rand"),
    ("zmw", 2, "Zambian Kwacha"),
    ("zwg", 2, "Zimbabwe Gold"),
)

CURRENCIES: Mapping[str, Currency] = MappingProxyType(
    {code: Currency(code, exponent, name) for code, exponent, name in _ISO_4217}
)

# For a form's <select>: ("usd", "USD — US Dollar"), sorted by code.
CURRENCY_CHOICES: list[tuple[str, str]] = [
    (c.code, f"{c.code.upper()} — {c.name}") for c in sorted(CURRENCIES.values())
]

# Symbols only where they are unambiguous to a reader; everything else gets its code.
_SYMBOLS = {
    "usd": "$",
    "eur": "€",
    "gbp": "£",
    "jpy": "¥",
    "krw": "₩",
    "inr": "₹",
    "cny": "CN¥",
    "cad": "CA$",
    "aud": "A$",
    "nzd": "NZ$",
    "hkd": "HK$",
    "mxn": "MX$",
    "brl": "R$",
    "twd": "NT$",
    "ils": "₪",
    "vnd": "₫",
    "php": "₱",
    "ngn": "₦",
    "uah": "₴",
    "try": "₺",
}


def _lookup(code: object) -> Currency:
    if not isinstance(code, str):
        raise UnknownCurrency(code)
    try:
        return CURRENCIES[code.lower()]
    except KeyError:
        raise UnknownCurrency(code) from None


def is_known(code: object) -> bool:
    """True if ``code`` (any case) is a supported ISO 4217 currency."""
    return isinstance(code, str) and code.lower() in CURRENCIES


def minor_units(code: str) -> int:
    """The number of decimals of the currency's minor unit: usd 2, jpy 0, bhd 3."""
    return _lookup(code).exponent


def round_half_up(value: Decimal | Fraction | int) -> int:
    """Round an exact number to the nearest integer, halves away from zero."""
    exact = _exact(value)
    # floor(|x| + 1/2) in integers: no decimal context, no precision limit.
    magnitude = (2 * abs(exact.numerator) + exact.denominator) // (
        2 * exact.denominator
    )
    return magnitude if exact >= 0 else -magnitude


def to_minor(amount: Decimal | Fraction | int, currency: str) -> int:
    """Major units to an integer number of minor units, rounded half-up.

    ``to_minor(Decimal("4.938"), "usd") == 494``; ``to_minor(Decimal("1234.5"),
    "jpy") == 1235``. Floats are refused: they cannot hold most prices exactly.
    """
    exponent = minor_units(currency)
    return round_half_up(_exact(amount) * 10**exponent)


def from_minor(minor: int, currency: str) -> Decimal:
    """Minor units to an exact ``Decimal`` in major units with the currency's
    exponent: ``from_minor(500, "usd") == Decimal("5.00")``."""
    exponent = minor_units(currency)
    _require_int(minor, "minor")
    # Built from a string so that no context precision applies.
    return Decimal(f"{minor}E-{exponent}")


def format_money(minor: int, currency: str) -> str:
    """An amount in minor units for people: "$1,234.50", "¥1,235", "BHD 1.235",
    "-$3.00"."""
    info = _lookup(currency)
    _require_int(minor, "minor")
    digits = _digits(abs(minor), scale=info.exponent, places=info.exponent)
    return _with_sign_and_symbol(minor < 0, digits, info.code)


def format_unit_price(amount: Decimal, currency: str) -> str:
    """A unit price for people: every significant decimal up to 12, and at least
    the currency's own decimals: "$0.0004", "$1.00", "¥0.5", "BHD 1.200".

    A price with more than 12 decimals is shown rounded half-up to 12.
    """
    info = _lookup(currency)
    scale = UNIT_PRICE_MAX_DECIMAL_PLACES
    units = round_half_up(_exact(amount) * 10**scale)  # in 1e-12 major units
    fraction = abs(units) % 10**scale
    significant = scale - (len(str(fraction)) - len(str(fraction).rstrip("0")))
    places = max(info.exponent, significant if fraction else 0)
    digits = _digits(abs(units), scale=scale, places=places)
    return _with_sign_and_symbol(units < 0, digits, info.code)


def decimal_places(value: Decimal) -> int:
    """Significant decimal places of a finite Decimal, ignoring trailing zeros:
    Decimal("0.1000") has 1, Decimal("100") has 0."""
    if not value.is_finite():
        raise ValueError(f"Not a finite number: {value}")
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, so never "n"/"N"/"F"
    if exponent >= 0 or not any(digits):
        return 0
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def _digits(units: int, *, scale: int, places: int) -> str:
    """``units`` (>= 0, in 10**-scale) as "1,234.50" with ``places`` decimals;
    the caller guarantees that the decimals cut off are zeros."""
    whole, fraction = divmod(units, 10**scale)
    decimals = f"{fraction:0{scale}d}"[:places] if scale else ""
    return f"{whole:,}.{decimals}" if places else f"{whole:,}"


def _with_sign_and_symbol(negative: bool, digits: str, code: str) -> str:
    prefix = _SYMBOLS.get(code, f"{code.upper()} ")
    return f"{'-' if negative else ''}{prefix}{digits}"


def _exact(value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, Decimal | Fraction | int):
        raise TypeError(
            f"Money must be a Decimal, Fraction or int, not {type(value).__name__}"
        )
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"Not a finite amount: {value}")
    return Fraction(value)


def _require_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
