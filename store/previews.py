"""What a subscriber is shown before a tier change: whether it is an upgrade, and
the next invoice as it would stand after it. Nothing here writes.

One rule for the amounts (docs/decisions.md, "The tier-change preview is the
engine's dry run"): `store.lifecycle.plan_tier_change` says what a change does to
the subscription's fields and which event it records; the tier-change service saves
exactly that, and `tier_change_preview` applies it to a copy in memory and asks the
billing engine for a dry run of its next step (`store.hooks.next_invoice_preview`,
with the unsaved `tier_upgraded` event of an upgrade), so the preview shows the
lines the engine will write, Stripe's rounding included. The change itself invoices
nothing: an upgrade's prorations go on the invoice that closes the period (the
preview's `proration` lines), a downgrade waits for the next period.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pricing.rating import Line, LineKind
from publisher.meters import meters_for_pricing
from publisher.models import Tier, TierVersion
from store import hooks
from store.lifecycle import plan_tier_change
from store.models import Subscription
from store.services.tier_changes import meter_usage_so_far
from store.tier_change import (
    DOWNGRADE,
    UPGRADE,
    classify_change,
    is_free,
    whole_period_cost_minor,
)

__all__ = ["DOWNGRADE", "UPGRADE", "TierChangePreview", "classify_change"]

PRORATION_KINDS = (LineKind.PRORATION_CREDIT, LineKind.PRORATION_CHARGE)


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
    # Units so far of each meter other than requests that either version prices.
    meter_usage: dict[str, int]
    cost_old_minor: int  # a whole period at the usage so far, on each tier
    cost_new_minor: int
    # The engine's dry run of the next invoice after the change (a
    # billing.selectors.Preview), or None when none is coming.
    next_invoice: Any
    needs_card: bool

    # The usage so far in words, requests first: "1,200 requests", "3,054 tokens".
    usage_words: list[str]

    @property
    def applies_now(self) -> bool:
        return self.kind == UPGRADE

    @property
    def proration(self) -> list[Line]:
        """The upgrade's prorations, as the next invoice bills them (nothing is
        charged at the moment of a change: docs/decisions.md)."""
        lines = self.next_invoice.lines if self.next_invoice else []
        return [x for x in lines if x.kind in PRORATION_KINDS]


def tier_change_preview(
    *,
    subscription: Subscription,
    tier: Tier,
    now: datetime,
    usage: int | None = None,
) -> TierChangePreview:
    version = tier.current_version
    if usage is None:
        usage = hooks.usage_so_far(subscription, now)
    meter_usage = meter_usage_so_far(subscription, version, now)
    kind, reason, change = plan_tier_change(
        subscription,
        tier=tier,
        version=version,
        usage=usage,
        at=now,
        checked=False,
        meter_usage=meter_usage,
    )
    old = subscription.tier_version
    # The subscription as the change leaves it, in memory only.
    after = copy.copy(subscription)
    change.apply_to(after)
    pending = change.event if kind == UPGRADE else None
    needs_card = not is_free(version) and not subscription.card[0]
    return TierChangePreview(
        kind=kind,
        reason=reason,
        tier=tier,
        old_version=old,
        new_version=version,
        effective_at=(
            now if kind == UPGRADE else (subscription.current_period_end or now)
        ),
        usage=usage,
        meter_usage=meter_usage,
        usage_words=_usage_words(subscription, usage, meter_usage),
        cost_old_minor=whole_period_cost_minor(old, usage, meter_usage),
        cost_new_minor=whole_period_cost_minor(version, usage, meter_usage),
        next_invoice=hooks.next_invoice_preview(after, now, pending_upgrade=pending),
        needs_card=needs_card,
    )


def _units(quantity: int, unit_label: str) -> str:
    return f"{quantity:,} {unit_label}{'' if quantity == 1 else 's'}"


def _usage_words(
    subscription: Subscription, usage: int, meter_usage: dict[str, int]
) -> list[str]:
    words = [_units(usage, "request")]
    if meter_usage:
        labels = {
            m.key: m.unit_label
            for m in meters_for_pricing(subscription.organization_id)
        }
        words += [
            _units(units, labels.get(key, "unit"))
            for key, units in sorted(meter_usage.items())
        ]
    return words
