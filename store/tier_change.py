"""Whether a tier change is an upgrade (applies at once) or a downgrade (waits for
the next period): a rule over the subscription and the two tier versions, with no
writes. `store.lifecycle.plan_tier_change` turns the decision into the change
itself; the tier-change preview shows the same decision.

The rule (an upgrade applies at once, a downgrade at the next period), in this
order:

1. Within a trial, or between two free tiers, nothing has been charged: every change
   applies at once.
2. A change of currency or billing cycle between two paid tiers cannot be prorated
   (an invoice has one currency; periods of two lengths do not line up): it takes
   effect at the next period, like a downgrade.
3. Free → paid is an upgrade; paid → free a downgrade.
4. Between paid tiers: the one whose whole period would cost more at the
   subscription's usage so far (`whole_period_cost_minor`: the fixed fee, the
   requests and every meter the version prices) is the upgrade; on a tie, the
   higher fixed fee; on a tie again, the larger quota; otherwise a downgrade (applied
   at the next period, which never charges the subscriber anything extra now).
"""

from __future__ import annotations

from collections.abc import Mapping

from pricing.rating import PricingModel, period_cost_minor, total_minor, usage_lines
from publisher.models import BillingCycle, QuotaUnit, Tier, TierVersion
from store.models import Subscription, SubscriptionState

UPGRADE, DOWNGRADE = "upgrade", "downgrade"
# Minutes in each quota window, to compare quotas of different units; a billing
# period counts as its cycle's length.
_WINDOW_MINUTES = {
    QuotaUnit.MINUTE: 1,
    QuotaUnit.HOUR: 60,
    QuotaUnit.DAY: 60 * 24,
    QuotaUnit.MONTH: 60 * 24 * 30,
}
_CYCLE_MINUTES = {
    BillingCycle.WEEK: 60 * 24 * 7,
    BillingCycle.MONTH: 60 * 24 * 30,
    BillingCycle.YEAR: 60 * 24 * 365,
}


def is_free(version: TierVersion) -> bool:
    return version.pricing_model == PricingModel.FREE and not version.charges_meters


def priced_meters(*versions: TierVersion) -> list[str]:
    """The keys of the meters other than requests that any of `versions` prices."""
    keys: set[str] = set()
    for version in versions:
        keys.update(price.meter for price in version.other_meter_prices())
    return sorted(keys)


def whole_period_cost_minor(
    version: TierVersion, usage: int, meter_usage: Mapping[str, int]
) -> int:
    """What one whole period of `version` costs with `usage` requests and
    `meter_usage` units of its other meters: its fixed fee, its requests and each
    meter it prices, every line rounded as on the invoice."""
    if is_free(version):
        return 0
    cost = period_cost_minor(version.pricing(), usage)
    for price in version.other_meter_prices():
        quantity = meter_usage.get(price.meter, 0)
        cost += total_minor(usage_lines(price.pricing(version.currency), quantity))
    return cost


def _requests_per_minute_rank(tier: Tier, cycle: str) -> float:
    if not tier.quota_limit:
        return float("inf")
    minutes = _WINDOW_MINUTES.get(tier.quota_unit) or _CYCLE_MINUTES.get(cycle, 1)
    return tier.quota_limit / minutes


def classify_change(
    *,
    subscription: Subscription,
    tier: Tier,
    version: TierVersion,
    usage: int,
    meter_usage: Mapping[str, int] | None = None,
) -> tuple[str, str]:
    """(UPGRADE or DOWNGRADE, why) for moving `subscription` to `version` of
    `tier`, with `usage` requests and `meter_usage` units of other meters so far
    this period; see the module docstring."""
    old = subscription.tier_version
    if subscription.state == SubscriptionState.TRIALING:
        return UPGRADE, "During a trial a change applies at once."
    old_free, new_free = is_free(old), is_free(version)
    if old_free and new_free:
        return UPGRADE, "Between free tiers a change applies at once."
    if (
        not old_free
        and not new_free
        and (
            old.currency != version.currency
            or old.billing_cycle != version.billing_cycle
        )
    ):
        return (
            DOWNGRADE,
            "A change of currency or billing cycle takes effect at your next period.",
        )
    if old_free:
        return UPGRADE, "A paid tier applies at once."
    if new_free:
        return DOWNGRADE, "A move to a free tier takes effect at your next period."
    meter_usage = meter_usage or {}
    before = whole_period_cost_minor(old, usage, meter_usage)
    after = whole_period_cost_minor(version, usage, meter_usage)
    keys = (
        (after, before),
        (version.fixed_fee, old.fixed_fee),
        (
            _requests_per_minute_rank(tier, version.billing_cycle),
            _requests_per_minute_rank(subscription.tier, old.billing_cycle),
        ),
    )
    for new_value, old_value in keys:
        if new_value > old_value:
            return UPGRADE, "A more expensive tier applies at once."
        if new_value < old_value:
            break
    return DOWNGRADE, "A cheaper tier takes effect at your next period."
