"""What a subscriber is shown before a tier change: whether it is an upgrade, and the
next invoice as it would stand after it. Computed with the rating module
(billing.rating) from the subscription's rows and its live usage; nothing here
writes.

The next invoice of a subscription as it stands is not here: the store's page shows
`billing.selectors.next_invoice_preview`, a dry run of the billing engine itself.
The engine issues the real invoices from the same inputs as this module: the
subscription's period fields, its versions and its `tier_upgraded` events (whose
`data["usage_before"]` splits the period's usage between the old and the new tier).

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

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from billing.periods import add_cycles, period_containing
from billing.rating import (
    Line,
    fixed_fee_lines,
    period_cost_minor,
    proration_lines,
    usage_lines,
)
from publisher.models import QuotaUnit, Tier, TierVersion
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


@dataclass
class InvoicePreview:
    """The next invoice as it would stand after a tier change (usage may still
    grow)."""

    at: datetime | None
    lines: list[Line] = field(default_factory=list)
    usage: int = 0
    note: str = ""

    @property
    def totals(self) -> list[tuple[str, int]]:
        """(currency, total minor) per currency, usually one."""
        sums: dict[str, int] = defaultdict(int)
        for line in self.lines:
            sums[line.currency] += line.amount_minor
        return sorted(sums.items())


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


def _next_period(subscription: Subscription, version: TierVersion):
    end = subscription.current_period_end
    anchor = subscription.started_at or end
    _index, start, stop = period_containing(anchor, version.billing_cycle, end)
    if start != end:
        # The next period of another cycle: it starts at this period's end and runs
        # one of its own cycles (the billing engine re-anchors a cycle change).
        start, stop = end, add_cycles(end, version.billing_cycle, 1)
    return start, stop


def _usage_segments(subscription: Subscription, total: int):
    """[(version, requests)] of the current period, split at each upgrade, and the
    upgrades' proration lines."""
    start, end = subscription.current_period_start, subscription.current_period_end
    upgrades = [
        e
        for e in subscription.events.filter(kind="tier_upgraded", at__gte=start)
        .select_related("from_tier_version__tier", "to_tier_version__tier")
        .order_by("at", "pk")
        if e.from_tier_version_id and e.to_tier_version_id
    ]
    segments, prorations, counted = [], [], 0
    for event in upgrades:
        before = int(event.data.get("usage_before", counted))
        segments.append((event.from_tier_version, max(0, before - counted)))
        counted = max(counted, before)
        if event.data.get("prorated", True) and event.at < end:
            prorations += proration_lines(
                old=event.from_tier_version.pricing(),
                new=event.to_tier_version.pricing(),
                period_start=start,
                period_end=end,
                changed_at=event.at,
                old_name=event.from_tier_version.tier.name,
                new_name=event.to_tier_version.tier.name,
            )
    segments.append((subscription.tier_version, max(0, total - counted)))
    return segments, prorations


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
    proration: list[Line]
    cost_old_minor: int  # a whole period at the usage so far, on each tier
    cost_new_minor: int
    next_invoice: InvoicePreview | None
    needs_card: bool

    @property
    def applies_now(self) -> bool:
        return self.kind == UPGRADE


def tier_change_preview(
    *,
    subscription: Subscription,
    tier: Tier,
    now: datetime,
    usage: int | None = None,
) -> TierChangePreview:
    version = tier.current_version
    if usage is None:
        usage = usage_so_far(subscription, now)
    kind, reason = classify_change(
        subscription=subscription, tier=tier, version=version, usage=usage
    )
    old = subscription.tier_version
    start, end = subscription.current_period_start, subscription.current_period_end
    proration: list[Line] = []
    charged = subscription.state == SubscriptionState.ACTIVE
    if kind == UPGRADE and charged and start and end and start <= now < end:
        proration = proration_lines(
            old=old.pricing(),
            new=version.pricing(),
            period_start=start,
            period_end=end,
            changed_at=now,
            old_name=subscription.tier.name,
            new_name=tier.name,
        )
    customer = subscription.customer
    needs_card = not _is_free(version) and (
        customer is None or not customer.default_payment_method_id
    )
    next_invoice = _invoice_after_change(
        subscription=subscription,
        version=version,
        now=now,
        usage=usage,
        proration=proration,
    )
    return TierChangePreview(
        kind=kind,
        reason=reason,
        tier=tier,
        old_version=old,
        new_version=version,
        effective_at=now if kind == UPGRADE else (end or now),
        usage=usage,
        proration=proration,
        cost_old_minor=_cost(old, usage),
        cost_new_minor=_cost(version, usage),
        next_invoice=next_invoice,
        needs_card=needs_card,
    )


def _cost(version: TierVersion, usage: int) -> int:
    return 0 if _is_free(version) else period_cost_minor(version.pricing(), usage)


def _invoice_after_change(
    *,
    subscription: Subscription,
    version: TierVersion,
    now: datetime,
    usage: int,
    proration: list[Line],
) -> InvoicePreview | None:
    """The next invoice as it would stand right after confirming: the period's usage
    so far on the tier(s) it was on, the prorations, and the next period's fixed fee
    on the new tier (an upgrade's now, a downgrade's from then)."""
    end = subscription.current_period_end
    if end is None:
        return None
    if subscription.state == SubscriptionState.TRIALING:
        return InvoicePreview(
            at=subscription.trial_end or end,
            usage=usage,
            note="Nothing is charged for the trial.",
        )
    preview = InvoicePreview(at=end, usage=usage)
    segments, earlier = _usage_segments(subscription, usage)
    for old_version, requests in segments:
        preview.lines += usage_lines(old_version.pricing(), requests)
    preview.lines += earlier + proration
    start, stop = _next_period(subscription, version)
    preview.lines += fixed_fee_lines(
        version.pricing(), period_start=start, period_end=stop
    )
    return preview
