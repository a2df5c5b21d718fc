"""The price preview of a tier: per priced meter, what a period costs at quantities
that make sense for that meter's price, within its quota.

Pure functions over `pricing.rating` values: no ORM, no Django.

Decisions
---------
- A row's cost is the meter's usage lines for one whole period, each rounded as the
  invoice writes it (`rating.usage_lines`, then `stripe_money.chargeable_lines`, as
  the billing engine does), summed. The fixed fee is apart: it is the version's, not
  a meter's.
- The quantities come from the price itself: the included units and a few multiples
  (included units, then overage), the band edges, half the first and two and ten
  times the last (graduated, volume), decades of the display scale (per unit). So
  a price per 1K tokens is previewed in millions of tokens and a free allowance of
  10,000 requests at 5,000, 10,000, 20,000 and 50,000.
- A quota is turned into the most a subscriber can use in one period: the limit
  times the quota windows in the longest period of the cycle (a week: 7 days; a
  month: 31 days, one calendar month; a year: 366 days, 12 calendar months; a
  billing-period quota: once). A calendar-month quota on a monthly cycle counts
  once, though a period anchored mid-month spans two calendar months: the preview
  shows what a subscriber gets in a month, not the corner case.
- A hard quota (the gateway answers 429) cuts the rows: none above the period's
  maximum, which is itself a row ("stops at"). A soft quota keeps every row, adds
  one at the quota and marks those above it (billed, not refused).
- The "typical" row of a meter, used for the example total, is the included units
  (overage), the first band edge (bands) or the middle row (per unit), never above
  a hard quota's maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

from pricing.rating import Pricing, PricingModel, total_minor, usage_lines
from pricing.stripe_money import chargeable_lines, chargeable_period_cost

MAX_ROWS = 7
# Quota windows in the longest period of each billing cycle (see Decisions).
_DAYS = {"week": 7, "month": 31, "year": 366}
_MONTHS = {"week": 1, "month": 1, "year": 12}


@dataclass(frozen=True)
class Quota:
    """A quota on a meter: ``limit`` units per ``unit`` window ("minute", "hour",
    "day", "month" for a calendar month, "period" for the billing period)."""

    limit: int
    unit: str
    hard: bool


@dataclass(frozen=True)
class Row:
    quantity: int
    amount_minor: int
    at_quota: bool = False  # the quota's row: where a hard quota stops
    over_quota: bool = False  # above a soft quota: billed, not refused
    typical: bool = False


@dataclass(frozen=True)
class MeterPreview:
    rows: tuple[Row, ...]
    # The most one period can use under the quota (None: no quota).
    period_limit: int | None
    hard: bool

    @property
    def typical(self) -> Row | None:
        return next((row for row in self.rows if row.typical), None)


def period_limit(quota: Quota, cycle: str) -> int:
    """The most units one billing period of ``cycle`` can use under ``quota``."""
    days = _DAYS[cycle]
    windows = {
        "minute": days * 24 * 60,
        "hour": days * 24,
        "day": days,
        "month": _MONTHS[cycle],
        "period": 1,
    }[quota.unit]
    return quota.limit * windows


def usage_cost_minor(pricing: Pricing, quantity: int) -> int:
    """A period's usage lines of ``quantity`` units, as invoiced, summed."""
    return total_minor(chargeable_lines(usage_lines(pricing, quantity)))


def fixed_fee_minor(pricing: Pricing) -> int:
    """A whole period's fixed fee as invoiced (0 for a model without one)."""
    return chargeable_period_cost(pricing, 0) - usage_cost_minor(pricing, 0)


def charges_usage(pricing: Pricing) -> bool:
    """Whether the price charges anything by usage (FREE and FLAT do not)."""
    return pricing.model not in (PricingModel.FREE, PricingModel.FLAT)


def quantities(pricing: Pricing, scale: int = 1) -> tuple[list[int], int]:
    """The quantities worth previewing for ``pricing`` and the typical one."""
    model = pricing.model
    if model is PricingModel.FLAT_PLUS_OVERAGE and pricing.included_requests:
        included = pricing.included_requests
        return [included // 2, included, 2 * included, 5 * included], included
    if model in (PricingModel.GRADUATED, PricingModel.VOLUME):
        edges = [b.up_to for b in pricing.bands if b.up_to is not None]
        if edges:
            edges = edges[: MAX_ROWS - 3]
            return [edges[0] // 2, *edges, 2 * edges[-1], 10 * edges[-1]], edges[0]
    decades = [scale * 10**n for n in (2, 3, 4, 5, 6)]
    return decades, decades[2]


def meter_preview(
    pricing: Pricing,
    *,
    scale: int = 1,
    quota: Quota | None = None,
    cycle: str = "month",
) -> MeterPreview:
    """The rows of one priced meter's preview (see the module's Decisions)."""
    wanted, typical = quantities(pricing, scale)
    limit = period_limit(quota, cycle) if quota else None
    hard = bool(quota and quota.hard)
    wanted = sorted({q for q in wanted if q > 0})
    if limit is not None:
        if hard:
            wanted = [q for q in wanted if q < limit]
            if len(wanted) < 2 and limit // 2 > 0:
                wanted = sorted({*wanted, limit // 2})
            typical = min(typical, limit)
        wanted = sorted({*wanted, limit})
    rows = tuple(
        Row(
            quantity=q,
            amount_minor=usage_cost_minor(pricing, q),
            at_quota=q == limit,
            over_quota=limit is not None and not hard and q > limit,
            typical=q == typical,
        )
        for q in wanted
    )
    return MeterPreview(rows=rows, period_limit=limit, hard=hard)
