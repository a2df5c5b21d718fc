"""Rating: a tier's pricing and a period's usage in, invoice lines out.

Pure functions over frozen dataclasses: no ORM, no Stripe, no Django. Every amount is
exact until a line is rounded, and only lines are rounded.

Rules
-----
- Prices are in the tier's currency, as exact ``Decimal`` major units with at most 12
  decimal places (Stripe's ``unit_amount_decimal``); floats are refused.
- A line's amount is ``quantity * unit price`` rounded half-up (halves away from
  zero) to the currency's ISO 4217 minor unit. An invoice's total is the sum of its
  rounded lines; nothing is rounded on an intermediate sum.
- FREE charges nothing. FLAT charges its fixed fee in advance each period.
  PER_UNIT charges each request in arrears. FLAT_PLUS_OVERAGE includes N requests;
  requests above N are charged in arrears per block of K (K = 1 by default), a
  partial block counting as a whole one. GRADUATED prices each request at the band
  it falls in; VOLUME prices the whole quantity at the band the total falls in. Band
  ``up_to`` is inclusive (as Stripe), the last band is open-ended, and a band's flat
  fee is charged once it is entered.
- Every model but FREE may carry the tier's one fixed fee (SPEC §10: meters are
  priced on top of one fixed fee), charged in advance at the start of each period,
  whatever the model of the requests: FLAT is the fee alone, and a fee with
  PER_UNIT, FLAT_PLUS_OVERAGE, GRADUATED or VOLUME requests is charged exactly as a
  FLAT fee is, the requests' lines coming on top in arrears.
- Tier change: the fixed fee is prorated by the exact time left in the
  period: a credit for the unused part of the old fee and a charge for the rest of
  the new one, each rounded on its own.

Decisions
---------
- Every line satisfies ``amount_minor == to_minor(quantity * unit_price)``.
  Overage lines count blocks (quantity = blocks, unit price = price per block).
  Flat fees and prorations have quantity 1. A proration's unit price is its rounded
  amount (negative for a credit), because the exact prorated fee may have infinitely
  many decimals. Callers should send ``amount_minor`` to Stripe as the invoice item's
  ``amount`` rather than quantity * ``unit_amount_decimal``, so that Stripe's own
  rounding can never disagree with ours.
- Quantity 0 follows Stripe: the first band is entered, so GRADUATED and VOLUME
  charge the first band's flat fee even with no usage.
- Band flat fees are separate BAND_FLAT lines (Stripe shows "flat fee for tier N"
  apart), each right after its band's BAND line. GRADUATED emits one BAND line per
  band that holds at least one request, even when that band's price is 0 (a free
  first band still shows, at $0.00); VOLUME emits one BAND line.
- Usage lines exist only for usage: a quantity of 0 gives no USAGE, OVERAGE or BAND
  line (only a first-band flat fee, above). Zero fixed fees and proration amounts that
  round to 0 give no line.
- Proration uses the exact ratio of ``timedelta``s, i.e. seconds and their
  microseconds; with whole-second timestamps that is "the exact seconds left".
  Proration is refused between tiers of different currencies (one invoice has one
  currency). Only a fixed fee is prorated (of any model; usage never is).
- Splitting usage at a tier change is the caller's: rate the requests before the
  change with ``usage_lines(old, before)`` and those after it with
  ``usage_lines(new, after)``; each gets its tier's full allowance and bands.
- Validation (``validate_pricing``) also refuses a non-zero value in a field the
  model does not use (a FLAT tier with a unit price would silently never charge it),
  and a model that could never charge anything: FLAT needs a fee, PER_UNIT a price,
  FLAT_PLUS_OVERAGE an overage price (its fee may be 0: a free allowance), GRADUATED
  and VOLUME one band with a price or a flat fee, whether or not a fixed fee comes
  with them (a fee with free requests is FLAT). FREE does not need a currency.
  Band error keys are 0-based like Django formset prefixes: "bands-2-up_to".
- Descriptions are plain English for a Stripe invoice item; ``Pricing`` carries no
  tier name, so ``proration_lines`` takes ``old_name`` / ``new_name`` for
  "Unused time on Gold (…)", and callers may ``dataclasses.replace`` any description.
- A trial period charges nothing: the caller simply does not rate it.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from pricing.currencies import (
    UNIT_PRICE_MAX_DECIMAL_PLACES,
    decimal_places,
    format_unit_price,
    from_minor,
    is_known,
    round_half_up,
    to_minor,
)
from pricing.dates import day_month_year
from pricing.periods import as_utc


class PricingModel(StrEnum):
    FREE = "FREE"
    FLAT = "FLAT"
    PER_UNIT = "PER_UNIT"
    FLAT_PLUS_OVERAGE = "FLAT_PLUS_OVERAGE"
    GRADUATED = "GRADUATED"
    VOLUME = "VOLUME"


class LineKind(StrEnum):
    FIXED = "FIXED"
    USAGE = "USAGE"
    OVERAGE = "OVERAGE"
    BAND = "BAND"
    BAND_FLAT = "BAND_FLAT"
    PRORATION_CREDIT = "PRORATION_CREDIT"
    PRORATION_CHARGE = "PRORATION_CHARGE"
    # Usage of a closed period counted after its invoice was written.
    LATE_USAGE = "LATE_USAGE"
    # A correction's reversal of the usage an earlier invoice billed.
    REVERSAL = "REVERSAL"
    # The monthly price of an organization's platform plan.
    PLATFORM_FEE = "PLATFORM_FEE"


# Line kinds that bill usage (a re-rate reverses and replaces them).
USAGE_KINDS = frozenset(
    {
        LineKind.USAGE,
        LineKind.OVERAGE,
        LineKind.BAND,
        LineKind.BAND_FLAT,
        LineKind.LATE_USAGE,
        LineKind.REVERSAL,
    }
)


class InvalidPricing(ValueError):
    """A pricing that ``validate_pricing`` rejects; ``errors`` holds its messages."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


def _money(owner: object, name: str) -> None:
    """Accept Decimal or int (exact) for a money field; refuse floats and the rest."""
    value = getattr(owner, name)
    if isinstance(value, Decimal):
        return
    if isinstance(value, int) and not isinstance(value, bool):
        object.__setattr__(owner, name, Decimal(value))
        return
    raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")


@dataclass(frozen=True)
class Band:
    """One band of a GRADUATED or VOLUME pricing; ``up_to`` None = open-ended."""

    up_to: int | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _money(self, "unit_price")
        _money(self, "flat_fee")


@dataclass(frozen=True)
class Pricing:
    """A tier's price. Build freely, then check with ``validate_pricing``; the rating
    functions raise ``InvalidPricing`` for a pricing it rejects."""

    model: PricingModel
    currency: str
    fixed_fee: Decimal = Decimal(0)
    unit_price: Decimal = Decimal(0)
    included_requests: int = 0
    overage_price: Decimal = Decimal(0)
    overage_block_size: int = 1
    bands: tuple[Band, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", PricingModel(self.model))
        if isinstance(self.currency, str):
            object.__setattr__(self, "currency", self.currency.lower())
        for name in ("fixed_fee", "unit_price", "overage_price"):
            _money(self, name)
        bands = tuple(self.bands)
        for band in bands:
            if not isinstance(band, Band):
                raise TypeError(f"bands must hold Band objects, not {band!r}")
        object.__setattr__(self, "bands", bands)


@dataclass(frozen=True)
class Line:
    """One invoice line. ``unit_price`` is in major units, exact."""

    kind: LineKind
    description: str
    quantity: int
    unit_price: Decimal
    amount_minor: int
    currency: str
    period_start: datetime | None = None
    period_end: datetime | None = None


# Which optional fields each model uses; a non-default value elsewhere is an error.
_USES = {
    PricingModel.FREE: set(),
    PricingModel.FLAT: {"fixed_fee"},
    PricingModel.PER_UNIT: {"fixed_fee", "unit_price"},
    PricingModel.FLAT_PLUS_OVERAGE: {
        "fixed_fee",
        "included_requests",
        "overage_price",
        "overage_block_size",
    },
    PricingModel.GRADUATED: {"fixed_fee", "bands"},
    PricingModel.VOLUME: {"fixed_fee", "bands"},
}
_LABELS = {
    "fixed_fee": "a flat fee",
    "unit_price": "a price per request",
    "overage_price": "an overage price",
}


def validate_pricing(pricing: Pricing) -> list[tuple[str, str]]:
    """Every problem with ``pricing`` as (field, message), in field order; [] if
    it is valid. Fields are Pricing's attribute names, bands' are
    "bands-<i>-up_to", "bands-<i>-unit_price", "bands-<i>-flat_fee" (0-based)."""
    model = pricing.model
    uses = _USES[model]
    name = model.name.replace("_", " ").capitalize()
    errors: list[tuple[str, str]] = []

    if model is not PricingModel.FREE and not is_known(pricing.currency):
        errors.append(("currency", f"Unknown currency code {pricing.currency!r}."))

    for field in ("fixed_fee", "unit_price", "overage_price"):
        value = getattr(pricing, field)
        if field in uses:
            errors += [(field, message) for message in _price_errors(value)]
        elif value != 0:
            errors.append((field, f"{name} pricing does not use {_LABELS[field]}."))

    included = pricing.included_requests
    if "included_requests" not in uses:
        if included != 0:
            errors.append(
                ("included_requests", f"{name} pricing does not use included requests.")
            )
    elif not _is_int(included) or included < 0:
        errors.append(("included_requests", "Enter a whole number, 0 or more."))

    block = pricing.overage_block_size
    if "overage_block_size" not in uses:
        if block != 1:
            errors.append(
                ("overage_block_size", f"{name} pricing does not use overage blocks.")
            )
    elif not _is_int(block) or block < 1:
        errors.append(("overage_block_size", "Enter a whole number, 1 or more."))

    if "bands" in uses:
        errors += _band_errors(pricing.bands)
    elif pricing.bands:
        errors.append(("bands", f"{name} pricing does not use bands."))

    if not errors:
        errors += _charge_errors(pricing)
    return errors


def _price_errors(value: Decimal) -> list[str]:
    if not value.is_finite():
        return ["Enter a number."]
    if value < 0:
        return ["Enter 0 or more."]
    if decimal_places(value) > UNIT_PRICE_MAX_DECIMAL_PLACES:
        return [f"Use at most {UNIT_PRICE_MAX_DECIMAL_PLACES} decimal places."]
    return []


def _band_errors(bands: Sequence[Band]) -> list[tuple[str, str]]:
    if not bands:
        return [("bands", "Add at least one band.")]
    errors = []
    previous: int | None = 0
    for i, band in enumerate(bands):
        key = f"bands-{i}-up_to"
        last = i == len(bands) - 1
        if band.up_to is None:
            if not last:
                errors.append((key, "Only the last band can be open-ended."))
            previous = None
        elif not _is_int(band.up_to):
            errors.append((key, "Enter a whole number of requests."))
            previous = None
        else:
            if band.up_to < 1:
                errors.append((key, "Enter 1 or more."))
            elif previous is not None and band.up_to <= previous:
                errors.append(
                    (key, f"Must be more than {previous:,}, the previous band's limit.")
                )
            if last:
                errors.append(
                    (key, "The last band must be open-ended: leave “up to” empty.")
                )
            previous = band.up_to
        for field in ("unit_price", "flat_fee"):
            errors += [
                (f"bands-{i}-{field}", message)
                for message in _price_errors(getattr(band, field))
            ]
    return errors


def _charge_errors(pricing: Pricing) -> list[tuple[str, str]]:
    """A paid model must be able to charge something."""
    match pricing.model:
        case PricingModel.FLAT if pricing.fixed_fee == 0:
            return [("fixed_fee", "A flat fee must be more than 0.")]
        case PricingModel.PER_UNIT if pricing.unit_price == 0:
            return [("unit_price", "A price per request must be more than 0.")]
        case PricingModel.FLAT_PLUS_OVERAGE if pricing.overage_price == 0:
            return [
                (
                    "overage_price",
                    "An overage price must be more than 0 (or make the meter free).",
                )
            ]
        case PricingModel.GRADUATED | PricingModel.VOLUME if not any(
            band.unit_price > 0 or band.flat_fee > 0 for band in pricing.bands
        ):
            return [("bands", "At least one band needs a price or a flat fee.")]
    return []


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(pricing: Pricing) -> None:
    if not isinstance(pricing, Pricing):
        raise TypeError(f"Expected a Pricing, not {type(pricing).__name__}")
    errors = validate_pricing(pricing)
    if errors:
        raise InvalidPricing(errors)


def _check_quantity(quantity: int) -> None:
    if not _is_int(quantity):
        raise TypeError(f"quantity must be an int, not {type(quantity).__name__}")
    if quantity < 0:
        raise ValueError(f"quantity must be 0 or more, got {quantity}")


def _check_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(start, "period_start"), as_utc(end, "period_end")
    if not start < end:
        raise ValueError(f"The period must end after it starts: {start} to {end}")
    return start, end


# -- descriptions ---------------------------------------------------------------

_DASH = "\u2013"  # en dash, between the ends of a range


def _date(value: datetime) -> str:
    return day_month_year(value)


def _date_time(value: datetime) -> str:
    time = f"{value:%H:%M:%S}" if value.second else f"{value:%H:%M}"
    return f"{_date(value)} {time}"


def _requests(n: int) -> str:
    return f"{n:,} request" if n == 1 else f"{n:,} requests"


def _span(first: int, last: int | None) -> str:
    """Requests first..last (inclusive), last None = no upper limit."""
    if last is None:
        return "all requests" if first == 1 else f"{first:,}+ requests"
    if first == last:
        return f"request {first:,}"
    return f"{first:,}{_DASH}{last:,} requests"


# -- rating ---------------------------------------------------------------------


def _line(
    kind: LineKind,
    description: str,
    quantity: int,
    unit_price: Decimal,
    currency: str,
    period: tuple[datetime | None, datetime | None] = (None, None),
) -> Line:
    amount = to_minor(Fraction(quantity) * Fraction(unit_price), currency)
    return Line(kind, description, quantity, unit_price, amount, currency, *period)


def usage_lines(
    pricing: Pricing,
    quantity: int,
    *,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> list[Line]:
    """The arrears lines for ``quantity`` requests in one period.

    FREE and FLAT give []. The optional period is copied onto the lines.
    """
    _check(pricing)
    _check_quantity(quantity)
    period: tuple[datetime | None, datetime | None] = (None, None)
    if period_start is not None or period_end is not None:
        if period_start is None or period_end is None:
            raise ValueError("Give both period_start and period_end, or neither.")
        period = _check_period(period_start, period_end)

    match pricing.model:
        case PricingModel.PER_UNIT:
            return _per_unit_lines(pricing, quantity, period)
        case PricingModel.FLAT_PLUS_OVERAGE:
            return _overage_lines(pricing, quantity, period)
        case PricingModel.GRADUATED:
            return _graduated_lines(pricing, quantity, period)
        case PricingModel.VOLUME:
            return _volume_lines(pricing, quantity, period)
    return []


def _per_unit_lines(pricing, quantity, period) -> list[Line]:
    if quantity == 0:
        return []
    price = format_unit_price(pricing.unit_price, pricing.currency)
    text = f"{_requests(quantity)} at {price}"
    return [
        _line(
            LineKind.USAGE, text, quantity, pricing.unit_price, pricing.currency, period
        )
    ]


def _overage_lines(pricing, quantity, period) -> list[Line]:
    included, size = pricing.included_requests, pricing.overage_block_size
    over = quantity - included
    if over <= 0:
        return []
    blocks = -(-over // size)  # a partial block counts as a whole one
    price = format_unit_price(pricing.overage_price, pricing.currency)
    above = f" above {included:,} included" if included else ""
    if size == 1:
        text = f"Overage: {_requests(over)}{above} at {price}"
    else:
        unit = "block" if blocks == 1 else "blocks"
        text = (
            f"Overage: {blocks:,} {unit} of {_requests(size)} at {price} per block"
            f" ({_requests(over)}{above})"
        )
    return [
        _line(
            LineKind.OVERAGE,
            text,
            blocks,
            pricing.overage_price,
            pricing.currency,
            period,
        )
    ]


def _graduated_lines(pricing, quantity, period) -> list[Line]:
    currency = pricing.currency
    lines = []
    lower = 0  # requests priced by the bands before this one
    for number, band in enumerate(pricing.bands, start=1):
        top = quantity if band.up_to is None else min(quantity, band.up_to)
        used = max(0, top - lower)
        if used:
            price = format_unit_price(band.unit_price, currency)
            text = f"{_span(lower + 1, lower + used).capitalize()} at {price}"
            lines.append(
                _line(LineKind.BAND, text, used, band.unit_price, currency, period)
            )
        # Quantity 0 enters the first band, as in Stripe.
        if (used or number == 1) and band.flat_fee:
            lines.append(_band_flat_line(number, lower, band, currency, period))
        if band.up_to is None or quantity <= band.up_to:
            break
        lower = band.up_to
    return lines


def _volume_lines(pricing, quantity, period) -> list[Line]:
    currency = pricing.currency
    number, lower, band = _volume_band(pricing.bands, quantity)
    lines = []
    if quantity:
        price = format_unit_price(band.unit_price, currency)
        text = (
            f"{_requests(quantity)} at {price}"
            f" (band {number}: {_span(lower + 1, band.up_to)})"
        )
        lines.append(
            _line(LineKind.BAND, text, quantity, band.unit_price, currency, period)
        )
    if band.flat_fee:
        lines.append(_band_flat_line(number, lower, band, currency, period))
    return lines


def _volume_band(bands: Sequence[Band], quantity: int) -> tuple[int, int, Band]:
    """(1-based number, lower bound, band) of the band ``quantity`` falls in; 0
    falls in the first band."""
    lower = 0
    for number, band in enumerate(bands, start=1):
        if band.up_to is None or quantity <= band.up_to:
            return number, lower, band
        lower = band.up_to
    raise AssertionError("validated bands end with an open-ended band")


def _band_flat_line(number, lower, band, currency, period) -> Line:
    text = f"Flat fee for band {number} ({_span(lower + 1, band.up_to)})"
    return _line(LineKind.BAND_FLAT, text, 1, band.flat_fee, currency, period)


def _fixed_fee(pricing: Pricing) -> Decimal:
    # Validated: only FREE cannot have one, and its fee is then 0.
    return pricing.fixed_fee


def fixed_fee_lines(
    pricing: Pricing, *, period_start: datetime, period_end: datetime
) -> list[Line]:
    """The in-advance fixed fee of the period that starts, whatever the model of
    the requests' price; [] for a zero fee."""
    _check(pricing)
    start, end = _check_period(period_start, period_end)
    fee = _fixed_fee(pricing)
    if not fee:
        return []
    text = f"Flat fee {_date(start)} {_DASH} {_date(end)}"
    if pricing.model is PricingModel.FLAT_PLUS_OVERAGE and pricing.included_requests:
        text += f" (includes {_requests(pricing.included_requests)})"
    return [_line(LineKind.FIXED, text, 1, fee, pricing.currency, (start, end))]


def proration_lines(
    *,
    old: Pricing,
    new: Pricing,
    period_start: datetime,
    period_end: datetime,
    changed_at: datetime,
    old_name: str = "the previous tier",
    new_name: str = "the new tier",
) -> list[Line]:
    """An upgrade at ``changed_at``: a credit (negative) for the unused part of
    ``old``'s fixed fee and a charge for the rest of ``new``'s, each prorated by
    the exact time left in the period and rounded half-up on its own.

    No line for a model without a fixed fee, nor for an amount that rounds to 0.
    The names only feed the descriptions ("Unused time on Gold (…)").
    """
    _check(old)
    _check(new)
    start, end = _check_period(period_start, period_end)
    at = as_utc(changed_at, "changed_at")
    if not start <= at <= end:
        raise ValueError(f"changed_at {at} is outside the period {start} to {end}")
    paid = [p for p in (old, new) if p.model is not PricingModel.FREE]
    if len({p.currency for p in paid}) > 1:
        raise ValueError(
            f"Cannot prorate between currencies: {old.currency} → {new.currency}"
        )

    microsecond = timedelta(microseconds=1)
    left = Fraction((end - at) // microsecond, (end - start) // microsecond)
    lines = []
    for pricing, kind, sign, text in (
        (old, LineKind.PRORATION_CREDIT, -1, f"Unused time on {old_name}"),
        (new, LineKind.PRORATION_CHARGE, 1, f"Remaining time on {new_name}"),
    ):
        fee = _fixed_fee(pricing)
        if not fee:
            continue
        amount = sign * to_minor(Fraction(fee) * left, pricing.currency)
        if not amount:
            continue
        description = f"{text} ({_date_time(at)} {_DASH} {_date_time(end)} UTC)"
        unit_price = from_minor(amount, pricing.currency)
        lines.append(
            Line(kind, description, 1, unit_price, amount, pricing.currency, at, end)
        )
    return lines


def total_minor(lines: Iterable[Line]) -> int:
    """The invoice total: the sum of the rounded lines, all in one currency."""
    lines = list(lines)
    currencies = {line.currency for line in lines}
    if len(currencies) > 1:
        raise ValueError(f"Lines in several currencies: {sorted(currencies)}")
    return sum(line.amount_minor for line in lines)


def application_fee_minor(total_minor: int, commission_percent: Decimal) -> int:
    """The platform's commission on an invoice total, in minor units, rounded
    half-up; 0 when the total is 0 or negative (a credit)."""
    if not _is_int(total_minor):
        raise TypeError(f"total_minor must be an int, not {type(total_minor).__name__}")
    if isinstance(commission_percent, bool) or not isinstance(
        commission_percent, Decimal | int
    ):
        raise TypeError("commission_percent must be a Decimal")
    if not Decimal(commission_percent).is_finite() or not (
        0 <= commission_percent <= 100
    ):
        raise ValueError(
            f"commission_percent must be 0 to 100, got {commission_percent}"
        )
    if total_minor <= 0:
        return 0
    return round_half_up(Fraction(total_minor) * Fraction(commission_percent) / 100)


def period_cost_minor(pricing: Pricing, quantity: int) -> int:
    """What one whole period costs with ``quantity`` requests: its fixed fee plus
    its usage, each line rounded as on the invoice (the price preview)."""
    usage = total_minor(usage_lines(pricing, quantity))  # validates the pricing
    fee = _fixed_fee(pricing)
    return usage + (to_minor(fee, pricing.currency) if fee else 0)


def price_preview(
    pricing: Pricing, quantities: Iterable[int] = (10_000, 100_000, 1_000_000)
) -> list[tuple[int, int]]:
    """(quantity, period cost in minor units) for each quantity."""
    return [(quantity, period_cost_minor(pricing, quantity)) for quantity in quantities]


def with_fixed_fee(usage: Pricing | None, *, fee: Decimal, currency: str) -> Pricing:
    """A tier version's price as one value: its fixed fee and its requests' price
    (``usage``, None when requests are not charged). A fee alone is FLAT; a fee
    with charged requests keeps the requests' model (any of them) with the fee on
    top; nothing at all is FREE. The inverse of ``split_fixed_fee``."""
    if usage is None or usage.model is PricingModel.FREE:
        if fee:
            return Pricing(model=PricingModel.FLAT, currency=currency, fixed_fee=fee)
        return Pricing(model=PricingModel.FREE, currency=currency)
    return replace(usage, currency=currency, fixed_fee=fee)


def split_fixed_fee(pricing: Pricing) -> tuple[Decimal, Pricing | None]:
    """(the fixed fee, the usage price without it, or None if usage is free)."""
    fee = _fixed_fee(pricing)
    if pricing.model in (PricingModel.FREE, PricingModel.FLAT):
        return fee, None
    return fee, replace(pricing, fixed_fee=Decimal(0))
