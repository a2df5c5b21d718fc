"""What a subscriber is shown before a tier change, and the change itself as data:
whether it is an upgrade, and the next invoice as it would stand after it. Nothing
here writes.

One rule for the amounts (docs/decisions.md, "The tier-change preview is the
engine's dry run"): `plan_change` says what a change does to the subscription's
fields and which event it records; `store.services` applies exactly that, and
`tier_change_preview` applies it to a copy in memory and asks the billing engine
for a dry run of its next step (`billing.selectors.next_invoice_preview`, with the
unsaved `tier_upgraded` event of an upgrade), so the preview shows the lines the
engine will write, Stripe's rounding included. The change itself invoices nothing:
an upgrade's prorations go on the invoice that closes the period (the
preview's `proration` lines), a downgrade waits for the next period.

Upgrade or downgrade (SPEC §4: an upgrade applies at once, a downgrade at the next
period). Decision, in this order:

1. Within a trial, or between two free tiers, nothing has been charged: every change
   applies at once.
2. A change of currency or billing cycle between two paid tiers cannot be prorated
   (an invoice has one currency; periods of two lengths do not line up): it takes
   effect at the next period, like a downgrade.
3. Free → paid is an upgrade; paid → free a downgrade.
4. Between paid tiers: the one whose whole period would cost more at the
   subscription's usage so far (`period_cost_minor`) is the upgrade; on a tie, the
   higher fixed fee; on a tie again, the larger quota; otherwise a downgrade (applied
   at the next period, which never charges the subscriber anything extra now).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pricing.periods import period_containing
from pricing.rating import Line, period_cost_minor
from publisher.models import QuotaUnit, Tier, TierVersion
from store.models import Subscription, SubscriptionEvent, SubscriptionState

UPGRADE, DOWNGRADE = "upgrade", "downgrade"
# Minutes in each quota window, to compare quotas of different units; a billing
# period counts as its cycle's length.
_WINDOW_MINUTES = {
    QuotaUnit.MINUTE: 1,
    QuotaUnit.HOUR: 60,
    QuotaUnit.DAY: 60 * 24,
    QuotaUnit.MONTH: 60 * 24 * 30,
}
_CYCLE_MINUTES = {"week": 60 * 24 * 7, "month": 60 * 24 * 30, "year": 60 * 24 * 365}


def usage_so_far(subscription: Subscription, now: datetime) -> int:
    """Requests of the current period up to `now`, flushed or still in Redis."""
    from gateway.selectors import usage_in_window

    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None or now <= start:
        return 0
    return usage_in_window(
        subscription_id=subscription.pk, start=start, end=min(now, end)
    )


def _requests_per_minute_rank(tier: Tier, cycle: str) -> float:
    if not tier.quota_limit:
        return float("inf")
    minutes = _WINDOW_MINUTES.get(tier.quota_unit) or _CYCLE_MINUTES.get(cycle, 1)
    return tier.quota_limit / minutes


def _is_free(version: TierVersion) -> bool:
    return version.pricing_model == "FREE"


def classify_change(
    *,
    subscription: Subscription,
    tier: Tier,
    version: TierVersion,
    usage: int,
) -> tuple[str, str]:
    """(UPGRADE or DOWNGRADE, why) for moving `subscription` to `version` of
    `tier`; see the module docstring."""
    old = subscription.tier_version
    if subscription.state == SubscriptionState.TRIALING:
        return UPGRADE, "During a trial a change applies at once."
    old_free, new_free = _is_free(old), _is_free(version)
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
    before = period_cost_minor(old.pricing(), usage)
    after = period_cost_minor(version.pricing(), usage)
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass
class PlannedChange:
    """What moving a subscription to another tier does: the subscription's new
    field values and the event recorded (`store.services` writes both)."""

    kind: str  # UPGRADE (applies now) or DOWNGRADE (at the next period)
    reason: str
    fields: dict[str, Any]
    event_kind: str
    from_state: str = ""
    to_state: str = ""
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def apply(self, subscription: Subscription) -> None:
        """Set the new field values (on the row, or on a copy that is never saved)."""
        for name, value in self.fields.items():
            setattr(subscription, name, value)

    def event(
        self,
        subscription: Subscription,
        *,
        old_version: TierVersion,
        new_version: TierVersion,
        at: datetime,
        actor=None,
    ) -> SubscriptionEvent:
        """The history event of the change, unsaved."""
        return SubscriptionEvent(
            subscription=subscription,
            kind=self.event_kind,
            at=at,
            from_state=self.from_state,
            to_state=self.to_state,
            from_tier_version=old_version,
            to_tier_version=new_version,
            actor=actor,
            note=self.note,
            data=self.data,
        )


def plan_change(
    *,
    subscription: Subscription,
    tier: Tier,
    version: TierVersion,
    usage: int,
    now: datetime,
) -> PlannedChange:
    """The change of `subscription` to `version` of `tier` at `now`, with `usage`
    requests so far this period (the contract with billing, top of
    store/services.py)."""
    sub = subscription
    kind, reason = classify_change(
        subscription=sub, tier=tier, version=version, usage=usage
    )
    if kind != UPGRADE:
        return PlannedChange(
            kind=kind,
            reason=reason,
            fields={"scheduled_tier": tier, "scheduled_tier_version": version},
            event_kind="tier_downgrade_scheduled",
            data={"effective_at": _iso(sub.current_period_end)},
        )
    old = sub.tier_version
    trialing = sub.state == SubscriptionState.TRIALING
    note = ""
    if sub.scheduled_tier_version_id:
        note = f"Replaces the change to {sub.scheduled_tier} scheduled for "
        note += "the next period."
    fields: dict[str, Any] = {
        "tier": tier,
        "tier_version": version,
        "scheduled_tier": None,
        "scheduled_tier_version": None,
    }
    start, end = sub.current_period_start, sub.current_period_end
    if version.billing_cycle != old.billing_cycle and sub.started_at:
        # Only free→paid or within a trial (classify_change): nothing was charged
        # for the period, so it follows the new cycle from the same anchor.
        _i, start, end = period_containing(sub.started_at, version.billing_cycle, now)
        fields.update(current_period_start=start, current_period_end=end)
    to_state = sub.state
    if trialing and version.pricing_model == "FREE":
        to_state = SubscriptionState.ACTIVE
        fields.update(state=to_state, trial_end=None, next_invoice_at=None)
    elif (
        version.pricing_model != "FREE"
        and not trialing
        and end
        and (sub.next_invoice_at is None or sub.next_invoice_at > end)
    ):
        fields["next_invoice_at"] = end
    return PlannedChange(
        kind=kind,
        reason=reason,
        fields=fields,
        event_kind="tier_upgraded",
        from_state=sub.state,
        to_state=to_state,
        note=note,
        data={
            "usage_before": usage,
            "prorated": not trialing,
            "period_start": _iso(start),
            "period_end": _iso(end),
        },
    )


@dataclass
class TierChangePreview:
    """What changing a subscription's tier to `tier` would do, for the confirm page."""

    kind: str  # UPGRADE (applies now) or DOWNGRADE (at the next period)
    reason: str
    tier: Tier
    old_version: TierVersion
    new_version: TierVersion
    effective_at: datetime
    usage: int
    cost_old_minor: int  # a whole period at the usage so far, on each tier
    cost_new_minor: int
    # The engine's dry run of the next invoice after the change (a
    # billing.selectors.Preview), or None when none is coming.
    next_invoice: Any
    needs_card: bool

    @property
    def applies_now(self) -> bool:
        return self.kind == UPGRADE

    @property
    def proration(self) -> list[Line]:
        """The upgrade's prorations, as the next invoice bills them (nothing is
        charged at the moment of a change: docs/decisions.md)."""
        lines = self.next_invoice.lines if self.next_invoice else []
        return [x for x in lines if str(x.kind).startswith("PRORATION")]


def tier_change_preview(
    *,
    subscription: Subscription,
    tier: Tier,
    now: datetime,
    usage: int | None = None,
) -> TierChangePreview:
    from billing.selectors import next_invoice_preview

    version = tier.current_version
    if usage is None:
        usage = usage_so_far(subscription, now)
    change = plan_change(
        subscription=subscription, tier=tier, version=version, usage=usage, now=now
    )
    old = subscription.tier_version
    # The subscription as the change leaves it, in memory only.
    after = copy.copy(subscription)
    change.apply(after)
    pending = None
    if change.kind == UPGRADE:
        pending = change.event(after, old_version=old, new_version=version, at=now)
    customer = subscription.customer
    needs_card = not _is_free(version) and (
        customer is None or not customer.default_payment_method_id
    )
    return TierChangePreview(
        kind=change.kind,
        reason=change.reason,
        tier=tier,
        old_version=old,
        new_version=version,
        effective_at=(
            now if change.kind == UPGRADE else (subscription.current_period_end or now)
        ),
        usage=usage,
        cost_old_minor=_cost(old, usage),
        cost_new_minor=_cost(version, usage),
        next_invoice=next_invoice_preview(after, now, pending_upgrade=pending),
        needs_card=needs_card,
    )


def _cost(version: TierVersion, usage: int) -> int:
    return 0 if _is_free(version) else period_cost_minor(version.pricing(), usage)
