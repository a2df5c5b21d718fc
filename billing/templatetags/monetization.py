from django import template

from billing.selectors import platform_payment_notice
from pricing.currencies import format_money

register = template.Library()


@register.filter
def plan_price(plan) -> str:
    """A platform plan's monthly price: "$29.00"."""
    return format_money(plan.monthly_price_minor, plan.currency)


@register.inclusion_tag("billing/_platform_payment_banner.html", takes_context=True)
def platform_payment_banner(context) -> dict:
    """For owners only: the organization's platform plan payment failed, or the plan
    ended unpaid (billing.selectors.platform_payment_notice)."""
    tenant = context.get("tenant")
    if tenant is None or not tenant.is_owner:
        return {"notice": None}
    return {"notice": platform_payment_notice(tenant.organization)}
