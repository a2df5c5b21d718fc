"""ISO 4217 minor units (apimon) ↔ Stripe's amounts: the one translation.

apimon stores every amount in the ISO 4217 minor unit of its currency.
Stripe agrees for almost every currency, with four exceptions (Stripe's
"Supported currencies" page):

- **MGA** (ISO: 2 decimals) is zero-decimal on Stripe: Stripe takes whole ariary.
- **ISK** and **UGX** (ISO: 0 decimals) must be sent as two-decimal amounts whose
  last two digits are 00 (kept that way for backwards compatibility): amount × 100.
- **BHD, JOD, KWD, OMR, TND** (ISO and Stripe: 3 decimals) must end in 0 on Stripe:
  Stripe charges multiples of 10 of the minor unit.
- **IQD** and **LYD** (ISO: 3 decimals) are not Stripe presentment currencies.

Decision: the invoice apimon shows is exactly what Stripe charges. So for MGA and
the five three-decimal currencies, the billing engine rounds each invoice line
half-up to Stripe's smallest chargeable step (`stripe_step`: 100 ISO minor units
for MGA, 10 for the three-decimal ones) when it writes the invoice, and the
platform fee the same way; `to_stripe_amount` then translates exactly and refuses
an amount that is not a whole number of steps (a bug, never a silent rounding).

One rule for "can Stripe charge this currency": `stripe_can_charge`. The publisher's
tier form and the tier services refuse a COMMERCIAL tier in a currency it rejects,
the catalog sync creates no Stripe Price in one (and reports the tier), the store
opens no Checkout in one, and the push refuses such an invoice with a clear error
before it calls Stripe. The Stripe emulator keeps its own list, mirroring Stripe's
(`stripe_emulator.money.NOT_ON_STRIPE`); a test checks that the two agree.

Stripe's minimum charge amounts (e.g. USD 0.50) are not a rule here: Stripe itself
marks an invoice whose amount due is below the minimum as paid and carries the amount
to the customer's credit balance (the next invoice collects it), so apimon pushes
small invoices as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from pricing.currencies import from_minor, is_known, minor_units, round_half_up
from pricing.rating import (
    Line,
    Pricing,
    fixed_fee_lines,
    total_minor,
    usage_lines,
)

# ISO minor units per Stripe unit, where they differ.
_STEP = {"mga": 100, "bhd": 10, "jod": 10, "kwd": 10, "omr": 10, "tnd": 10}
# Stripe units per ISO minor unit (ISO zero-decimal, Stripe two-decimal).
_SCALE_UP = {"isk": 100, "ugx": 100}
# ISO 4217 currencies (pricing.currencies) that are not Stripe presentment currencies.
NOT_ON_STRIPE = frozenset({"iqd", "lyd"})


class NotChargeableOnStripe(ValueError):
    """An amount or currency that Stripe cannot take as is."""


def stripe_can_charge(currency: object) -> bool:
    """True if Stripe can charge in ``currency`` (any case): an ISO 4217 currency
    apimon knows that is also a Stripe presentment currency. False for IQD and LYD,
    and for anything that is not a currency code."""
    return is_known(currency) and str(currency).lower() not in NOT_ON_STRIPE


def require_stripe_currency(currency: str) -> None:
    """Raise NotChargeableOnStripe unless Stripe can charge in ``currency``."""
    if not stripe_can_charge(currency):
        raise NotChargeableOnStripe(
            f"Stripe does not accept {str(currency).upper()}: invoices in it cannot "
            "be charged through Stripe."
        )


def stripe_step(currency: str) -> int:
    """The smallest amount Stripe can charge, in ISO minor units (1 for most)."""
    return _STEP.get(currency.lower(), 1)


def round_to_step(amount_minor: int | Fraction, currency: str) -> int:
    """An ISO minor amount rounded half-up to a whole number of Stripe steps."""
    step = stripe_step(currency)
    if step == 1 and isinstance(amount_minor, int):
        return amount_minor
    return round_half_up(Fraction(amount_minor) / step) * step


def chargeable_lines(lines: list[Line]) -> list[Line]:
    """Lines whose amounts Stripe can charge: unchanged for most currencies; for MGA
    and three-decimal currencies each line's exact amount (quantity × unit price) is
    rounded half-up once, to Stripe's step (a fee's or proration's unit price follows,
    so quantity × unit price still holds for lines of quantity 1)."""
    result = []
    for line in lines:
        if stripe_step(line.currency) == 1:
            result.append(line)
            continue
        exact = (
            Fraction(line.quantity)
            * Fraction(line.unit_price)
            * 10 ** minor_units(line.currency)
        )
        amount = round_to_step(exact, line.currency)
        if amount == line.amount_minor:
            result.append(line)
            continue
        unit_price = line.unit_price
        if line.quantity == 1:
            unit_price = from_minor(amount, line.currency)
        result.append(replace(line, amount_minor=amount, unit_price=unit_price))
    return result


# Any whole period will do: a preview's fixed fee is never prorated.
_PREVIEW_PERIOD = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))


def chargeable_period_cost(pricing: Pricing, quantity: int) -> int:
    """What one whole period with ``quantity`` requests costs on the invoice: its
    fixed fee and usage lines, each rounded as the engine writes them
    (`chargeable_lines`), so a BHD preview shows the 10-fils steps Stripe charges.
    Equal to `pricing.rating.period_cost_minor` for currencies whose step is 1."""
    start, end = _PREVIEW_PERIOD
    lines = fixed_fee_lines(pricing, period_start=start, period_end=end)
    lines += usage_lines(pricing, quantity)
    return total_minor(chargeable_lines(lines))


def chargeable_price_preview(
    pricing: Pricing, quantities: Iterable[int] = (10_000, 100_000, 1_000_000)
) -> list[tuple[int, int]]:
    """(quantity, period cost in ISO minor units as invoiced) for each quantity: the
    publisher's price preview."""
    return [(q, chargeable_period_cost(pricing, q)) for q in quantities]


def application_fee(
    total_minor: int, commission_percent: Decimal, currency: str
) -> int:
    """The platform's commission on a total, rounded half-up once, to Stripe's step;
    0 for a total of 0 or less."""
    if total_minor <= 0:
        return 0
    exact = Fraction(total_minor) * Fraction(commission_percent) / 100
    return min(round_to_step(exact, currency), total_minor)


def to_stripe_amount(amount_minor: int, currency: str) -> int:
    """The amount to send to Stripe for ``amount_minor`` ISO minor units."""
    require_stripe_currency(currency)
    code = currency.lower()
    if code in _SCALE_UP:
        return amount_minor * _SCALE_UP[code]
    step = stripe_step(code)
    if amount_minor % step:
        raise NotChargeableOnStripe(
            f"{amount_minor} is not a whole number of Stripe's {step}-unit steps "
            f"for {code.upper()}."
        )
    return amount_minor // step if code == "mga" else amount_minor


def from_stripe_amount(amount: int, currency: str) -> int:
    """Stripe's amount back to ISO minor units (for amounts Stripe reports)."""
    code = currency.lower()
    if code in _SCALE_UP:
        return round_half_up(Fraction(amount, _SCALE_UP[code]))
    if code == "mga":
        return amount * _STEP["mga"]
    return amount
