"""Template helpers of the publisher console that the store reuses:
`{{ api.documentation|markdown }}`, `{{ minor|money:currency }}`,
`{{ version|pricing_summary }}`, `{{ api.state|state_badge }}`."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.safestring import SafeString

from pricing.currencies import format_money, format_unit_price
from publisher.markdown import render_markdown
from publisher.meters import MeterPriceRow, version_meter_rows
from publisher.models import ApiState, PricingModel, TierVersion

register = template.Library()

_CYCLE = {"week": "week", "month": "month", "year": "year"}
_CYCLE_ADVERB = {"week": "weekly", "month": "monthly", "year": "yearly"}
_BADGES = {
    ApiState.CREATED: "",
    ApiState.PUBLISHED: "ok",
    ApiState.DEPRECATED: "warn",
    ApiState.RETIRED: "",
    ApiState.BLOCKED: "danger",
}


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return render_markdown(text)


@register.filter
def money(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    return format_money(int(minor), currency)


@register.filter
def unit_price(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return ""
    return format_unit_price(amount, currency)


@register.filter
def state_badge(state: str) -> str:
    """The badge class of an API state: ok / warn / danger / (plain)."""
    return _BADGES.get(state, "")


@register.filter
def pricing_summary(version: TierVersion | None) -> str:
    """One line about a price: "$19.00 / month incl. 10,000 requests, then $0.50
    per 1,000 requests"."""
    if version is None:
        return "—"
    p = version.pricing()
    model, cur = p.model, version.currency
    per = _CYCLE.get(version.billing_cycle, version.billing_cycle)
    every = _CYCLE_ADVERB.get(version.billing_cycle, version.billing_cycle)
    match model:
        case PricingModel.FREE if not version.charges_meters:
            return "Free"
        case PricingModel.FREE:
            text = f"Requests free; priced by its meters, billed {every}"
        case PricingModel.FLAT:
            text = f"{format_unit_price(p.fixed_fee, cur)} / {per}"
        case PricingModel.PER_UNIT:
            price = format_unit_price(p.unit_price, cur)
            text = f"{price} per request, billed {every}"
        case PricingModel.FLAT_PLUS_OVERAGE:
            fee = format_unit_price(p.fixed_fee, cur)
            over = format_unit_price(p.overage_price, cur)
            size = p.overage_block_size
            block = "request" if size == 1 else f"{size:,} requests"
            text = (
                f"{fee} / {per} incl. {p.included_requests:,} requests, "
                f"then {over} per {block}"
            )
        case PricingModel.GRADUATED | PricingModel.VOLUME:
            count = len(p.bands)
            kind = "Graduated" if model == PricingModel.GRADUATED else "Volume"
            text = f"{kind} pricing, {count} band{'s' if count != 1 else ''}, billed {every}"
        case _:
            text = model
    if p.fixed_fee and model not in (PricingModel.FLAT, PricingModel.FLAT_PLUS_OVERAGE):
        # A fee on top of usage-priced requests (SPEC §10).
        fee = format_unit_price(p.fixed_fee, cur)
        text = f"{fee} / {per} plus {text[0].lower()}{text[1:]}"
    if version.charges_meters and model != PricingModel.FREE:
        text += ", plus its meters"
    if version.trial_days:
        text += f", {version.trial_days}-day trial"
    return text


@register.filter
def fee_summary(version: TierVersion | None) -> str:
    """A tier's price before its meters' lines (the store's pricing table): "Free",
    its fixed fee ("$19.00 / month"), and when usage is charged, when it is billed."""
    if version is None:
        return "—"
    p = version.pricing()
    usage = p.model not in (PricingModel.FREE, PricingModel.FLAT)
    usage = usage or version.charges_meters
    if not p.fixed_fee and not usage:
        return "Free"
    per = _CYCLE.get(version.billing_cycle, version.billing_cycle)
    every = _CYCLE_ADVERB.get(version.billing_cycle, version.billing_cycle)
    fee = f"{format_unit_price(p.fixed_fee, version.currency)} / {per}"
    if not usage:
        return fee
    if not p.fixed_fee:
        return f"Usage billed {every}"
    return f"{fee}, plus usage billed {every}"


@register.filter
def price_rows(version: TierVersion | None) -> list[MeterPriceRow]:
    """Every meter a version charges, requests first, in words."""
    return version_meter_rows(version, requests=True) if version is not None else []
