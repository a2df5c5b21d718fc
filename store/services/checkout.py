"""Paying for a subscription: the subscriber's Stripe customer on the publisher's
connected account, and Stripe Checkout (setup mode) to save a card — to start a
paid subscription, to upgrade a free one, or to replace a card after a failed
payment. Completing a checkout is `store.services.checkout_completion`."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from apimon import clock
from apimon import stripe_client as sc
from apimon.models import Organization, User
from apimon.payment_errors import PaymentProviderError, StripeInvalidRequest
from pricing.stripe_money import stripe_can_charge
from publisher.models import TierVersion
from publisher.selectors import api_accepts_subscriptions
from store import hooks, lifecycle
from store.checkout_text import checkout_message
from store.models import (
    CheckoutAction,
    StripeCustomer,
    Subscription,
    SubscriptionState,
)
from store.models import SubscriptionEventKind as Kind

log = logging.getLogger(__name__)

CHECKOUT_PURPOSE = "subscription"  # metadata.apimon_purpose of the store's sessions
# Stripe keeps a Checkout Session open for at most 24 hours.
CHECKOUT_SESSION_LIFETIME = timedelta(hours=24)


def connected_account(organization: Organization) -> str:
    """The organization's connected Stripe account (a ValidationError if none)."""
    account = hooks.payment_account(organization)
    if not account:
        raise ValidationError(f"{organization.name} does not take payments yet.")
    return account


def stripe_customer_for(*, organization: Organization, user: User) -> StripeCustomer:
    """The subscriber's Stripe customer on the organization's connected account:
    one per subscriber, organization and account, made on first use and reused.
    Stripe's failure (a PaymentProviderError) writes nothing."""
    account = connected_account(organization)
    existing = StripeCustomer.objects.filter(
        organization=organization, user=user, stripe_account_id=account
    ).first()
    if existing is not None:
        return existing
    customer = sc.get_client().v1.customers.create(
        {
            "email": user.email,
            "metadata": {
                "apimon_user_id": str(user.pk),
                "organization_id": str(organization.pk),
            },
        },
        sc.request_options(
            account=account,
            # The local row's identity: a retry gets the same customer back.
            idempotency_key=sc.idempotency_key(
                "customer", organization.pk, user.pk, account
            ),
        ),
    )
    try:
        with transaction.atomic():
            return StripeCustomer.objects.create(
                organization=organization,
                user=user,
                stripe_account_id=account,
                stripe_customer_id=customer.id,
                livemode=bool(getattr(customer, "livemode", False)),
            )
    except IntegrityError:  # a concurrent request made it (same idempotent customer)
        return StripeCustomer.objects.get(
            organization=organization, user=user, stripe_account_id=account
        )


def _site_url(site_url: str | None) -> str:
    return (site_url or settings.SITE_URL).rstrip("/")


def checkout_start(
    subscription: Subscription,
    *,
    action: str,
    site_url: str | None,
    actor: User | None,
    version: TierVersion | None = None,
) -> str:
    """Open a Checkout Session in setup mode for `subscription`'s customer on the
    connected account (the row locked by the caller); returns its URL. `version` is
    the tier a CHANGE_TIER moves to. Stripe's failure (a PaymentProviderError)
    rolls the caller's transaction back."""
    organization = subscription.organization
    account = connected_account(organization)
    customer = subscription.customer
    version = version or subscription.tier_version
    if not stripe_can_charge(version.currency):
        # A tier made before the tier form refused such currencies.
        raise ValidationError(
            f"{version.tier.name} is priced in {version.currency.upper()}, which "
            "the payment provider cannot charge: ask the publisher to change its "
            "price."
        )
    site = _site_url(site_url)
    slug = organization.slug
    # Attempt number: a retry of the same attempt replays Stripe's answer.
    attempt = subscription.events.filter(kind=Kind.CHECKOUT_STARTED).count() + 1
    metadata = {
        "apimon_purpose": CHECKOUT_PURPOSE,
        "subscription_id": str(subscription.pk),
        "organization_id": str(organization.pk),
        "action": action,
    }
    if action == CheckoutAction.CHANGE_TIER:
        metadata["tier_version_id"] = str(version.pk)
    back = reverse("store:checkout-return", args=[slug, subscription.pk])
    detail = reverse("store:subscription-detail", args=[slug, subscription.pk])
    session = sc.get_client().v1.checkout.sessions.create(
        {
            "mode": "setup",
            "customer": customer.stripe_customer_id,
            "currency": version.currency,
            "success_url": f"{site}{back}?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{site}{detail}?checkout=cancelled",
            "client_reference_id": str(subscription.pk),
            "metadata": metadata,
            "setup_intent_data": {"metadata": metadata},
            "custom_text": {
                "submit": {
                    "message": checkout_message(
                        subscription, action=action, version=version
                    )
                }
            },
        },
        sc.request_options(
            account=account,
            idempotency_key=sc.idempotency_key(
                "subscription",
                subscription.pk,
                subscription.created_at.timestamp(),
                "checkout",
                attempt,
            ),
        ),
    )
    subscription.checkout_session_id = session.id
    subscription.save(update_fields=["checkout_session_id", "updated_at"])
    lifecycle.record(
        subscription,
        Kind.CHECKOUT_STARTED,
        at=clock.now(),
        actor=actor,
        data={"session_id": session.id, "action": action, "version_id": version.pk},
    )
    return session.url


def subscription_checkout(
    *, subscription: Subscription, actor: User | None, site_url: str | None = None
) -> str:
    """Checkout again: "Complete payment" for a PENDING_PAYMENT subscription, or
    "Update card" for any other live paid one (e.g. ON_HOLD after a failed payment).
    Returns the Checkout URL."""
    if subscription.state == SubscriptionState.CANCELLED:
        raise ValidationError("This subscription is cancelled.")
    if subscription.state == SubscriptionState.PENDING_PAYMENT:
        action = CheckoutAction.SUBSCRIBE
        if not hooks.takes_payments(subscription.organization):
            raise ValidationError(
                f"{subscription.organization.name} does not take payments now."
            )
        if not api_accepts_subscriptions(subscription.api):
            raise ValidationError(
                f"{subscription.api} takes no new subscriptions now: cancel this one."
            )
    else:
        action = CheckoutAction.UPDATE_CARD
        if not subscription.tier.is_commercial and subscription.customer is None:
            raise ValidationError("A free subscription needs no card.")
    with transaction.atomic():
        locked = lifecycle.lock(subscription)
        if locked.customer is None:
            locked.customer = stripe_customer_for(
                organization=locked.organization, user=locked.subscriber
            )
            locked.save(update_fields=["customer", "updated_at"])
        url = checkout_start(locked, action=action, site_url=site_url, actor=actor)
    subscription.refresh_from_db()
    return url


def expire_checkouts_on_commit(subscription: Subscription, *, now: datetime) -> None:
    """The subscription is cancelled: once that is committed, expire the Checkout
    Sessions it started that may still be open (started within Stripe's 24 hours and
    not completed), so the subscriber can no longer type a card into them.

    Best effort, after commit: the cancel never waits for Stripe nor fails with it. A
    session Stripe could not expire stays open until its own expiry; completing it
    then changes nothing (its completion answers CANCELLED)."""
    customer = subscription.customer
    if customer is None:
        return
    started = subscription.events.filter(
        kind=Kind.CHECKOUT_STARTED, at__gte=now - CHECKOUT_SESSION_LIFETIME
    ).values_list("data__session_id", flat=True)
    completed = set(
        subscription.events.filter(kind=Kind.CHECKOUT_COMPLETED).values_list(
            "data__session_id", flat=True
        )
    )
    open_ids = [sid for sid in dict.fromkeys(started) if sid and sid not in completed]
    if not open_ids:
        return
    sub_pk, account = subscription.pk, customer.stripe_account_id
    transaction.on_commit(
        lambda: expire_checkout_sessions(sub_pk, account=account, session_ids=open_ids),
        robust=True,
    )


def expire_checkout_sessions(
    subscription_id: int, *, account: str, session_ids: list[str]
) -> list[str]:
    """Expire these Checkout Sessions on the connected account; returns the ids
    Stripe expired. A session that is complete or expired already is skipped; a
    Stripe failure is logged and the rest are still tried."""
    expired = []
    for session_id in session_ids:
        try:
            sc.get_client().v1.checkout.sessions.expire(
                session_id, None, sc.request_options(account=account)
            )
        except StripeInvalidRequest as exc:  # not open any more, or gone
            log.info(
                "Checkout %s of cancelled subscription %s not expired: %s",
                session_id,
                subscription_id,
                exc.user_message,
            )
        except PaymentProviderError as exc:
            log.warning(
                "Checkout %s of cancelled subscription %s could not be expired (it "
                "stays open until Stripe expires it; completing it changes "
                "nothing): %s",
                session_id,
                subscription_id,
                exc,
            )
        else:
            expired.append(session_id)
    return expired
