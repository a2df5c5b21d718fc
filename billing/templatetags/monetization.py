from django import template

from billing.currencies import format_money

register = template.Library()


@register.filter
def plan_price(plan) -> str:
    """A platform plan's monthly price: "$29.00"."""
    return format_money(plan.monthly_price_minor, plan.currency)
