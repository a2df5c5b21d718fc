"""Billing partials the store embeds:

    {% load billing_tags %}
    {% subscription_invoices subscription %}   {# its invoices, with their lines #}
    {% next_invoice_preview subscription %}    {# the next invoice so far #}

(`templates/billing/_subscription_invoices.html` can also be included directly with
`subscription` in the context.) Money: `{{ minor|money:currency }}` from
publisher_tags."""

from __future__ import annotations

from django import template

from apimon import clock
from billing import selectors

register = template.Library()


@register.inclusion_tag("billing/_subscription_invoices.html")
def subscription_invoices(subscription):
    return {"subscription": subscription}


@register.simple_tag
def invoices_of(subscription):
    """The subscription's invoices with their lines, newest first."""
    return selectors.subscription_invoices(subscription)


@register.inclusion_tag("billing/_next_invoice_preview.html")
def next_invoice_preview(subscription, now=None):
    return {
        "subscription": subscription,
        "preview": selectors.next_invoice_preview(subscription, now or clock.now()),
    }
