"""The platform plan an organization buys from the platform operator: the upgrade
through Checkout (setup mode) on the platform's own Stripe account, and what happens
when one of the plan's payments fails or is paid (docs/billing.md, "Platform plan
payments")."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apimon import clock
from apimon import stripe_client as sc
from apimon.models import Organization, PlatformPlan
from apimon.payment_errors import StripeInvalidRequest
from billing import emails
from billing.models import (
    PlatformSubscription,
    PlatformSubscriptionStatus,
    failed_unpaid_invoices,
)
from billing.platform_billing import UPDATE_CARD, checkout_message
from billing.push import pay_each

log = logging.getLogger(__name__)

PLATFORM_PLAN_PURPOSE = "platform_plan"


@dataclass(frozen=True)
class BillingDetails:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    email: str
    phone: str
    line2: str = ""
    state: str = ""

    def stripe_customer(self) -> dict[str, Any]:
        # Stripe refuses empty strings for address fields: leave blank ones out.
        fields = {
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "postal_code": self.postal_code,
            "state": self.state,
            "country": self.country,
        }
        address = {key: value for key, value in fields.items() if value}
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "address": address,
        }


def paid_plans():
    return PlatformPlan.objects.filter(
        is_active=True, is_trial=False, allows_monetization=True
    )


def platform_checkout_start(
    *,
    organization: Organization,
    plan: PlatformPlan,
    details: BillingDetails,
    success_url: str,
    cancel_url: str,
) -> str:
    """Record the billing details, make (or update) the organization's customer on the
    platform's own Stripe account, and open a Checkout Session in setup mode for its
    card. Returns the Checkout URL. The plan changes only when Checkout completes."""
    if plan not in paid_plans():
        raise ValidationError("This plan cannot be chosen.")
    if "{CHECKOUT_SESSION_ID}" not in success_url:
        raise ValueError("success_url must carry {CHECKOUT_SESSION_ID}")
    with transaction.atomic():
        sub, _ = PlatformSubscription.objects.select_for_update().get_or_create(
            organization=organization,
            defaults=_details_fields(details),
        )
        for name, value in _details_fields(details).items():
            setattr(sub, name, value)
        sub.pending_plan = plan
        sub.checkout_attempts += 1
        sub.save()
    client = sc.get_client()
    if not sub.customer_id:
        customer = client.v1.customers.create(
            {
                "description": organization.name,
                "metadata": {
                    "apimon_org_id": str(organization.pk),
                    "apimon_purpose": PLATFORM_PLAN_PURPOSE,
                },
            },
            sc.request_options(
                idempotency_key=sc.idempotency_key("platformsub", sub.pk, "customer")
            ),
        )
        sub.customer_id = customer.id
        sub.livemode = bool(customer.livemode)
        sub.save(update_fields=["customer_id", "livemode", "updated_at"])
    client.v1.customers.update(
        sub.customer_id,
        details.stripe_customer(),
        sc.request_options(
            idempotency_key=sc.idempotency_key(
                "platformsub", sub.pk, "details", sub.checkout_attempts
            )
        ),
    )
    metadata = {
        "apimon_purpose": PLATFORM_PLAN_PURPOSE,
        "organization_id": str(organization.pk),
        "plan": plan.slug,
    }
    session = client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "customer": sub.customer_id,
            "currency": plan.currency,
            "allowed_payment_method_types": ["card"],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "setup_intent_data": {"metadata": metadata},
            "custom_text": {"submit": {"message": checkout_message(sub, plan)}},
        },
        sc.request_options(
            idempotency_key=sc.idempotency_key(
                "platformsub", sub.pk, "checkout", sub.checkout_attempts
            )
        ),
    )
    sub.checkout_session_id = session.id
    sub.save(update_fields=["checkout_session_id", "updated_at"])
    return session.url


def _details_fields(details: BillingDetails) -> dict[str, str]:
    return {
        "billing_name": details.name,
        "address_line1": details.line1,
        "address_line2": details.line2,
        "city": details.city,
        "postal_code": details.postal_code,
        "state": details.state,
        "country": details.country,
        "email": details.email,
        "phone": details.phone,
    }


class CheckoutNotComplete(Exception):
    """The Checkout Session is not (yet) complete, or is not apimon's."""


def platform_checkout_complete(
    *, session_id: str, organization: Organization | None = None
) -> tuple[PlatformSubscription, bool]:
    """Finish an upgrade from its completed Checkout Session: the card becomes the
    customer's invoice default and the organization moves to the plan. Called by the
    browser's return and by the `checkout.session.completed` webhook, whichever comes
    first; the second finds it done. Returns (subscription, changed now)."""
    client = sc.get_client()
    try:
        session = client.v1.checkout.sessions.retrieve(
            session_id, {"expand": ["setup_intent.payment_method"]}
        ).to_dict()
    except StripeInvalidRequest as exc:
        raise CheckoutNotComplete("No such Checkout Session.") from exc
    metadata = session.get("metadata") or {}
    if metadata.get("apimon_purpose") != PLATFORM_PLAN_PURPOSE:
        raise CheckoutNotComplete("This Checkout Session is not a plan upgrade.")
    org_id = int(metadata.get("organization_id") or 0)
    if organization is not None and organization.pk != org_id:
        raise CheckoutNotComplete("This Checkout Session is another organization's.")
    if session.get("status") != "complete":
        raise CheckoutNotComplete("The card has not been saved yet.")
    with transaction.atomic():
        sub = (
            PlatformSubscription.objects.select_for_update()
            .select_related("organization")
            .filter(organization_id=org_id)
            .first()
        )
        if sub is None or sub.customer_id != sc.object_id(session.get("customer")):
            raise CheckoutNotComplete("This Checkout Session is not apimon's.")
        if sub.completed_session_id == session["id"]:
            return sub, False
        plan = PlatformPlan.objects.get(slug=metadata["plan"])
        if metadata.get("action") == UPDATE_CARD:  # the Billing page: keep the plan
            if sub.status != PlatformSubscriptionStatus.ACTIVE:
                raise CheckoutNotComplete("The plan ended before the card was saved.")
            plan = sub.plan
        method = (session.get("setup_intent") or {}).get("payment_method") or {}
        if not method.get("id"):
            raise CheckoutNotComplete("Checkout saved no payment method.")
        # Checkout saves the card but does not make it the default for invoices.
        client.v1.customers.update(
            sub.customer_id,
            {"invoice_settings": {"default_payment_method": method["id"]}},
            sc.request_options(
                idempotency_key=sc.idempotency_key(
                    "platformsub", sub.pk, "default-payment-method", method["id"]
                )
            ),
        )
        now = clock.now()
        if sub.status != PlatformSubscriptionStatus.ACTIVE or sub.started_at is None:
            # The plan is invoiced monthly in advance from here (billing engine).
            sub.started_at = now
            sub.next_invoice_at = now
            sub.past_due_since = None
            sub.grace_until = None
            sub.cancel_at_period_end, sub.scheduled_plan = False, None
        elif sub.is_past_due:
            # A new card for a past-due plan: pay the failed invoices with it now.
            from billing.tasks import retry_platform_payment

            pk = sub.pk
            transaction.on_commit(lambda: retry_platform_payment.delay(pk), robust=True)
        card = method.get("card") or {}
        sub.plan = plan
        sub.pending_plan = None
        sub.status = PlatformSubscriptionStatus.ACTIVE
        sub.payment_method_id = method["id"]
        sub.card_brand = card.get("brand") or ""
        sub.card_last4 = card.get("last4") or ""
        sub.card_exp_month, sub.card_exp_year = (
            card.get("exp_month"),
            card.get("exp_year"),
        )
        sub.completed_session_id = session["id"]
        sub.save()
        organization = sub.organization
        organization.plan = plan
        organization.save(update_fields=["plan"])
    log.info("%s upgraded to %s", organization, plan)
    return sub, True


# --- The platform plan's own payments (docs/billing.md, "Platform plan payments") ---


def platform_payment_failed(*, platform_subscription_id: int, at: datetime) -> bool:
    """A platform invoice's payment failed: an ACTIVE plan becomes past due for
    PLATFORM_PLAN_GRACE_DAYS and the owners get an email. Once: a plan already past
    due (Stripe's next failed retry, a replayed event) stays as it is."""
    with transaction.atomic():
        sub = PlatformSubscription.objects.select_for_update().get(
            pk=platform_subscription_id
        )
        if sub.status != PlatformSubscriptionStatus.ACTIVE or sub.is_past_due:
            return False
        sub.past_due_since = at
        sub.grace_until = at + timedelta(days=settings.PLATFORM_PLAN_GRACE_DAYS)
        sub.save(update_fields=["past_due_since", "grace_until", "updated_at"])
        log.info("platform plan of %s past due", sub.organization_id)
        notify_owners_on_commit(sub.pk, "payment_failed")
    return True


def platform_payment_recovered(*, platform_subscription_id: int, at: datetime) -> bool:
    """Past due → in good standing once no failed platform invoice is unpaid."""
    with transaction.atomic():
        sub = PlatformSubscription.objects.select_for_update().get(
            pk=platform_subscription_id
        )
        if not sub.is_past_due:
            return False
        if failed_unpaid_invoices(platform_subscription_id=sub.pk).exists():
            return False
        sub.past_due_since = None
        sub.grace_until = None
        sub.save(update_fields=["past_due_since", "grace_until", "updated_at"])
        log.info("platform plan of %s paid again at %s", sub.organization_id, at)
    return True


def platform_retry_payment(*, platform_subscription: PlatformSubscription) -> int:
    """After a new card was saved (the plan's Checkout): pay the plan's failed
    invoices with it; returns how many are paid now. A payment clears past due."""
    return pay_each(
        failed_unpaid_invoices(platform_subscription_id=platform_subscription.pk),
        platform_subscription.payment_method_id,
    )


def notify_owners_on_commit(platform_subscription_id: int, kind: str) -> None:
    transaction.on_commit(
        lambda: emails.send_platform_payment_email(platform_subscription_id, kind)
    )
