"""An API's meters: what a subscription is billed for (SPEC §10, docs/metering.md).

Services (writes) and the one read the other layers share. Every API has the built-in
`requests` meter (made with the API, and by a data migration for older APIs); a
publisher adds meters of weighted operations, of quantities the backend reports in a
response header, or of quantities posted to the ingest API only.

A meter's key is fixed once it exists: it names the meter in usage rows, in tier
prices, in the `Apimon-Meter-<key>` header and in ingest events. A meter priced by a
tier version cannot be deleted (the version is what subscribers were sold); a meter
without prices can, and its usage rows, if any, stay and are billed by nobody.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apimon.models import User
from apimon.validators import validate_single_line
from pricing.currencies import format_unit_price
from pricing.rating import Line, LineKind, Pricing, PricingModel
from publisher import hooks, operations
from publisher.models import (
    METER_KEY_PATTERN,
    REQUESTS_METER,
    Api,
    Meter,
    MeterPrice,
    MeterSource,
)
from publisher.openapi import operation_ids

MAX_METERS = 20
# Powers of ten only, so that a price typed per 1,000 units is an exact price per unit.
SCALES = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
CUSTOM_SOURCES = (MeterSource.OPERATIONS, MeterSource.RESPONSE, MeterSource.INGEST)
_KEY = re.compile(METER_KEY_PATTERN)


def requests_meter(api: Api | None) -> Meter:
    """The built-in meter as a row (not saved): one unit per counted request."""
    return Meter(
        api=api,
        key=REQUESTS_METER,
        display_name="Requests",
        unit_label="request",
        display_scale=1,
        source=MeterSource.REQUESTS,
    )


def requests_meter_create(*, api: Api) -> Meter:
    meter = requests_meter(api)
    meter.save()
    return meter


def meters_of(api: Api) -> list[Meter]:
    """The API's meters, `requests` first. An API made without the services (a test,
    a fixture) still has its built-in meter here."""
    meters = list(api.meters.all())
    if not any(m.key == REQUESTS_METER for m in meters):
        meters.insert(0, requests_meter(api))
    return sorted(meters, key=lambda m: (m.key != REQUESTS_METER, m.created_at, m.pk))


def _check(
    *,
    key: str,
    display_name: str,
    unit_label: str,
    display_scale: int,
    source: str,
    operations_list: list[dict],
) -> None:
    errors: dict[str, list[str]] = {}
    if not _KEY.match(key or ""):
        errors["key"] = [
            "Use 1 to 40 lowercase letters, digits and hyphens, starting with a letter."
        ]
    elif key == REQUESTS_METER:
        errors["key"] = ["Every API already has the built-in requests meter."]
    if not (display_name or "").strip():
        errors["display_name"] = ["Enter a name."]
    if not (unit_label or "").strip():
        errors["unit_label"] = ["Enter the name of one unit, e.g. token."]
    for name, value in (("display_name", display_name), ("unit_label", unit_label)):
        try:
            validate_single_line(value or "")
        except ValidationError as exc:
            errors.setdefault(name, []).extend(exc.messages)
    if display_scale not in SCALES:
        errors["display_scale"] = [
            "Choose 1 or a power of ten up to 1,000,000 (prices per 1,000 units, say)."
        ]
    if source not in CUSTOM_SOURCES:
        errors["source"] = ["Choose where the quantities come from."]
    elif source != MeterSource.OPERATIONS and operations_list:
        errors["operations"] = ["Only a meter of weighted operations lists operations."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def meter_create(
    *,
    api: Api,
    actor: User | None,
    key: str,
    display_name: str,
    unit_label: str,
    display_scale: int = 1,
    source: str,
    operations_list: list[dict] = (),  # type: ignore[assignment]
) -> Meter:
    operations_list = list(operations_list)
    _check(
        key=key,
        display_name=display_name,
        unit_label=unit_label,
        display_scale=display_scale,
        source=source,
        operations_list=operations_list,
    )
    if api.meters.count() >= MAX_METERS:
        raise ValidationError(f"An API has at most {MAX_METERS} meters.")
    meter = Meter(
        api=api,
        key=key,
        display_name=display_name.strip(),
        unit_label=unit_label.strip(),
        display_scale=display_scale,
        source=source,
        operations=operations_list,
    )
    try:
        with transaction.atomic():
            meter.save()
    except IntegrityError:
        raise ValidationError(
            {"key": f"This API already has a meter “{key}”."}
        ) from None
    hooks.api_changed.send(sender=Api, api=api)
    return meter


@transaction.atomic
def meter_update(
    *,
    meter: Meter,
    actor: User | None,
    display_name: str,
    unit_label: str,
    display_scale: int,
    source: str,
    operations_list: list[dict] = (),  # type: ignore[assignment]
) -> Meter:
    """Edit a meter; its key stays. The built-in `requests` meter is not edited."""
    if meter.is_builtin:
        raise ValidationError("The built-in requests meter cannot be changed.")
    operations_list = list(operations_list)
    _check(
        key=meter.key,
        display_name=display_name,
        unit_label=unit_label,
        display_scale=display_scale,
        source=source,
        operations_list=operations_list,
    )
    meter.display_name = display_name.strip()
    meter.unit_label = unit_label.strip()
    meter.display_scale = display_scale
    meter.source = source
    meter.operations = operations_list
    meter.save()
    hooks.api_changed.send(sender=Api, api=meter.api)
    return meter


def meter_priced(meter: Meter) -> bool:
    """Whether a version of a tier offered on the meter's API prices it."""
    return MeterPrice.objects.filter(
        version__tier__offers__api=meter.api, meter=meter.key
    ).exists()


@transaction.atomic
def meter_delete(*, meter: Meter, actor: User | None) -> None:
    if meter.is_builtin:
        raise ValidationError("The built-in requests meter cannot be deleted.")
    if meter_priced(meter):
        raise ValidationError(
            "A tier of this API prices this meter (tier versions already sold keep "
            "their prices), so it stays. Remove it from the tiers' prices, or offer "
            "the API on other tiers, first."
        )
    api = meter.api
    meter.delete()
    hooks.api_changed.send(sender=Api, api=api)


def operations_text(meter: Meter) -> str:
    return operations.as_text(meter.operations or [])


def reresolve_operation_ids(*, api: Api) -> None:
    """After the API's OpenAPI document changed (or was removed): each weighted
    operation typed as an operationId weighs that id's operation in the new
    document; one the document no longer has keeps its last resolution, and the
    API's and the meter's pages say so (`stale_operation_ids`). The caller
    announces `api_changed`, so the gateway recompiles."""
    ids = operation_ids(api.openapi_spec)
    for meter in api.meters.filter(source=MeterSource.OPERATIONS):
        ops = meter.operations or []
        if not any(o.get("operation_id") for o in ops):
            continue
        resolved = operations.reresolve(ops, ids)
        if resolved != ops:
            meter.operations = resolved
            meter.save(update_fields=["operations"])


def stale_operation_ids(meter: Meter, ids: dict | None) -> list[str]:
    """Why each operationId line of a meter no longer weighs its document's
    operation (`ids`: `openapi.operation_ids` of the API's document)."""
    if meter.source != MeterSource.OPERATIONS:
        return []
    return operations.stale(meter.operations or [], ids)


def scale_label(scale: int) -> str:
    """1000 → "1K", 1000000 → "1M", 100 → "100"."""
    if scale >= 1_000_000 and scale % 1_000_000 == 0:
        return f"{scale // 1_000_000:,}M"
    if scale >= 1_000 and scale % 1_000 == 0:
        return f"{scale // 1_000:,}K"
    return f"{scale:,}"


def meters_for_pricing(organization_id: int, *, requests: bool = False) -> list[Meter]:
    """The meters a tier of the organization can price: one per key other than
    `requests` over the organization's APIs (a tier may be offered on any of
    them), the first made of each key, sorted by key; with ``requests``, the
    built-in meter first (as a row not saved, `requests_meter`)."""
    seen: dict[str, Meter] = {}
    if requests:
        seen[REQUESTS_METER] = requests_meter(None)
    for meter in (
        Meter.objects.filter(api__organization_id=organization_id)
        .exclude(key=REQUESTS_METER)
        .order_by("created_at", "pk")
    ):
        seen.setdefault(meter.key, meter)
    return sorted(seen.values(), key=lambda m: (m.key != REQUESTS_METER, m.key))


def per_scale(amount: Decimal, scale: int) -> Decimal:
    """A price per unit → per display scale (exact: a power of ten)."""
    return amount.scaleb(len(str(scale)) - 1)


def price_text(pricing: Pricing, *, unit_label: str, scale: int) -> str:
    """A meter's price in words, per its display scale: "$0.002 per 1K tokens"."""
    currency = pricing.currency
    per = (
        f"per {scale_label(scale)} {unit_label}s" if scale > 1 else f"per {unit_label}"
    )

    def money(amount: Decimal) -> str:
        return f"{format_unit_price(per_scale(amount, scale), currency)} {per}"

    model = pricing.model
    if model is PricingModel.FREE:
        return "free"
    if model is PricingModel.PER_UNIT:
        return money(pricing.unit_price)
    if model is PricingModel.FLAT_PLUS_OVERAGE:
        block = pricing.overage_block_size
        blocks = f"block of {block:,} {unit_label}s" if block > 1 else unit_label
        return (
            f"{pricing.included_requests:,} {unit_label}s included, then "
            f"{format_unit_price(pricing.overage_price, currency)} per {blocks}"
        )
    parts = []
    for band in pricing.bands:
        limit = f"up to {band.up_to:,}" if band.up_to is not None else "above"
        fee = (
            f" + {format_unit_price(band.flat_fee, currency)}" if band.flat_fee else ""
        )
        parts.append(f"{limit}: {money(band.unit_price)}{fee}")
    kind = "graduated" if model is PricingModel.GRADUATED else "volume"
    return f"{kind} — " + "; ".join(parts)


@dataclass(frozen=True)
class MeterPriceRow:
    """A meter a tier version prices, in words for the pages."""

    key: str
    name: str
    unit_label: str
    price: str  # "$0.002 per 1K tokens"
    quota: str  # "20,000 tokens per day (hard)", or "unlimited"


def version_meter_rows(version, *, requests: bool = False) -> list[MeterPriceRow]:
    """Each meter a tier version prices, with its price and quota in words; with
    ``requests``, the requests' price first (its quota is the tier's)."""
    prices = list(version.meter_prices.prefetch_related("bands"))
    if not any(requests or p.meter != REQUESTS_METER for p in prices):
        return []
    known = {m.key: m for m in meters_for_pricing(version.tier.organization_id)}
    return price_rows(version, prices, known, requests=requests)


def price_rows(
    version, prices, known: Mapping[str, Meter], *, requests: bool = True
) -> list[MeterPriceRow]:
    """`version_meter_rows` of the version's price rows ``prices`` (with their
    bands loaded) and the meters ``known`` by key, reading nothing more: a page
    that prefetched `meter_prices__bands` lists every tier's rows without a query
    per tier. The version's tier is read for the requests' quota."""
    prices = [p for p in prices if requests or p.meter != REQUESTS_METER]
    prices.sort(key=lambda p: (p.meter != REQUESTS_METER, p.meter))
    tier = version.tier
    rows = []
    for price in prices:
        meter = known.get(price.meter)
        name = meter.display_name if meter else price.meter
        unit = meter.unit_label if meter else "unit"
        scale = meter.display_scale if meter else 1
        limit, window, hard = (
            price.quota_limit,
            price.get_quota_unit_display(),
            price.stop_on_quota_reach,
        )
        if price.meter == REQUESTS_METER:
            name, unit, scale = "Requests", "request", 1
            limit, window, hard = (
                tier.quota_limit,
                tier.get_quota_unit_display(),
                tier.stop_on_quota_reach,
            )
        quota = "unlimited"
        if limit:
            stop = "hard" if hard else "soft"
            quota = f"{limit:,} {unit}s {window} ({stop})"
        text = price_text(price.pricing(version.currency), unit_label=unit, scale=scale)
        rows.append(MeterPriceRow(price.meter, name, unit, text, quota))
    return rows


def _units(text: str, unit_label: str) -> str:
    plural = f"{unit_label}s"
    return (
        text.replace("Requests", plural.capitalize())
        .replace("requests", plural)
        .replace("Request", unit_label.capitalize())
        .replace("request", unit_label)
    )


def meter_line(line: Line, meter: Meter) -> Line:
    """A rated line of a meter, described for the invoice in the meter's words and
    scale: "Tokens: 1,834,000 × $0.002 / 1K". Only the description changes, so the
    line's amount is still its quantity × unit price, rounded once."""
    name, unit, scale = meter.display_name, meter.unit_label, meter.display_scale
    price = format_unit_price(per_scale(line.unit_price, scale), line.currency)
    per = f" / {scale_label(scale)}" if scale > 1 else f" per {unit}"
    text = f"{name}: {_units(line.description, unit)}"
    if line.kind == LineKind.USAGE:
        text = f"{name}: {line.quantity:,} × {price}{per}"
    elif line.kind == LineKind.BAND:
        span = line.description.split(" at ")[0]
        band = (
            line.description.rsplit("(", 1)[1].rstrip(")")
            if "(" in line.description
            else ""
        )
        where = _units(band or span, unit)
        text = f"{name}: {line.quantity:,} × {price}{per} ({where})"
    return replace(line, description=text)
