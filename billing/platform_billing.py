"""The owner's Billing page for the organization's own platform plan: what apimon
(the platform) charges the organization, on the platform's own Stripe account.

Reads (`billing_overview`) and writes (`platform_plan_change`, `…_cancel`, `…_resume`,
`…_unschedule`, `platform_card_checkout_start`), and the period-end step the billing
engine runs (`platform_period_end`). The rules (docs/billing.md, "The owner's
Billing page"):

- **Upgrade** (a plan that costs at least as much, in the same currency): at once.
  The rest of the month is prorated by the exact time left, as Stripe prorates: a
  credit for the unused part of the current plan and a charge for the rest of the
  new one, on a `platform` invoice charged now. The month keeps its anchor, the new
  plan's commission applies from now.
- **Downgrade** (cheaper, or another currency): at the end of the month. The plan
  paid for runs to its end; the next monthly invoice is the new plan's.
- **Cancel**: the paid plan runs to the end of the month, nothing more is charged,
  and the organization is then on the trial plan, exactly like a plan that ended for
  non-payment: nothing new can be monetized (no new paid subscriptions, no moves to
  a commercial tier, no Connect or Enable); existing subscriptions go on and their
  subscribers are invoiced as before. Undo until then with "Keep my plan".
- A plan past due changes nothing but its card until the failed payment is paid (it
  is not cancelled either: unpaid, it ends by itself after its grace period).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apimon import clock
from apimon import stripe_client as sc
from apimon.models import Organization, PlatformPlan
from apimon.services import trial_plan
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    failed_unpaid_invoices,
)
from pricing.currencies import format_money, from_minor
from pricing.periods import period_containing
from pricing.rating import Line, Pricing, PricingModel, proration_lines

log = logging.getLogger(__name__)

UPGRADE, DOWNGRADE = "upgrade", "downgrade"
UPDATE_CARD = "update_card"  # metadata.action of a Checkout Session for a new card


# --- Reads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NextCharge:
    at: datetime
    amount_minor: int
    currency: str
    plan: PlatformPlan

    @property
    def amount(self) -> str:
        return format_money(self.amount_minor, self.currency)


@dataclass(frozen=True)
class PlanOption:
    plan: PlatformPlan
    direction: str  # UPGRADE or DOWNGRADE

    @property
    def price(self) -> str:
        return format_money(self.plan.monthly_price_minor, self.plan.currency)


@dataclass(frozen=True)
class Overview:
    organization: Organization
    subscription: PlatformSubscription | None
    invoices: list[Invoice]
    options: list[PlanOption]

    @property
    def plan(self) -> PlatformPlan:
        return self.organization.plan

    @property
    def active(self) -> bool:
        sub = self.subscription
        return bool(sub and sub.status == PlatformSubscriptionStatus.ACTIVE)

    @property
    def status(self) -> str:
        """trial, active, past_due, cancelling."""
        if not self.active:
            return "trial"
        if self.subscription.is_past_due:
            return "past_due"
        if self.subscription.cancel_at_period_end:
            return "cancelling"
        return "active"

    @property
    def next_charge(self) -> NextCharge | None:
        sub = self.subscription
        if not self.active or sub.cancel_at_period_end or not sub.next_invoice_at:
            return None
        plan = sub.scheduled_plan or sub.plan
        return NextCharge(
            sub.next_invoice_at, plan.monthly_price_minor, plan.currency, plan
        )

    @property
    def period_end(self) -> datetime | None:
        return self.subscription.next_invoice_at if self.active else None


def billing_overview(organization: Organization) -> Overview:
    sub = (
        PlatformSubscription.objects.select_related("plan", "scheduled_plan")
        .filter(organization=organization)
        .first()
    )
    invoices = list(
        Invoice.objects.filter(organization=organization, kind=InvoiceKind.PLATFORM)
        .prefetch_related("lines")
        .order_by("-period_start", "-pk")
    )
    options = []
    if sub is not None and sub.status == PlatformSubscriptionStatus.ACTIVE:
        options = [
            PlanOption(plan, change_direction(sub.plan, plan))
            for plan in paid_plans().exclude(pk=sub.plan_id)
        ]
    return Overview(organization, sub, invoices, options)


def paid_plans():
    return PlatformPlan.objects.filter(
        is_active=True, is_trial=False, allows_monetization=True
    )


def change_direction(current: PlatformPlan, new: PlatformPlan) -> str:
    """An upgrade costs at least as much in the same currency; anything else (a
    cheaper plan, another currency, which cannot be prorated) waits for the month's
    end."""
    if (
        new.currency.lower() == current.currency.lower()
        and new.monthly_price_minor >= current.monthly_price_minor
    ):
        return UPGRADE
    return DOWNGRADE


def upgrade_lines(
    sub: PlatformSubscription, plan: PlatformPlan, at: datetime
) -> list[Line]:
    """The prorations an upgrade to `plan` at `at` charges now."""
    _i, start, end = period_containing(sub.started_at, "month", at)
    return proration_lines(
        old=_pricing(sub.plan),
        new=_pricing(plan),
        period_start=start,
        period_end=end,
        changed_at=at,
        old_name=f"the {sub.plan.name} plan",
        new_name=f"the {plan.name} plan",
    )


def _pricing(plan: PlatformPlan) -> Pricing:
    return Pricing(
        model=PricingModel.FLAT,
        currency=plan.currency,
        fixed_fee=from_minor(plan.monthly_price_minor, plan.currency),
    )


def checkout_message(sub: PlatformSubscription | None, plan: PlatformPlan) -> str:
    """What the Checkout page says about money (Stripe's custom_text) when the owner
    saves a card for `plan`: a new plan is charged at once (the engine invoices the
    first month in advance), a new card for the plan in force pays the failed
    payment now, or nothing until the next monthly invoice."""
    price = format_money(plan.monthly_price_minor, plan.currency)
    active = sub is not None and sub.status == PlatformSubscriptionStatus.ACTIVE
    if not active or sub.plan_id != plan.pk:
        return (
            f"You will be charged {price} now for the first month of the "
            f"{plan.name} plan, then {price} every month."
        )
    owed: dict[str, int] = {}
    for invoice in failed_unpaid_invoices(platform_subscription_id=sub.pk):
        due = invoice.total_minor - invoice.amount_paid_minor
        owed[invoice.currency] = owed.get(invoice.currency, 0) + due
    if owed:
        amounts = " and ".join(format_money(m, c) for c, m in sorted(owed.items()))
        return f"Saving this card pays the failed payment of {amounts} at once."
    if sub.next_invoice_at and not sub.cancel_at_period_end:
        return (
            "Nothing is charged now: this card pays the next invoice, "
            f"{price} on {sub.next_invoice_at.day} {sub.next_invoice_at:%b %Y}."
        )
    return "Nothing is charged now."


# --- Writes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeResult:
    subscription: PlatformSubscription
    direction: str
    invoice: Invoice | None = None  # an upgrade's prorations, charged now


def _locked(organization: Organization) -> PlatformSubscription:
    sub = (
        PlatformSubscription.objects.select_for_update(of=("self",))
        .select_related("plan")
        .filter(organization=organization)
        .first()
    )
    if sub is None or sub.status != PlatformSubscriptionStatus.ACTIVE:
        raise ValidationError("Your organization is not on a paid plan.")
    return sub


def platform_plan_change(
    *, organization: Organization, plan: PlatformPlan, now: datetime | None = None
) -> ChangeResult:
    """Change the paid plan: an upgrade at once with its prorations charged now, a
    downgrade at the end of the month (see the module docstring)."""
    if not paid_plans().filter(pk=plan.pk).exists():
        raise ValidationError("This plan cannot be chosen.")
    now = now or clock.now()
    with transaction.atomic():
        sub = _locked(organization)
        if sub.plan_id == plan.pk:
            raise ValidationError(f"You are on the {plan.name} plan already.")
        if sub.is_past_due:
            raise ValidationError(
                "Your last plan payment failed: update your card first, then change "
                "the plan."
            )
        direction = change_direction(sub.plan, plan)
        sub.cancel_at_period_end = False
        if direction == DOWNGRADE:
            sub.scheduled_plan = plan
            sub.save(
                update_fields=["scheduled_plan", "cancel_at_period_end", "updated_at"]
            )
            return ChangeResult(sub, DOWNGRADE)
        invoice = _write_proration_invoice(sub, plan, now)
        sub.plan = plan
        sub.scheduled_plan = None
        sub.save(
            update_fields=[
                "plan",
                "scheduled_plan",
                "cancel_at_period_end",
                "updated_at",
            ]
        )
        Organization.objects.filter(pk=organization.pk).update(plan=plan)
        organization.plan = plan
    log.info("%s changed its platform plan to %s", organization, plan)
    return ChangeResult(sub, UPGRADE, invoice)


def _write_proration_invoice(
    sub: PlatformSubscription, plan: PlatformPlan, now: datetime
) -> Invoice | None:
    from billing.engine import _enqueue_push_on_commit, _number

    lines = upgrade_lines(sub, plan, now)
    total = sum(line.amount_minor for line in lines)
    if total <= 0:  # same price: nothing to charge
        return None
    _i, _start, end = period_containing(sub.started_at, "month", now)
    invoice = Invoice(
        organization_id=sub.organization_id,
        platform_subscription=sub,
        kind=InvoiceKind.PLATFORM,
        period_start=now,
        period_end=end,
        currency=plan.currency.lower(),
        total_minor=total,
        stripe_customer_id=sub.customer_id,
        created_at=now,
        rating={"plan": plan.slug, "change_from": sub.plan.slug},
    )
    _number([invoice])
    invoice.save()
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=position,
            kind=line.kind.value,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount_minor=line.amount_minor,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for position, line in enumerate(lines, start=1)
    )
    _enqueue_push_on_commit([invoice.pk])
    return invoice


def _set(organization: Organization, **fields: Any) -> PlatformSubscription:
    with transaction.atomic():
        sub = _locked(organization)
        for name, value in fields.items():
            setattr(sub, name, value)
        sub.save(update_fields=[*fields, "updated_at"])
    return sub


def platform_plan_unschedule(*, organization: Organization) -> PlatformSubscription:
    """Keep the current plan instead of the downgrade planned for the month's end."""
    return _set(organization, scheduled_plan=None)


def platform_plan_cancel(*, organization: Organization) -> PlatformSubscription:
    """End the paid plan at the end of the month (back to the trial plan then). Not
    while past due: that plan ends by itself when its grace period is over, and its
    unpaid invoice is voided then (services.platform_dunning_run)."""
    sub = PlatformSubscription.objects.filter(organization=organization).first()
    if sub is not None and sub.is_past_due:
        raise ValidationError(
            "Your last plan payment failed: update your card to pay it, or leave it "
            f"unpaid and the plan ends on {sub.grace_until.day} "
            f"{sub.grace_until:%b %Y}."
        )
    return _set(organization, cancel_at_period_end=True, scheduled_plan=None)


def platform_plan_resume(*, organization: Organization) -> PlatformSubscription:
    """Undo a cancellation before the month ends."""
    return _set(organization, cancel_at_period_end=False)


def platform_period_end(sub: PlatformSubscription, *, at: datetime) -> bool:
    """The billing engine reached the end of a month of `sub` (its
    `next_invoice_at`, with the row locked): apply what the owner asked for then.
    Returns False when the plan ended (no invoice for a next month)."""

    if sub.cancel_at_period_end:
        sub.status = PlatformSubscriptionStatus.CANCELLED
        sub.cancel_at_period_end = False
        sub.scheduled_plan = None
        sub.ended_at = at
        sub.next_invoice_at = None
        sub.save(
            update_fields=[
                "status",
                "cancel_at_period_end",
                "scheduled_plan",
                "ended_at",
                "next_invoice_at",
                "updated_at",
            ]
        )
        Organization.objects.filter(pk=sub.organization_id).update(plan=trial_plan())
        log.info("%s: cancelled by its owner, back on the trial plan", sub)
        return False
    if sub.scheduled_plan_id:
        sub.plan = sub.scheduled_plan
        sub.scheduled_plan = None
        sub.save(update_fields=["plan", "scheduled_plan", "updated_at"])
        Organization.objects.filter(pk=sub.organization_id).update(plan=sub.plan)
        log.info("%s: now on the %s plan", sub.organization_id, sub.plan)
    return True


def platform_card_checkout_start(
    *, organization: Organization, success_url: str, cancel_url: str
) -> str:
    """A new card for the plan in force: Checkout in setup mode on the platform's own
    account for the organization's customer (the billing details are on file).
    Completed by `services.platform_checkout_complete`, which keeps the plan."""
    if "{CHECKOUT_SESSION_ID}" not in success_url:
        raise ValueError("success_url must carry {CHECKOUT_SESSION_ID}")
    with transaction.atomic():
        sub = _locked(organization)
        if not sub.customer_id:
            raise ValidationError("Your organization has no card on file to replace.")
        sub.checkout_attempts += 1
        sub.save(update_fields=["checkout_attempts", "updated_at"])
    metadata: dict[str, Any] = {
        "apimon_purpose": "platform_plan",
        "organization_id": str(organization.pk),
        "plan": sub.plan.slug,
        "action": UPDATE_CARD,
    }
    session = sc.get_client().v1.checkout.sessions.create(
        {
            "mode": "setup",
            "customer": sub.customer_id,
            "currency": sub.plan.currency,
            "allowed_payment_method_types": ["card"],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "setup_intent_data": {"metadata": metadata},
            "custom_text": {"submit": {"message": checkout_message(sub, sub.plan)}},
        },
        sc.request_options(
            idempotency_key=sc.idempotency_key(
                "platformsub", sub.pk, "checkout", sub.checkout_attempts
            )
        ),
    )
    PlatformSubscription.objects.filter(pk=sub.pk).update(
        checkout_session_id=session.id
    )
    return session.url
