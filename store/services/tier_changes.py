"""Changing a subscription's tier: an upgrade applies at once, a downgrade waits for
the next period (`store.tier_change` decides which). An upgrade to a paid tier of a
subscription without a saved card goes through Checkout first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from apimon import clock
from apimon.models import User
from publisher.models import Tier, TierVersion
from publisher.selectors import tier_accepts_subscriptions
from store import hooks, lifecycle
from store.models import Subscription, SubscriptionState
from store.services.checkout import CheckoutAction, checkout_start, stripe_customer_for
from store.services.subscriptions import check_one_free_subscription
from store.tier_change import is_free, priced_meters

CHECKOUT = "checkout"  # the change waits for a card (Checkout)


@dataclass(frozen=True)
class ChangeResult:
    subscription: Subscription
    kind: str  # UPGRADE (applied), DOWNGRADE (scheduled) or CHECKOUT
    checkout_url: str | None = None


def check_change(subscription: Subscription, tier: Tier) -> None:
    """Why `subscription` cannot move to `tier` now (a ValidationError), if it
    cannot."""
    if subscription.state not in (SubscriptionState.ACTIVE, SubscriptionState.TRIALING):
        state = subscription.get_state_display().lower()
        raise ValidationError(
            {"tier": f"A subscription that is {state} cannot change its tier."}
        )
    if subscription.cancel_at_period_end:
        raise ValidationError(
            {
                "tier": "This subscription ends at the end of the period: resume it "
                "before changing its tier."
            }
        )
    if tier.pk == subscription.tier_id:
        raise ValidationError({"tier": "This is already the subscription's tier."})
    if (
        not tier_accepts_subscriptions(subscription.api, tier)
        or not tier.current_version
    ):
        raise ValidationError({"tier": "This tier is not offered on this API now."})
    if tier.is_commercial and not hooks.takes_payments(subscription.organization):
        raise ValidationError(
            {
                "tier": f"{tier.name} is not available: the publisher does not take "
                "payments yet."
            }
        )


def subscription_change_tier(
    *,
    subscription: Subscription,
    tier: Tier,
    actor: User | None,
    site_url: str | None = None,
) -> ChangeResult:
    """Move `subscription` to `tier` (its current version). An upgrade applies now;
    a downgrade is scheduled for the next period. An upgrade of a subscription
    without a saved card goes through Checkout first: the result then carries the
    Checkout URL and nothing has changed yet."""
    tier = Tier.objects.select_related("current_version").get(pk=tier.pk)
    with transaction.atomic():
        locked = lifecycle.lock(
            subscription, "customer", "tier", "tier_version", "api", "organization"
        )
        check_change(locked, tier)
        if is_free(tier.current_version):
            check_one_free_subscription(
                subscriber=locked.subscriber, api=locked.api, exclude_pk=locked.pk
            )
        if tier.is_commercial and not locked.card[0]:
            if locked.customer is None:
                locked.customer = stripe_customer_for(
                    organization=locked.organization, user=locked.subscriber
                )
                locked.save(update_fields=["customer", "updated_at"])
            url = checkout_start(
                locked,
                action=CheckoutAction.CHANGE_TIER,
                site_url=site_url,
                actor=actor,
                version=tier.current_version,
            )
            return ChangeResult(subscription=locked, kind=CHECKOUT, checkout_url=url)
        kind = apply_change(locked, tier=tier, actor=actor, now=clock.now())
    subscription.refresh_from_db()
    return ChangeResult(subscription=subscription, kind=kind)


def apply_change(
    subscription: Subscription, *, tier: Tier, actor: User | None, now: datetime
) -> str:
    """Upgrade now or schedule a downgrade, on a locked row; returns UPGRADE or
    DOWNGRADE. The tier-change preview shows the same change."""
    check_change(subscription, tier)
    usage = hooks.usage_so_far(subscription, now)
    meter_usage = meter_usage_so_far(subscription, tier.current_version, now)
    return lifecycle.change_tier(
        subscription,
        tier=tier,
        usage=usage,
        at=now,
        actor=actor,
        meter_usage=meter_usage,
    )


def meter_usage_so_far(
    subscription: Subscription, version: TierVersion, now: datetime
) -> dict[str, int]:
    """Units so far this period of each meter (other than requests) that the
    subscription's version or `version` prices: what a tier change compares."""
    keys = priced_meters(subscription.tier_version, version)
    return hooks.meter_usage_so_far(subscription, now, keys) if keys else {}


def subscription_unschedule_change(
    *, subscription: Subscription, actor: User | None
) -> Subscription:
    """Keep the current tier after all: drop a scheduled downgrade."""
    return lifecycle.drop_scheduled_change(subscription, at=clock.now(), actor=actor)
