"""Writes of the store (SPEC §4): applications, API keys, subscriptions and their
payment through Stripe Checkout on the publisher's connected account.

Views, the admin and the Stripe webhook call these; nothing else writes these rows.
Every service validates its input again and raises `ValidationError` (a dict keyed
by form field where a field is at fault); a Stripe failure raises `PaymentError`
and the transaction writes nothing. Changes the gateway decides on are announced
with `gateway.entitlements.invalidate(...)` once the transaction commits.

Contract with the billing engine (issue 8) — data on the subscription row plus the
append-only `SubscriptionEvent` history (kinds in `EventKind`):

- Activation sets `started_at` (the period anchor) = now, `current_period_start/end`
  = period 0 of the version's cycle, state ACTIVE, or TRIALING with `trial_end` when
  the version has trial days. `next_invoice_at` = now when the version has an
  in-advance fixed fee and no trial (billing issues the start invoice), `trial_end`
  when trialing, else `current_period_end`; a FREE tier gets None (no invoices).
- An upgrade applies at once: `tier`/`tier_version` change, event `tier_upgraded`
  (`from_tier_version`, `to_tier_version`, `at`, `data["usage_before"]` = the
  period's live usage up to the change, `data["prorated"]` = False in a trial).
  Billing rates usage before the change on the old version and after it on the new,
  and adds `proration_lines(old, new, period_start, period_end, at)` to the period's
  invoice. `next_invoice_at` becomes at most `current_period_end`.
  (`store.previews.plan_change` holds these field changes and the event; the
  tier-change preview applies the same plan in memory.)
- A downgrade sets `scheduled_tier`/`scheduled_tier_version` (event
  `tier_downgrade_scheduled`); billing applies it when it opens the next period.
- Cancel at period end sets `cancel_at_period_end` (event `cancel_scheduled`);
  billing ends the subscription at the boundary with its final usage invoice — in a
  trial, at the trial's end (`Subscription.ends_at`, the date the store shows).
  Cancel now: state CANCELLED, `cancelled_at`, event `cancelled_now`, and for a
  started paid subscription `next_invoice_at` = now (final invoice, usage to date).
  After commit, its Checkout Sessions that may still be open are expired on Stripe;
  completing one anyway applies nothing (`CheckoutOutcome.CANCELLED`).
- A new card (Checkout again while ON_HOLD) records `card_updated` and calls
  `billing_retry_open_invoices(subscription)` after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, TextChoices
from django.urls import reverse
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import Membership, Organization, User
from billing.models import monetization_enabled
from billing.periods import period_bounds
from billing.stripe_money import stripe_can_charge
from publisher.models import Api, PricingModel, Tier, TierVersion
from publisher.selectors import api_accepts_subscriptions, tier_accepts_subscriptions
from store.keys import generate_key
from store.models import (
    ApiKey,
    Application,
    StripeCustomer,
    Subscription,
    SubscriptionEvent,
    SubscriptionState,
)
from store.previews import UPGRADE, _iso, plan_change, usage_so_far

log = logging.getLogger(__name__)

# A rotated key keeps working this long unless the subscriber picks another grace.
KEY_ROTATION_GRACE = timedelta(hours=24)
MAX_KEY_ROTATION_GRACE = timedelta(days=30)
MAX_ACTIVE_KEYS = 20
CHECKOUT_PURPOSE = "subscription"  # metadata.apimon_purpose of the store's sessions
# Pricing models with a fixed fee charged at the start of each period (SPEC §5).
IN_ADVANCE_MODELS = ("FLAT", "FLAT_PLUS_OVERAGE")


class EventKind(TextChoices):
    CREATED = "created"
    CHECKOUT_STARTED = "checkout_started"
    CHECKOUT_COMPLETED = "checkout_completed"
    ACTIVATED = "activated"
    CARD_UPDATED = "card_updated"
    TIER_UPGRADED = "tier_upgraded"
    TIER_DOWNGRADE_SCHEDULED = "tier_downgrade_scheduled"
    TIER_DOWNGRADE_UNSCHEDULED = "tier_downgrade_unscheduled"
    CANCEL_SCHEDULED = "cancel_scheduled"
    CANCEL_UNSCHEDULED = "cancel_unscheduled"
    CANCELLED_NOW = "cancelled_now"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"


class CheckoutAction(TextChoices):
    """Why a Checkout Session was opened (its metadata.action)."""

    SUBSCRIBE = "subscribe"
    UPDATE_CARD = "update_card"
    CHANGE_TIER = "change_tier"


class PaymentError(Exception):
    """Stripe could not be reached or refused; nothing was written. The message is
    safe to show."""


def _invalidate_on_commit(**rows: list) -> None:
    from gateway import entitlements

    transaction.on_commit(lambda: entitlements.invalidate(**rows))


def _event(
    subscription: Subscription,
    kind: str,
    *,
    actor: User | None = None,
    at: datetime | None = None,
    from_state: str = "",
    to_state: str = "",
    from_tier_version: TierVersion | None = None,
    to_tier_version: TierVersion | None = None,
    note: str = "",
    data: dict | None = None,
) -> SubscriptionEvent:
    return SubscriptionEvent.objects.create(
        subscription=subscription,
        kind=kind,
        at=at or timezone.now(),
        from_state=from_state,
        to_state=to_state,
        from_tier_version=from_tier_version,
        to_tier_version=to_tier_version,
        actor=actor,
        note=note,
        data=data or {},
    )


# -- applications -------------------------------------------------------------------


def _check_application(
    *, organization: Organization, owner: User, name: str, exclude_pk: int | None
) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Enter a name."})
    taken = Application.objects.filter(
        organization=organization, owner=owner, name__iexact=name, deleted_at=None
    ).exclude(pk=exclude_pk)
    if taken.exists():
        raise ValidationError({"name": f"You already have an application “{name}”."})
    return name


def _save_application(application: Application) -> None:
    try:
        with transaction.atomic():
            application.save()
    except IntegrityError:  # the constraint settles a race of two submits
        raise ValidationError(
            {"name": f"You already have an application “{application.name}”."}
        ) from None


def application_create(
    *, organization: Organization, owner: User, name: str, description: str = ""
) -> Application:
    name = _check_application(
        organization=organization, owner=owner, name=name, exclude_pk=None
    )
    application = Application(
        organization=organization, owner=owner, name=name, description=description
    )
    _save_application(application)
    return application


def application_update(
    *, application: Application, name: str, description: str = ""
) -> Application:
    application.name = _check_application(
        organization=application.organization,
        owner=application.owner,
        name=name,
        exclude_pk=application.pk,
    )
    application.description = description
    _save_application(application)
    return application


@transaction.atomic
def application_delete(*, application: Application, actor: User | None) -> None:
    """Delete an application and revoke its keys. One with live subscriptions is
    refused (cancel them first); one with only cancelled subscriptions is kept as
    history (its subscriptions and invoices point at it) but disappears."""
    locked = Application.objects.select_for_update().get(pk=application.pk)
    if locked.subscriptions.exclude(state=SubscriptionState.CANCELLED).exists():
        raise ValidationError(
            "This application has live subscriptions: cancel them first."
        )
    now = timezone.now()
    hashes = list(locked.keys.values_list("key_hash", flat=True))
    if locked.subscriptions.exists():
        locked.keys.filter(revoked_at=None).update(revoked_at=now)
        locked.deleted_at = now
        locked.save(update_fields=["deleted_at", "updated_at"])
    else:
        locked.delete()
    if hashes:
        _invalidate_on_commit(key_hashes=hashes)


# -- API keys -----------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str  # shown once, never stored


def _active_keys(application: Application):
    now = timezone.now()
    return application.keys.filter(revoked_at=None).exclude(expires_at__lte=now)


@transaction.atomic
def api_key_create(
    *, application: Application, actor: User | None, name: str = ""
) -> IssuedKey:
    """A new key; the raw key is in the result and nowhere else."""
    locked = Application.objects.select_for_update().get(pk=application.pk)
    if locked.deleted_at is not None:
        raise ValidationError("This application is deleted.")
    if _active_keys(locked).count() >= MAX_ACTIVE_KEYS:
        raise ValidationError(
            {
                "name": f"An application holds at most {MAX_ACTIVE_KEYS} active keys: "
                "revoke one first."
            }
        )
    new = generate_key()
    key = ApiKey.objects.create(
        organization=locked.organization,
        application=locked,
        name=(name or "").strip()[:80],
        prefix=new.prefix,
        key_hash=new.key_hash,
    )
    return IssuedKey(key=key, raw=new.raw)


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: User | None) -> ApiKey:
    """The key stops working at once (also an old key still in its grace period)."""
    locked = ApiKey.objects.select_for_update().get(pk=key.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        _invalidate_on_commit(key_hashes=[locked.key_hash])
    key.revoked_at = locked.revoked_at
    return locked


@transaction.atomic
def api_key_rotate(
    *, key: ApiKey, actor: User | None, grace: timedelta = KEY_ROTATION_GRACE
) -> IssuedKey:
    """A new key replaces `key`, which keeps working for `grace` (0: stops now), so
    a subscriber can deploy the new one without an outage."""
    if not timedelta(0) <= grace <= MAX_KEY_ROTATION_GRACE:
        raise ValidationError({"grace": "Choose a grace period of up to 30 days."})
    locked = ApiKey.objects.select_for_update().get(pk=key.pk)
    now = timezone.now()
    if not locked.is_usable(now):
        raise ValidationError("This key no longer works: create a new key instead.")
    if locked.replaced_by_id is not None:
        raise ValidationError("This key was already rotated.")
    issued = api_key_create(
        application=locked.application, actor=actor, name=locked.name
    )
    until = now + grace
    locked.expires_at = min(until, locked.expires_at) if locked.expires_at else until
    locked.replaced_by = issued.key
    locked.save(update_fields=["expires_at", "replaced_by"])
    _invalidate_on_commit(key_hashes=[locked.key_hash])
    return issued


# -- Stripe customers and Checkout --------------------------------------------------


def _connected_account(organization: Organization) -> str:
    connection = getattr(organization, "stripe_connection", None)
    if connection is None or not connection.is_connected:
        raise PaymentError(f"{organization.name} does not take payments yet.")
    return connection.account_id


def stripe_customer_for(*, organization: Organization, user: User) -> StripeCustomer:
    """The subscriber's Stripe customer on the organization's connected account:
    one per subscriber, organization and account, made on first use and reused."""
    account = _connected_account(organization)
    existing = StripeCustomer.objects.filter(
        organization=organization, user=user, stripe_account_id=account
    ).first()
    if existing is not None:
        return existing
    try:
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
    except sc.StripeError as exc:
        log.warning("Stripe customer for %s on %s: %s", user, account, exc)
        raise PaymentError("The payment provider is not reachable; try again.") from exc
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


def _checkout_start(
    subscription: Subscription,
    *,
    action: str,
    site_url: str | None,
    actor: User | None,
    version: TierVersion | None = None,
) -> str:
    """Open a Checkout Session in setup mode for `subscription`'s customer on the
    connected account; returns its URL. `version` is the tier a CHANGE_TIER moves to.
    """
    organization = subscription.organization
    account = _connected_account(organization)
    customer = subscription.customer
    version = version or subscription.tier_version
    if not stripe_can_charge(version.currency):
        # A tier made before the tier form refused such currencies.
        raise PaymentError(
            f"{version.tier.name} is priced in {version.currency.upper()}, which "
            "the payment provider cannot charge: ask the publisher to change its "
            "price."
        )
    site = _site_url(site_url)
    slug = organization.slug
    # Attempt number: a retry of the same attempt replays Stripe's answer.
    attempt = subscription.events.filter(kind=EventKind.CHECKOUT_STARTED).count() + 1
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
    try:
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
    except sc.StripeError as exc:
        log.warning("Checkout for subscription %s: %s", subscription.pk, exc)
        raise PaymentError("The payment provider is not reachable; try again.") from exc
    subscription.checkout_session_id = session.id
    subscription.save(update_fields=["checkout_session_id", "updated_at"])
    _event(
        subscription,
        EventKind.CHECKOUT_STARTED,
        actor=actor,
        data={"session_id": session.id, "action": action, "version_id": version.pk},
    )
    return session.url


# -- subscribe ----------------------------------------------------------------------


@dataclass(frozen=True)
class SubscribeResult:
    subscription: Subscription
    checkout_url: str | None  # where to send the subscriber, for a paid tier


def _activate(subscription: Subscription, *, now: datetime) -> None:
    """The data-driven start of billing (see the module docstring)."""
    version = subscription.tier_version
    cycle = version.billing_cycle
    start, end = period_bounds(now, cycle, 0)
    subscription.started_at = now
    subscription.current_period_start, subscription.current_period_end = start, end
    paid = version.pricing_model != "FREE"
    trial = paid and version.trial_days > 0
    if trial:
        subscription.state = SubscriptionState.TRIALING
        subscription.trial_end = now + timedelta(days=version.trial_days)
        subscription.next_invoice_at = subscription.trial_end
    else:
        subscription.state = SubscriptionState.ACTIVE
        subscription.trial_end = None
        if not paid:
            subscription.next_invoice_at = None
        elif version.fixed_fee > 0 and version.pricing_model in IN_ADVANCE_MODELS:
            subscription.next_invoice_at = now  # the in-advance fee of period 0
        else:
            subscription.next_invoice_at = end


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
    if not api_accepts_subscriptions(api):
        raise ValidationError(
            f"{api} is {api.get_state_display().lower()}: it takes no new "
            "subscriptions."
        )
    if not tier_accepts_subscriptions(api, tier) or tier.current_version is None:
        raise ValidationError({"tier": "This tier is not offered on this API."})
    if tier.is_commercial and not monetization_enabled(org):
        raise ValidationError(
            {
                "tier": f"{tier.name} is not available: {org.name} does not take "
                "payments yet."
            }
        )
    live = Subscription.objects.filter(application=application, api=api).exclude(
        state=SubscriptionState.CANCELLED
    )
    if live.exists():
        raise ValidationError(
            {
                "application": f"{application.name} is already subscribed to {api}: "
                "change the tier of that subscription instead."
            }
        )


def _is_free(tier: Tier) -> bool:
    return tier.current_version.pricing_model == PricingModel.FREE


def _check_one_free_subscription(
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
            Q(tier_version__pricing_model=PricingModel.FREE)
            | Q(scheduled_tier_version__pricing_model=PricingModel.FREE)
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
    now = timezone.now()
    try:
        with transaction.atomic():
            if _is_free(tier):
                _check_one_free_subscription(subscriber=actor, api=api)
            subscription = Subscription.objects.create(
                organization=api.organization,
                application=application,
                api=api,
                tier=tier,
                tier_version=tier.current_version,
                subscriber=actor,
                customer=customer,
                state=SubscriptionState.PENDING_PAYMENT,
                created_at=now,
            )
            checkout_url = None
            if tier.is_commercial:
                _event(
                    subscription,
                    EventKind.CREATED,
                    actor=actor,
                    at=now,
                    to_state=SubscriptionState.PENDING_PAYMENT,
                    to_tier_version=subscription.tier_version,
                )
                checkout_url = _checkout_start(
                    subscription,
                    action=CheckoutAction.SUBSCRIBE,
                    site_url=site_url,
                    actor=actor,
                )
            else:
                _activate(subscription, now=now)
                subscription.save()
                _event(
                    subscription,
                    EventKind.CREATED,
                    actor=actor,
                    at=now,
                    to_state=subscription.state,
                    to_tier_version=subscription.tier_version,
                )
            _invalidate_on_commit(subscription_ids=[subscription.pk])
    except IntegrityError:  # two submits at once: the constraint keeps one
        raise ValidationError(
            {"application": f"{application.name} is already subscribed to {api}."}
        ) from None
    return SubscribeResult(subscription=subscription, checkout_url=checkout_url)


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
        if not monetization_enabled(subscription.organization):
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
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if locked.customer is None:
            locked.customer = stripe_customer_for(
                organization=locked.organization, user=locked.subscriber
            )
            locked.save(update_fields=["customer", "updated_at"])
        url = _checkout_start(locked, action=action, site_url=site_url, actor=actor)
    subscription.refresh_from_db()
    return url


# -- Checkout completion (browser return and webhook) ------------------------------


class CheckoutOutcome(TextChoices):
    DONE = "done"  # applied now
    ALREADY = "already"  # the other path (return or webhook) applied it first
    INCOMPLETE = "incomplete"  # no card saved yet
    EXPIRED = "expired"  # the session expired (or was expired) before a card was saved
    CANCELLED = "cancelled"  # the subscription was cancelled first: nothing applied
    FOREIGN = "foreign"  # not a session this subscription started: ignored


def _retrieve_session(organization: Organization, session_id: str) -> Any | None:
    """The session as Stripe has it on the organization's connected account, with
    its SetupIntent's PaymentMethod; None if that account has no such session."""
    connection = getattr(organization, "stripe_connection", None)
    if connection is None or not session_id:
        return None
    try:
        return sc.get_client().v1.checkout.sessions.retrieve(
            session_id,
            {"expand": ["setup_intent.payment_method"]},
            sc.request_options(account=connection.account_id),
        )
    except sc.InvalidRequestError:
        return None
    except sc.PermissionError:
        return None


def _plain(value: Any) -> dict:
    """A StripeObject (or dict, or None) as a plain dict."""
    if not value:
        return {}
    return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def subscription_confirm_checkout(
    *, subscription: Subscription, session_id: str
) -> str:
    """The browser came back from Checkout (success_url): confirm from Stripe's
    copy of the session. Returns a CheckoutOutcome."""
    session = _retrieve_session(subscription.organization, session_id)
    if session is None:
        return CheckoutOutcome.FOREIGN
    return _complete_checkout(
        session,
        organization=subscription.organization,
        subscription_id=subscription.pk,
    )


def checkout_session_completed(session: dict, *, account: str | None = None) -> None:
    """WEBHOOK HANDLER for `checkout.session.completed` with
    `metadata.apimon_purpose == "subscription"` (billing.webhooks routes it here).

    The payload is not trusted: the session is read again from the organization's
    connected account named in its metadata, so a session of another account or
    organization never activates anything. Idempotent with the browser's return:
    whichever comes first applies it, the second does nothing."""
    metadata = session.get("metadata") or {}
    try:
        org_id = int(metadata.get("organization_id") or 0)
        sub_id = int(metadata.get("subscription_id") or 0)
    except (TypeError, ValueError):
        log.info("checkout session %s: bad metadata", session.get("id"))
        return
    organization = (
        Organization.objects.select_related("stripe_connection")
        .filter(pk=org_id)
        .first()
    )
    connection = getattr(organization, "stripe_connection", None)
    if organization is None or connection is None:
        log.info("checkout session %s: unknown organization", session.get("id"))
        return
    if account and account != connection.account_id:
        log.info("checkout session %s: from another account", session.get("id"))
        return
    full = _retrieve_session(organization, session.get("id") or "")
    if full is None:
        log.info("checkout session %s: not on %s", session.get("id"), organization)
        return
    outcome = _complete_checkout(
        full, organization=organization, subscription_id=sub_id
    )
    log.info("checkout session %s: %s", session.get("id"), outcome)


def _complete_checkout(
    session: Any, *, organization: Organization, subscription_id: int
) -> str:
    metadata = _plain(session.metadata)
    if (
        metadata.get("apimon_purpose") != CHECKOUT_PURPOSE
        or metadata.get("organization_id") != str(organization.pk)
        or metadata.get("subscription_id") != str(subscription_id)
    ):
        return CheckoutOutcome.FOREIGN
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update()
            .filter(pk=subscription_id, organization=organization)
            .first()
        )
        if subscription is None:
            return CheckoutOutcome.FOREIGN
        started = subscription.events.filter(
            kind=EventKind.CHECKOUT_STARTED, data__session_id=session.id
        ).first()
        customer = subscription.customer
        if (
            started is None
            or customer is None
            or sc.object_id(session.customer) != customer.stripe_customer_id
        ):
            return CheckoutOutcome.FOREIGN
        if subscription.events.filter(
            kind=EventKind.CHECKOUT_COMPLETED, data__session_id=session.id
        ).exists():
            return CheckoutOutcome.ALREADY
        if subscription.state == SubscriptionState.CANCELLED:
            # A session that was still open when the subscription was cancelled
            # (Stripe unreachable to expire it, or completed meanwhile): the card
            # stays on Stripe's customer, nothing else changes.
            return CheckoutOutcome.CANCELLED
        if session.status == "expired":
            return CheckoutOutcome.EXPIRED
        intent = session.setup_intent
        if (
            session.status != "complete"
            or intent is None
            or isinstance(intent, str)
            or intent.status != "succeeded"
            or not intent.payment_method
        ):
            return CheckoutOutcome.INCOMPLETE
        _save_default_card(customer, intent.payment_method)
        now = timezone.now()
        action = metadata.get("action") or CheckoutAction.SUBSCRIBE
        _event(
            subscription,
            EventKind.CHECKOUT_COMPLETED,
            at=now,
            data={"session_id": session.id, "action": action},
        )
        if action == CheckoutAction.SUBSCRIBE:
            if subscription.state == SubscriptionState.PENDING_PAYMENT:
                _activate(subscription, now=now)
                subscription.save()
                _event(
                    subscription,
                    EventKind.ACTIVATED,
                    at=now,
                    from_state=SubscriptionState.PENDING_PAYMENT,
                    to_state=subscription.state,
                    to_tier_version=subscription.tier_version,
                )
        elif action == CheckoutAction.CHANGE_TIER:
            _change_after_checkout(subscription, metadata, now=now)
        else:
            _event(
                subscription,
                EventKind.CARD_UPDATED,
                at=now,
                note=f"{customer.card_brand.title()} •••• {customer.card_last4}",
            )
            sub_pk = subscription.pk
            transaction.on_commit(
                lambda: billing_retry_open_invoices(Subscription.objects.get(pk=sub_pk))
            )
        _invalidate_on_commit(subscription_ids=[subscription.pk])
    return CheckoutOutcome.DONE


def _save_default_card(customer: StripeCustomer, method: Any) -> None:
    """Checkout saves the card but does not make it the invoice default: do that,
    and remember brand and last 4 for the store's pages."""
    try:
        sc.get_client().v1.customers.update(
            customer.stripe_customer_id,
            {"invoice_settings": {"default_payment_method": method.id}},
            sc.request_options(
                account=customer.stripe_account_id,
                idempotency_key=sc.idempotency_key(
                    "customer", customer.pk, "default-payment-method", method.id
                ),
            ),
        )
    except sc.StripeError as exc:
        raise PaymentError("The payment provider is not reachable; try again.") from exc
    card = getattr(method, "card", None)
    customer.default_payment_method_id = method.id
    customer.card_brand = (getattr(card, "brand", "") or "")[:20]
    customer.card_last4 = (getattr(card, "last4", "") or "")[:4]
    customer.save(
        update_fields=["default_payment_method_id", "card_brand", "card_last4"]
    )


def billing_retry_open_invoices(subscription: Subscription) -> None:
    """The subscriber saved a new card (after a failed payment). Called after
    commit: billing pays the subscription's failed invoices with it at once (a
    Celery task, retried on network errors); on success the subscription is ACTIVE
    again (billing.services.subscription_retry_payment)."""
    from billing.tasks import retry_payment

    retry_payment.delay(subscription.pk)


def _change_after_checkout(
    subscription: Subscription, metadata: dict, *, now: datetime
) -> None:
    """A free subscription's card for an upgrade to a paid tier is saved: apply it,
    unless the change has become impossible meanwhile (then the card stays saved)."""
    version = (
        TierVersion.objects.select_related("tier")
        .filter(
            pk=int(metadata.get("tier_version_id") or 0),
            tier__organization=subscription.organization,
        )
        .first()
    )
    if version is None or subscription.tier_version_id == version.pk:
        return
    try:
        _apply_change(subscription, tier=version.tier, actor=None, now=now)
    except ValidationError as exc:
        _event(
            subscription,
            EventKind.CARD_UPDATED,
            at=now,
            note="Card saved; the tier change was not applied: "
            + " ".join(exc.messages),
        )


# -- change tier --------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeResult:
    subscription: Subscription
    kind: str  # "upgrade" (applied), "downgrade" (scheduled) or "checkout"
    checkout_url: str | None = None


def _check_change(subscription: Subscription, tier: Tier) -> None:
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
    if tier.is_commercial and not monetization_enabled(subscription.organization):
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
    a downgrade is scheduled for the next period (`store.previews` decides which).
    An upgrade of a subscription without a saved card goes through Checkout first:
    the result then carries the Checkout URL and nothing has changed yet."""
    tier = Tier.objects.select_related("current_version").get(pk=tier.pk)
    with transaction.atomic():
        locked = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("customer", "tier", "tier_version", "api", "organization")
            .get(pk=subscription.pk)
        )
        _check_change(locked, tier)
        if _is_free(tier):
            _check_one_free_subscription(
                subscriber=locked.subscriber, api=locked.api, exclude_pk=locked.pk
            )
        customer = locked.customer
        if tier.is_commercial and (
            customer is None or not customer.default_payment_method_id
        ):
            if locked.customer is None:
                locked.customer = stripe_customer_for(
                    organization=locked.organization, user=locked.subscriber
                )
                locked.save(update_fields=["customer", "updated_at"])
            url = _checkout_start(
                locked,
                action=CheckoutAction.CHANGE_TIER,
                site_url=site_url,
                actor=actor,
                version=tier.current_version,
            )
            return ChangeResult(subscription=locked, kind="checkout", checkout_url=url)
        kind = _apply_change(locked, tier=tier, actor=actor, now=timezone.now())
    subscription.refresh_from_db()
    return ChangeResult(subscription=subscription, kind=kind)


def _apply_change(
    subscription: Subscription, *, tier: Tier, actor: User | None, now: datetime
) -> str:
    """Upgrade now or schedule a downgrade, on a locked row: what
    `store.previews.plan_change` says (the preview shows the same plan)."""
    _check_change(subscription, tier)
    version = tier.current_version
    old_version = subscription.tier_version
    change = plan_change(
        subscription=subscription,
        tier=tier,
        version=version,
        usage=usage_so_far(subscription, now),
        now=now,
    )
    change.apply(subscription)
    subscription.save()
    change.event(
        subscription, old_version=old_version, new_version=version, at=now, actor=actor
    ).save()
    if change.kind != UPGRADE:
        return "downgrade"
    _invalidate_on_commit(subscription_ids=[subscription.pk])
    return "upgrade"


@transaction.atomic
def subscription_unschedule_change(
    *, subscription: Subscription, actor: User | None
) -> Subscription:
    """Keep the current tier after all: drop a scheduled downgrade."""
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if locked.scheduled_tier_version_id is None:
        raise ValidationError("No tier change is scheduled.")
    _event(
        locked,
        EventKind.TIER_DOWNGRADE_UNSCHEDULED,
        actor=actor,
        from_tier_version=locked.tier_version,
        to_tier_version=locked.scheduled_tier_version,
    )
    locked.scheduled_tier = None
    locked.scheduled_tier_version = None
    locked.save()
    return locked


# -- cancel -------------------------------------------------------------------------


@transaction.atomic
def subscription_cancel(
    *, subscription: Subscription, actor: User | None, at_period_end: bool = True
) -> Subscription:
    """Cancel at the end of the current period (default: access continues until
    then, billing ends it with its final invoice), or now: access ends at once and a
    started paid subscription gets its final invoice for usage to date.

    A subscription that never started (PENDING_PAYMENT) is always cancelled now."""
    locked = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("tier", "tier_version")
        .get(pk=subscription.pk)
    )
    if locked.state == SubscriptionState.CANCELLED:
        raise ValidationError("This subscription is already cancelled.")
    now = timezone.now()
    if locked.started_at is None or locked.current_period_end is None:
        at_period_end = False
    if at_period_end:
        if not locked.cancel_at_period_end:
            locked.cancel_at_period_end = True
            locked.save()
            _event(
                locked,
                EventKind.CANCEL_SCHEDULED,
                actor=actor,
                at=now,
                data={"effective_at": _iso(locked.ends_at)},
            )
        return locked
    from_state = locked.state
    locked.state = SubscriptionState.CANCELLED
    locked.cancelled_at = now
    locked.cancel_at_period_end = False
    paid = locked.started_at is not None and locked.tier_version.pricing_model != "FREE"
    locked.next_invoice_at = now if paid else None
    locked.save()
    _event(
        locked,
        EventKind.CANCELLED_NOW,
        actor=actor,
        at=now,
        from_state=from_state,
        to_state=SubscriptionState.CANCELLED,
        data={"final_invoice": paid},
    )
    _invalidate_on_commit(subscription_ids=[locked.pk])
    _expire_checkouts_on_commit(locked, now=now)
    return locked


# Stripe keeps a Checkout Session open for at most 24 hours.
CHECKOUT_SESSION_LIFETIME = timedelta(hours=24)


def _expire_checkouts_on_commit(subscription: Subscription, *, now: datetime) -> None:
    """The subscription is cancelled: once that is committed, expire the Checkout
    Sessions it started that may still be open (started within Stripe's 24 hours and
    not completed), so the subscriber can no longer type a card into them.

    Best effort, after commit: the cancel never waits for Stripe nor fails with it. A
    session Stripe could not expire stays open until its own expiry; completing it
    then changes nothing (`_complete_checkout` answers CANCELLED)."""
    customer = subscription.customer
    if customer is None:
        return
    started = subscription.events.filter(
        kind=EventKind.CHECKOUT_STARTED, at__gte=now - CHECKOUT_SESSION_LIFETIME
    ).values_list("data__session_id", flat=True)
    completed = set(
        subscription.events.filter(kind=EventKind.CHECKOUT_COMPLETED).values_list(
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
        except sc.InvalidRequestError as exc:  # not open any more, or gone
            log.info(
                "Checkout %s of cancelled subscription %s not expired: %s",
                session_id,
                subscription_id,
                exc.user_message,
            )
        except sc.StripeError as exc:
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


@transaction.atomic
def subscription_resume(
    *, subscription: Subscription, actor: User | None
) -> Subscription:
    """Undo a scheduled cancellation."""
    locked = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("organization", "tier_version")
        .get(pk=subscription.pk)
    )
    if locked.state == SubscriptionState.CANCELLED or not locked.cancel_at_period_end:
        raise ValidationError("No cancellation is scheduled.")
    if locked.tier_version.pricing_model != "FREE" and not monetization_enabled(
        locked.organization
    ):
        raise ValidationError(
            "The publisher is not taking payments now, so this paid subscription "
            "cannot be kept beyond its period."
        )
    locked.cancel_at_period_end = False
    locked.save()
    _event(locked, EventKind.CANCEL_UNSCHEDULED, actor=actor)
    return locked


# -- block (publisher) --------------------------------------------------------------


@transaction.atomic
def subscription_block(
    *, subscription: Subscription, actor: User | None, reason: str
) -> Subscription:
    """The publisher blocks a subscription: the gateway answers 403 and the
    subscriber sees `reason`. Billing is not ended (cancel for that)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Tell the subscriber why."})
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if locked.state in (SubscriptionState.CANCELLED, SubscriptionState.BLOCKED):
        raise ValidationError(
            f"A {locked.get_state_display().lower()} subscription cannot be blocked."
        )
    from_state = locked.state
    locked.state = SubscriptionState.BLOCKED
    locked.blocked_reason = reason
    locked.blocked_by_publisher = True
    locked.save()
    _event(
        locked,
        EventKind.BLOCKED,
        actor=actor,
        from_state=from_state,
        to_state=SubscriptionState.BLOCKED,
        note=reason,
    )
    _invalidate_on_commit(subscription_ids=[locked.pk])
    return locked


def _state_after_unblock(subscription: Subscription, now: datetime) -> str:
    if subscription.started_at is None:
        return SubscriptionState.PENDING_PAYMENT
    if subscription.on_hold_since is not None:
        return SubscriptionState.ON_HOLD
    if subscription.trial_end and subscription.trial_end > now:
        return SubscriptionState.TRIALING
    return SubscriptionState.ACTIVE


@transaction.atomic
def subscription_unblock(
    *, subscription: Subscription, actor: User | None
) -> Subscription:
    """Lift a publisher's block. The state returns to what the rows say (pending,
    on hold, trialing or active); a block by dunning is lifted by paying instead."""
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if locked.state != SubscriptionState.BLOCKED or not locked.blocked_by_publisher:
        raise ValidationError("This subscription is not blocked by the publisher.")
    now = timezone.now()
    locked.state = _state_after_unblock(locked, now)
    locked.blocked_reason = ""
    locked.blocked_by_publisher = False
    locked.save()
    _event(
        locked,
        EventKind.UNBLOCKED,
        actor=actor,
        at=now,
        from_state=SubscriptionState.BLOCKED,
        to_state=locked.state,
    )
    _invalidate_on_commit(subscription_ids=[locked.pk])
    return locked
