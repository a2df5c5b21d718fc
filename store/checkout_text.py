"""What the Checkout page tells a subscriber about money (Stripe's
`custom_text[submit][message]`). Checkout in setup mode charges nothing by itself;
whether saving the card charges it at once depends on the subscription, so apimon
says it for each case:

- subscribe, with a trial: nothing now, the first charge after the trial;
- subscribe, with a fixed fee (charged in advance, whatever prices the usage): that
  fee now (the billing job issues and pays the first period's invoice within a
  minute);
- subscribe, usage only: nothing now, usage at the end of each period;
- change of tier: nothing now, the change is on the period's invoice;
- update card: the failed invoices now, else nothing now.
"""

from __future__ import annotations

from pricing.currencies import format_money, format_unit_price
from publisher.models import TierVersion
from store import hooks
from store.models import CheckoutAction, Subscription

USAGE_MODELS = ("PER_UNIT", "FLAT_PLUS_OVERAGE", "GRADUATED", "VOLUME")


def checkout_message(
    subscription: Subscription, *, action: str, version: TierVersion
) -> str:
    cycle = version.billing_cycle
    if action == CheckoutAction.UPDATE_CARD:
        return _update_card(subscription)
    if action == CheckoutAction.CHANGE_TIER:
        return (
            f"Nothing is charged now: the change to {version.tier.name} is billed "
            "on your next invoice."
        )
    usage = (
        f" Usage is charged at the end of each {cycle}."
        if version.pricing_model in USAGE_MODELS or version.charges_meters
        else ""
    )
    if version.trial_days > 0:
        return (
            f"Your {version.trial_days}-day free trial starts now: nothing is "
            f"charged until it ends.{usage}"
        )
    if version.fixed_fee > 0:
        fee = format_unit_price(version.fixed_fee, version.currency)
        return (
            f"You will be charged {fee} now for the first {cycle}, then {fee} "
            f"every {cycle}.{usage}"
        )
    return f"Nothing is charged now.{usage}"


def _update_card(subscription: Subscription) -> str:
    owed = hooks.failed_payments_owed(subscription)
    if not owed:
        return "Nothing is charged now: this card pays your next invoices."
    amounts = " and ".join(format_money(m, c) for c, m in sorted(owed.items()))
    return f"Saving this card pays your failed payment of {amounts} at once."
