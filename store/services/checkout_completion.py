"""A Checkout Session completed: the browser came back from Stripe (success_url) or
Stripe's `checkout.session.completed` webhook arrived, whichever is first; the
second finds it done. What a completed session does depends on why it was opened:
start a subscription, apply a tier change, or save a new card."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import TextChoices

from apimon import clock
from apimon import stripe_client as sc
from apimon.models import Organization
from apimon.payment_errors import StripeAccessDenied, StripeInvalidRequest
from publisher.models import TierVersion
from store import hooks, lifecycle
from store.models import Subscription, SubscriptionState
from store.models import SubscriptionEventKind as Kind
from store.services.checkout import CHECKOUT_PURPOSE, CheckoutAction
from store.services.tier_changes import apply_change

log = logging.getLogger(__name__)


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
    account = hooks.payment_account(organization)
    if account is None or not session_id:
        return None
    try:
        return sc.get_client().v1.checkout.sessions.retrieve(
            session_id,
            {"expand": ["setup_intent.payment_method"]},
            sc.request_options(account=account),
        )
    except (StripeInvalidRequest, StripeAccessDenied):
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
    """Stripe's `checkout.session.completed` for a session with
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
    organization = Organization.objects.filter(pk=org_id).first()
    connected = hooks.payment_account(organization) if organization else None
    if organization is None or connected is None:
        log.info("checkout session %s: unknown organization", session.get("id"))
        return
    if account and account != connected:
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
            kind=Kind.CHECKOUT_STARTED, data__session_id=session.id
        ).first()
        customer = subscription.customer
        if (
            started is None
            or customer is None
            or sc.object_id(session.customer) != customer.stripe_customer_id
        ):
            return CheckoutOutcome.FOREIGN
        if subscription.events.filter(
            kind=Kind.CHECKOUT_COMPLETED, data__session_id=session.id
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
        now = clock.now()
        action = metadata.get("action") or CheckoutAction.SUBSCRIBE
        method = intent.payment_method
        card = getattr(method, "card", None)
        saved = {
            "payment_method_id": method.id,
            "brand": getattr(card, "brand", "") or "",
            "last4": getattr(card, "last4", "") or "",
        }
        completed = {"session_id": session.id, "action": action}
        if action == CheckoutAction.UPDATE_CARD:
            # This subscription's card only; billing pays its failed invoices with
            # it (it answers `card_updated`).
            lifecycle.record(
                subscription, Kind.CHECKOUT_COMPLETED, at=now, data=completed
            )
            lifecycle.save_card(subscription, Kind.CARD_UPDATED, at=now, **saved)
        else:
            lifecycle.save_card(
                subscription, Kind.CHECKOUT_COMPLETED, at=now, data=completed, **saved
            )
            if action == CheckoutAction.CHANGE_TIER:
                _change_after_checkout(subscription, metadata, now=now)
            elif subscription.state == SubscriptionState.PENDING_PAYMENT:
                lifecycle.activate(subscription, at=now)
    return CheckoutOutcome.DONE


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
        with transaction.atomic():
            apply_change(subscription, tier=version.tier, actor=None, now=now)
    except ValidationError as exc:
        lifecycle.record(
            subscription,
            Kind.CARD_UPDATED,
            at=now,
            note="Card saved; the tier change was not applied: "
            + " ".join(exc.messages),
        )
