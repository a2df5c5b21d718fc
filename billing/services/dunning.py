"""Dunning: what a failed payment does to a subscriber's subscription.

Subscription state only moves forward here (docs/billing.md, "Dunning"):
ACTIVE → ON_HOLD on a failed payment (served for the organization's grace period),
ON_HOLD → BLOCKED when the grace period is over (the dunning job), and ON_HOLD or a
dunning BLOCKED → ACTIVE once no failed invoice of the subscription is left unpaid.
A publisher's block is never lifted by a payment; cancelled subscriptions stay
cancelled. The moves themselves are `store.lifecycle`'s (the table of moves, the
history, the announcement to the gateway); billing decides when they happen."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from apimon import clock
from billing import emails, engine
from billing.models import InvoiceKind, failed_unpaid_invoices
from billing.push import open_invoices_use_card, pay_each
from pricing.rating import LineKind, Pricing, PricingModel, proration_lines
from pricing.stripe_money import chargeable_lines
from store import lifecycle
from store.models import Subscription, SubscriptionEvent, SubscriptionState
from store.models import SubscriptionEventKind as Kind

DUNNING_NOTE = "Payment failed and the grace period ended."


def subscription_payment_failed(*, subscription_id: int, at: datetime) -> bool:
    """ACTIVE → ON_HOLD with a grace period (the organization's setting)."""
    with transaction.atomic():
        sub = lifecycle.lock(subscription_id, "organization")
        if not lifecycle.can(sub, Kind.PAYMENT_FAILED):
            return False  # not ACTIVE: on hold already, blocked, or ended
        grace = timedelta(days=sub.organization.dunning_grace_days)
        lifecycle.put_on_hold(sub, at=at, grace_until=at + grace)
    _notify(sub, "payment_failed")
    return True


def subscription_payment_recovered(*, subscription_id: int, at: datetime) -> bool:
    """ON_HOLD, or BLOCKED by dunning, → ACTIVE once no failed invoice is unpaid.
    A subscription blocked while it was not charged a period's fee is charged the
    rest of that period now (pro rata)."""
    with transaction.atomic():
        sub = lifecycle.lock(
            subscription_id, "tier_version", "organization__plan", "customer"
        )
        was_blocked = lifecycle.is_blocked_for_nonpayment(sub)
        if sub.state != SubscriptionState.ON_HOLD and not was_blocked:
            return False
        if failed_unpaid_invoices(subscription_id=sub.pk).exists():
            return False
        event = lifecycle.recover(sub, at=at)
        if was_blocked:
            _charge_rest_of_period(sub, event)
    return True


def _charge_rest_of_period(sub: Subscription, event: SubscriptionEvent) -> None:
    """A dunning-blocked subscription is charged no new fee at a boundary; back to
    ACTIVE mid-period, it pays the rest of that period's fee."""
    start, end = sub.current_period_start, sub.current_period_end
    if not (start and end and start <= event.at < end):
        return
    has_fee = sub.invoices.filter(
        lines__kind=LineKind.FIXED, lines__period_start=start
    ).exists()
    if has_fee:
        return
    new = sub.tier_version.pricing()
    nothing = Pricing(model=PricingModel.FREE, currency=new.currency)
    lines = proration_lines(
        old=nothing,
        new=new,
        period_start=start,
        period_end=end,
        changed_at=event.at,
        new_name=sub.tier.name,
    )
    if lines:
        draft = engine.Draft(
            kind=InvoiceKind.PRORATION,
            period_start=event.at,
            period_end=end,
            lines=[
                engine.DraftLine(x, sub.tier_version_id)
                for x in chargeable_lines(lines)
            ],
            tier_version_id=sub.tier_version_id,
            source_event_id=event.pk,
        )
        engine.write_single(sub, [draft], now=event.at)


def dunning_run(*, now: datetime | None = None) -> int:
    """BLOCK every ON_HOLD subscription whose grace period is over; returns how
    many. Claims rows with skip_locked, so two runs never block one twice."""
    now = now or clock.now()
    with transaction.atomic():
        blocked = list(
            Subscription.objects.select_for_update(skip_locked=True)
            .filter(state=SubscriptionState.ON_HOLD, grace_until__lte=now)
            .order_by("pk")
        )
        lifecycle.block_for_nonpayment(blocked, at=now, reason=DUNNING_NOTE)
    for sub in blocked:
        _notify(sub, "blocked")
    return len(blocked)


def subscription_retry_payment(
    *, subscription: Subscription, payment_method: str | None = None
) -> int:
    """The store's "update card": pay the subscription's open, failed invoices with
    the new default payment method; returns how many are paid now. On success the
    subscription recovers (ON_HOLD or dunning BLOCKED → ACTIVE)."""
    method = payment_method or subscription.card[0] or None
    if method:
        open_invoices_use_card(subscription_id=subscription.pk, payment_method=method)
    paid = pay_each(failed_unpaid_invoices(subscription_id=subscription.pk), method)
    subscription_payment_recovered(subscription_id=subscription.pk, at=clock.now())
    return paid


def _notify(sub: Subscription, kind: str) -> None:
    transaction.on_commit(lambda: emails.send_dunning_email(sub.pk, kind))
