"""Subscribing, cancelling, resuming, and a publisher's block: the store's writes
of a subscription. Each checks what the subscriber or publisher asked for, then
makes the move through `store.lifecycle` (which locks the row, writes the history
and announces the change)."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from apimon import clock
from apimon.models import Membership, User
from publisher.models import Api, Tier, version_priced
from publisher.selectors import (
    api_accepts_subscriptions,
    api_open_to,
    tier_accepts_subscriptions,
)
from store import hooks, lifecycle
from store.models import Application, Subscription, SubscriptionState
from store.services.checkout import (
    CheckoutAction,
    checkout_start,
    expire_checkouts_on_commit,
    stripe_customer_for,
)
from store.tier_change import is_free


def check_one_free_subscription(
    *, subscriber: User, api: Api, exclude_pk: int | None = None
) -> None:
    """A subscriber holds at most one live subscription of an API on a free tier,
    whichever application holds it (docs/decisions.md, "One free subscription per
    subscriber and API"): a free tier's quota is not multiplied by creating
    applications. Counted: every subscription not CANCELLED (a BLOCKED one too) on
    a FREE tier version or scheduled to move to one at its next period.

    Inside a transaction: the subscriber's membership row is locked first, so two
    requests of one subscriber check and write one after the other."""
    list(
        Membership.objects.select_for_update()
        .filter(organization_id=api.organization_id, user=subscriber)
        .values_list("pk", flat=True)
    )
    free = (
        Subscription.objects.filter(api=api, subscriber=subscriber)
        .exclude(state=SubscriptionState.CANCELLED)
        .filter(
            (~version_priced("tier_version") & Q(tier_version__charges_meters=False))
            | (
                ~version_priced("scheduled_tier_version")
                & Q(scheduled_tier_version__charges_meters=False)
            )
        )
        .exclude(pk=exclude_pk)
        .select_related("application")
        .first()
    )
    if free is not None:
        raise ValidationError(
            {
                "tier": f"You already use a free tier of {api} with "
                f"{free.application.name}: one free subscription per API. Change "
                "the tier of that subscription, or choose a paid tier."
            }
        )


@dataclass(frozen=True)
class SubscribeResult:
    subscription: Subscription
    checkout_url: str | None  # where to send the subscriber, for a paid tier


def _check_new_subscription(
    *, application: Application, api: Api, tier: Tier, actor: User
) -> None:
    org = api.organization
    if (
        application.organization_id != api.organization_id
        or tier.organization_id != api.organization_id
        or application.owner_id != actor.pk
        or application.deleted_at is not None
    ):
        raise ValidationError({"application": "Choose one of your applications."})
    if not api_open_to(api, actor):
        # A RESTRICTED API the subscriber may still see through a live subscription
        # after their access was taken back: that one continues, no new ones.
        raise ValidationError(
            f"{api} is for approved subscribers: ask {org.name} for access."
        )
    if not api_accepts_subscriptions(api):
        raise ValidationError(
            f"{api} is {api.get_state_display().lower()}: it takes no new "
            "subscriptions."
        )
    if not tier_accepts_subscriptions(api, tier) or tier.current_version is None:
        raise ValidationError({"tier": "This tier is not offered on this API."})
    if tier.is_commercial and not hooks.takes_payments(org):
        raise ValidationError(
            {
                "tier": f"{tier.name} is not available: {org.name} does not take "
                "payments yet."
            }
        )
    live = Subscription.objects.filter(
        application=application, api=api, state__in=lifecycle.LIVE
    ).first()
    if live is not None and live.state == SubscriptionState.PENDING_PAYMENT:
        # An abandoned Checkout: the way on is to pay for that one.
        raise ValidationError(
            {
                "application": ValidationError(
                    f"{application.name} already has a subscription to {api} that "
                    "waits for payment: complete the payment to start it.",
                    code="pending_payment",
                )
            }
        )
    if live is not None:
        raise ValidationError(
            {
                "application": f"{application.name} is already subscribed to {api}: "
                "change the tier of that subscription instead."
            }
        )


def subscription_create(
    *,
    application: Application,
    api: Api,
    tier: Tier,
    actor: User,
    site_url: str | None = None,
) -> SubscribeResult:
    """Subscribe `application` to `api` on `tier`.

    FREE: ACTIVE at once. COMMERCIAL: the subscriber's Stripe customer on the
    connected account (made once, reused), a Checkout Session in setup mode, state
    PENDING_PAYMENT until the return or the webhook confirms the card."""
    _check_new_subscription(application=application, api=api, tier=tier, actor=actor)
    customer = None
    if tier.is_commercial:
        customer = stripe_customer_for(organization=api.organization, user=actor)
    try:
        with transaction.atomic():
            if is_free(tier.current_version):
                check_one_free_subscription(subscriber=actor, api=api)
            subscription = lifecycle.create(
                application=application,
                api=api,
                tier=tier,
                subscriber=actor,
                customer=customer,
                at=clock.now(),
            )
            checkout_url = None
            if tier.is_commercial:
                checkout_url = checkout_start(
                    subscription,
                    action=CheckoutAction.SUBSCRIBE,
                    site_url=site_url,
                    actor=actor,
                )
    except IntegrityError:  # two submits at once: the constraint keeps one
        raise ValidationError(
            {"application": f"{application.name} is already subscribed to {api}."}
        ) from None
    return SubscribeResult(subscription=subscription, checkout_url=checkout_url)


def subscription_cancel(
    *, subscription: Subscription, actor: User | None, at_period_end: bool = True
) -> Subscription:
    """Cancel at the end of the current period (default: access continues until
    then, billing ends it with its final invoice), or now: access ends at once and a
    started paid subscription gets its final invoice for usage to date. A
    subscription that never started (PENDING_PAYMENT) is always cancelled now; its
    Checkout Sessions that may still be open are expired after commit."""
    now = clock.now()
    with transaction.atomic():
        sub = lifecycle.cancel(
            subscription, at=now, actor=actor, at_period_end=at_period_end
        )
        if sub.state == SubscriptionState.CANCELLED:
            expire_checkouts_on_commit(sub, now=now)
    return sub


def subscription_resume(
    *, subscription: Subscription, actor: User | None
) -> Subscription:
    """Undo a scheduled cancellation."""
    sub = subscription
    if (
        sub.state != SubscriptionState.CANCELLED
        and sub.cancel_at_period_end
        and not is_free(sub.tier_version)
        and not hooks.takes_payments(sub.organization)
    ):
        raise ValidationError(
            "The publisher is not taking payments now, so this paid subscription "
            "cannot be kept beyond its period."
        )
    return lifecycle.resume(subscription, at=clock.now(), actor=actor)


def subscription_block(
    *, subscription: Subscription, actor: User | None, reason: str
) -> Subscription:
    """The publisher blocks a subscription: the gateway answers 403 and the
    subscriber sees `reason`. Billing is not ended (cancel for that)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Tell the subscriber why."})
    return lifecycle.block(subscription, at=clock.now(), actor=actor, reason=reason)


def subscription_unblock(
    *, subscription: Subscription, actor: User | None
) -> Subscription:
    """Lift a publisher's block. The state returns to what the rows say (pending,
    on hold, trialing or active); a block by dunning is lifted by paying instead."""
    return lifecycle.unblock(subscription, at=clock.now(), actor=actor)
