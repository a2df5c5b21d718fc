"""The tier form's and tier page's price preview: the fixed fee, then a small table
per priced meter (requests included) at quantities that fit that meter's price and
quota, in its words (`pricing.preview` has the rules), and an example total."""

from __future__ import annotations

from dataclasses import dataclass

from pricing.currencies import format_money
from pricing.preview import Quota, Row, charges_usage, fixed_fee_minor, meter_preview
from publisher.meters import price_text
from publisher.models import REQUESTS_METER, Meter, QuotaUnit
from publisher.services import TierLimits, TierPrice


@dataclass(frozen=True)
class PreviewRow:
    quantity: str  # "1,000,000 tokens"
    amount: str  # "$2.00"
    row: Row


@dataclass(frozen=True)
class MeterTable:
    key: str
    name: str
    price: str  # "$0.002 per 1K tokens"
    rows: list[PreviewRow]
    quota: str  # "Stops at 1,550 requests per month (…)", or "No quota."
    hard: bool  # the quota stops calls


@dataclass(frozen=True)
class TierPreview:
    cycle: str
    fixed_fee: str | None  # None: no fixed fee
    tables: list[MeterTable]
    # The fixed fee plus each table's typical row, when there is a table.
    example: str | None
    example_total: str | None


def _plural(unit: str) -> str:
    return f"{unit}s"


def _quota_text(quota: Quota | None, limit: int | None, unit: str, cycle: str) -> str:
    if quota is None or limit is None:
        return f"No quota on {_plural(unit)}."
    window = QuotaUnit(quota.unit).label
    if quota.hard:
        if quota.unit == "period" or (quota.unit == "month" and cycle == "month"):
            how = "hard quota"
        else:
            how = f"hard quota of {quota.limit:,} {_plural(unit)} {window}"
        return (
            f"Stops at {limit:,} {_plural(unit)} per {cycle} ({how}): the gateway "
            "refuses the calls beyond it."
        )
    return (
        f"Soft quota of {quota.limit:,} {_plural(unit)} {window} ({limit:,} per "
        f"{cycle}): use above it is billed, not refused."
    )


def _table(
    *,
    key: str,
    name: str,
    unit: str,
    scale: int,
    price,
    quota: Quota | None,
    cycle: str,
) -> tuple[MeterTable, Row | None]:
    preview = meter_preview(price, scale=scale, quota=quota, cycle=cycle)
    rows = [
        PreviewRow(
            quantity=f"{row.quantity:,} {_plural(unit) if row.quantity != 1 else unit}",
            amount=format_money(row.amount_minor, price.currency),
            row=row,
        )
        for row in preview.rows
    ]
    table = MeterTable(
        key=key,
        name=name,
        price=price_text(price, unit_label=unit, scale=scale),
        rows=rows,
        quota=_quota_text(quota, preview.period_limit, unit, cycle),
        hard=preview.hard,
    )
    return table, preview.typical


def tier_preview(
    *, price: TierPrice, limits: TierLimits, meters: dict[str, Meter]
) -> TierPreview | None:
    """The preview of ``price`` under ``limits`` (the requests' quota); ``meters``
    names each meter key (display name, unit, scale). None for a free price."""
    if price.is_free:
        return None
    pricing, cycle = price.pricing, price.billing_cycle
    currency = pricing.currency
    tables: list[tuple[MeterTable, Row | None, str]] = []
    if charges_usage(pricing):
        quota = None
        if limits.quota_limit:
            quota = Quota(
                limits.quota_limit, limits.quota_unit, limits.stop_on_quota_reach
            )
        table, typical = _table(
            key=REQUESTS_METER,
            name="Requests",
            unit="request",
            scale=1,
            price=pricing,
            quota=quota,
            cycle=cycle,
        )
        tables.append((table, typical, "request"))
    for spec in price.meters:
        if not charges_usage(spec.pricing):
            continue
        meter = meters.get(spec.meter)
        quota = None
        if spec.quota_limit:
            quota = Quota(spec.quota_limit, spec.quota_unit, spec.stop_on_quota_reach)
        unit = meter.unit_label if meter else "unit"
        table, typical = _table(
            key=spec.meter,
            name=meter.display_name if meter else spec.meter,
            unit=unit,
            scale=meter.display_scale if meter else 1,
            price=spec.pricing,
            quota=quota,
            cycle=cycle,
        )
        tables.append((table, typical, unit))
    fee = fixed_fee_minor(pricing)
    example = example_total = None
    if tables:
        parts = [f"the {format_money(fee, currency)} fee"] if fee else []
        total = fee
        for _shown, typical, unit in tables:
            if typical is not None:
                parts.append(f"{typical.quantity:,} {_plural(unit)}")
                total += typical.amount_minor
        example = " + ".join(parts)
        example_total = format_money(total, currency)
    return TierPreview(
        cycle=cycle,
        fixed_fee=format_money(fee, currency) if fee else None,
        tables=[t for t, _typical, _unit in tables],
        example=example,
        example_total=example_total,
    )
