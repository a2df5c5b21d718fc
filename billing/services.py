"""Writes of the billing engine beyond the period job (billing.engine): payments and
dunning, Stripe webhooks, tier-change prorations, corrections, voids, and the hooks
the store and the publisher call.

Subscription state only moves forward here (docs/billing.md, "Dunning"):
ACTIVE → ON_HOLD on a failed payment (served for the organization's grace period),
ON_HOLD → BLOCKED when the grace period is over (the dunning job), and ON_HOLD or a
dunning BLOCKED → ACTIVE once no failed invoice of the subscription is left unpaid.
A publisher's block is never lifted by a payment; cancelled subscriptions stay
cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apimon import stripe_client as sc
from billing import engine
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    StripeConnection,
)
from billing.rating import Line, Pricing, PricingModel, proration_lines, usage_lines
from billing.stripe_money import chargeable_lines
from store.models import Subscription, SubscriptionEvent, SubscriptionState

log = logging.getLogger(__name__)

DUNNING_NOTE = "Payment failed and the grace period ended."


def _invalidate(subscription_ids: list[int]) -> None:
    from publisher.services import invalidate_gateway_on_commit

    invalidate_gateway_on_commit(subscription_ids=subscription_ids)


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


# --- Payments and dunning ---------------------------------------------------------


def invoice_payment_failed_apply(
    *,
    invoice: Invoice,
    stripe_invoice: dict[str, Any],
    message: str,
    at: datetime,
    event_created: int | None = None,
) -> bool:
    """A payment attempt of `invoice` failed: record it and put the subscription on
    hold. Ignored when the invoice is already paid or void (an old event)."""
    from billing.push import apply_stripe_invoice

    apply_stripe_invoice(invoice, stripe_invoice, event_created=event_created)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
            return False
        if locked.payment_failed_at is None or locked.payment_failed_at < at:
            locked.payment_failed_at = at
            locked.last_payment_error = message
            locked.payment_failures = max(
                locked.payment_failures, stripe_invoice.get("attempt_count") or 1
            )
            locked.save(
                update_fields=[
                    "payment_failed_at",
                    "last_payment_error",
                    "payment_failures",
                ]
            )
        invoice.payment_failed_at = locked.payment_failed_at
    if invoice.subscription_id:
        subscription_payment_failed(subscription_id=invoice.subscription_id, at=at)
    return True


def subscription_payment_failed(*, subscription_id: int, at: datetime) -> bool:
    """ACTIVE → ON_HOLD with a grace period (the organization's setting)."""
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("organization")
            .get(pk=subscription_id)
        )
        if sub.state != SubscriptionState.ACTIVE:
            return False
        grace = timedelta(days=sub.organization.dunning_grace_days)
        sub.state = SubscriptionState.ON_HOLD
        sub.on_hold_since = at
        sub.grace_until = at + grace
        sub.save(update_fields=["state", "on_hold_since", "grace_until", "updated_at"])
        SubscriptionEvent.objects.create(
            subscription=sub,
            kind="payment_failed",
            at=at,
            from_state=SubscriptionState.ACTIVE,
            to_state=SubscriptionState.ON_HOLD,
            note=f"A payment failed; served until {sub.grace_until:%Y-%m-%d %H:%M} UTC.",
        )
        _invalidate([sub.pk])
    _notify(sub, "payment_failed")
    return True


def _unpaid_failures(subscription_id: int):
    return Invoice.objects.filter(
        subscription_id=subscription_id,
        status__in=[InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE],
        payment_failed_at__isnull=False,
    )


def subscription_payment_recovered(*, subscription_id: int, at: datetime) -> bool:
    """ON_HOLD, or BLOCKED by dunning, → ACTIVE once no failed invoice is unpaid.
    A subscription blocked while it was not charged a period's fee is charged the
    rest of that period now (pro rata)."""
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("tier_version", "organization__plan", "customer")
            .get(pk=subscription_id)
        )
        dunning_block = (
            sub.state == SubscriptionState.BLOCKED
            and not sub.blocked_by_publisher
            and sub.on_hold_since is not None
        )
        if sub.state != SubscriptionState.ON_HOLD and not dunning_block:
            return False
        if _unpaid_failures(sub.pk).exists():
            return False
        from_state = sub.state
        sub.state = SubscriptionState.ACTIVE
        sub.on_hold_since = None
        sub.grace_until = None
        sub.blocked_reason = ""
        sub.save(
            update_fields=[
                "state",
                "on_hold_since",
                "grace_until",
                "blocked_reason",
                "updated_at",
            ]
        )
        event = SubscriptionEvent.objects.create(
            subscription=sub,
            kind="payment_recovered",
            at=at,
            from_state=from_state,
            to_state=SubscriptionState.ACTIVE,
            note="Every failed invoice is paid.",
        )
        if from_state == SubscriptionState.BLOCKED:
            _charge_rest_of_period(sub, event)
        _invalidate([sub.pk])
    return True


def _charge_rest_of_period(sub: Subscription, event: SubscriptionEvent) -> None:
    """A dunning-blocked subscription is charged no new fee at a boundary; back to
    ACTIVE mid-period, it pays the rest of that period's fee."""
    start, end = sub.current_period_start, sub.current_period_end
    if not (start and end and start <= event.at < end):
        return
    has_fee = sub.invoices.filter(
        lines__kind="FIXED", lines__period_start=start
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
    now = now or timezone.now()
    blocked = []
    with transaction.atomic():
        subs = list(
            Subscription.objects.select_for_update(skip_locked=True)
            .filter(state=SubscriptionState.ON_HOLD, grace_until__lte=now)
            .order_by("pk")
        )
        for sub in subs:
            sub.state = SubscriptionState.BLOCKED
            sub.blocked_reason = DUNNING_NOTE
            sub.updated_at = now
            blocked.append(sub)
        Subscription.objects.bulk_update(
            blocked, ["state", "blocked_reason", "updated_at"]
        )
        SubscriptionEvent.objects.bulk_create(
            SubscriptionEvent(
                subscription=sub,
                kind="blocked_for_nonpayment",
                at=now,
                from_state=SubscriptionState.ON_HOLD,
                to_state=SubscriptionState.BLOCKED,
                note=DUNNING_NOTE,
            )
            for sub in blocked
        )
        if blocked:
            _invalidate([s.pk for s in blocked])
    for sub in blocked:
        _notify(sub, "blocked")
    return len(blocked)


def subscription_retry_payment(
    *, subscription: Subscription, payment_method: str | None = None
) -> int:
    """The store's "update card": pay the subscription's open, failed invoices with
    the new default payment method; returns how many are paid now. On success the
    subscription recovers (ON_HOLD or dunning BLOCKED → ACTIVE)."""
    from billing.push import pay

    customer = subscription.customer
    method = payment_method or (
        customer.default_payment_method_id if customer else None
    )
    paid = 0
    for invoice in _unpaid_failures(subscription.pk).order_by("pk"):
        if pay(invoice, payment_method=method or None):
            paid += 1
    subscription_payment_recovered(subscription_id=subscription.pk, at=timezone.now())
    return paid


def _notify(sub: Subscription, kind: str) -> None:
    from billing import emails

    transaction.on_commit(lambda: emails.send_dunning_email(sub.pk, kind))


# --- Webhooks -----------------------------------------------------------------------
# Handlers take the whole verified event (dict): `account` says which connected
# account it happened on (absent for the platform's own invoices), `created` orders
# it, `data.object` is the invoice as Stripe showed it then.


def _invoice_for_event(event: dict[str, Any]) -> Invoice | None:
    obj = event["data"]["object"]
    account = event.get("account") or ""
    invoice = Invoice.objects.filter(stripe_invoice_id=obj["id"]).first()
    if invoice is None:
        # A push that crashed before saving the id: the metadata names the row.
        local_id = (obj.get("metadata") or {}).get("apimon_invoice_id")
        if local_id and str(local_id).isdigit():
            invoice = Invoice.objects.filter(
                pk=int(local_id), stripe_invoice_id__isnull=True
            ).first()
    if invoice is None:
        return None
    expected = "" if invoice.kind == InvoiceKind.PLATFORM else invoice.stripe_account_id
    if account != expected:
        log.warning(
            "event %s for invoice %s came from account %r, not %r",
            event.get("id"),
            invoice.pk,
            account,
            expected,
        )
        return None
    return invoice


def invoice_paid(event: dict[str, Any]) -> bool:
    """`invoice.paid`: the invoice is PAID; its subscription may recover."""
    from billing.push import apply_stripe_invoice

    invoice = _invoice_for_event(event)
    if invoice is None:
        return False
    return apply_stripe_invoice(
        invoice, event["data"]["object"], event_created=event["created"]
    )


def invoice_finalized(event: dict[str, Any]) -> bool:
    """`invoice.finalized`: number, hosted page and PDF."""
    from billing.push import apply_stripe_invoice

    invoice = _invoice_for_event(event)
    if invoice is None:
        return False
    return apply_stripe_invoice(
        invoice, event["data"]["object"], event_created=event["created"]
    )


invoice_voided = invoice_finalized
invoice_marked_uncollectible = invoice_finalized


def invoice_payment_failed(event: dict[str, Any]) -> bool:
    """`invoice.payment_failed`: record the failure; the subscription goes ON_HOLD
    (unless the invoice is paid by now: then this is an old event, ignored)."""
    invoice = _invoice_for_event(event)
    if invoice is None:
        return False
    obj = event["data"]["object"]
    error = (obj.get("last_finalization_error") or {}).get("message") or (
        "The payment was declined."
    )
    return invoice_payment_failed_apply(
        invoice=invoice,
        stripe_invoice=obj,
        message=error,
        at=_ts(event["created"]) or timezone.now(),
        event_created=event["created"],
    )


WEBHOOK_HANDLERS = {
    "invoice.paid": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    "invoice.finalized": invoice_finalized,
    "invoice.voided": invoice_voided,
    "invoice.marked_uncollectible": invoice_marked_uncollectible,
}


# --- Hooks of other parts ----------------------------------------------------------


def issue_final_invoices_for_retired_api(
    *, api_id: int, subscription_ids: list[int]
) -> int:
    """The API was retired: its subscriptions are CANCELLED (with `cancelled_at`);
    make them due now, so the billing job writes their final invoices (usage to
    date). Free ones have nothing to invoice."""
    return (
        Subscription.objects.filter(
            pk__in=subscription_ids,
            api_id=api_id,
            state=SubscriptionState.CANCELLED,
            cancelled_at__isnull=False,
            tier_version__pricing_model__in=[
                m for m in PricingModel if m != PricingModel.FREE
            ],
        )
        .filter(
            Q(next_invoice_at__isnull=True) | Q(next_invoice_at__gt=F("cancelled_at"))
        )
        .update(next_invoice_at=F("cancelled_at"))
    )


# --- Admin actions --------------------------------------------------------------------


def invoice_repush(*, invoice: Invoice) -> Invoice:
    """Push again (after a failure, or to refresh it from Stripe)."""
    from billing.push import invoice_push

    if invoice.status == InvoiceStatus.PUSH_FAILED:
        Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.DRAFT)
    return invoice_push(invoice_id=invoice.pk)


class CannotVoid(Exception):
    pass


def invoice_void(*, invoice: Invoice) -> Invoice:
    """Void an invoice locally and on Stripe. A paid invoice cannot be voided (it
    would need a refund). Voiding a failed invoice may let its subscription recover."""
    from billing.push import apply_stripe_invoice, key

    if invoice.status == InvoiceStatus.PAID:
        raise CannotVoid(f"{invoice} is paid: refund it in Stripe instead.")
    if invoice.status == InvoiceStatus.VOID:
        return invoice
    client = sc.get_client()
    account = (
        None if invoice.kind == InvoiceKind.PLATFORM else invoice.stripe_account_id
    )
    if invoice.stripe_invoice_id:
        current = client.v1.invoices.retrieve(
            invoice.stripe_invoice_id, options=sc.request_options(account=account)
        ).to_dict()
        if current["status"] == "draft":
            client.v1.invoices.delete(
                invoice.stripe_invoice_id, options=sc.request_options(account=account)
            )
        elif current["status"] in ("open", "uncollectible"):
            current = client.v1.invoices.void_invoice(
                invoice.stripe_invoice_id,
                options=sc.request_options(
                    account=account,
                    idempotency_key=key(invoice, "void"),
                ),
            ).to_dict()
            apply_stripe_invoice(invoice, current)
        elif current["status"] == "paid":
            apply_stripe_invoice(invoice, current)
            raise CannotVoid(f"{invoice} is paid on Stripe: refund it there instead.")
    now = timezone.now()
    Invoice.objects.filter(pk=invoice.pk).exclude(status=InvoiceStatus.PAID).update(
        status=InvoiceStatus.VOID, voided_at=now
    )
    invoice.refresh_from_db()
    if invoice.subscription_id:
        subscription_payment_recovered(subscription_id=invoice.subscription_id, at=now)
    return invoice


@dataclass(frozen=True)
class Rerate:
    invoice: Invoice | None
    message: str


def subscription_rerate(
    *, subscription: Subscription, now: datetime | None = None
) -> Rerate:
    """Rate the subscription's last closed period again from today's usage rows and,
    if the amount differs from what was billed, write a CORRECTION invoice: a
    reversal of the usage billed for that period and the usage rated now. The
    invoices already written are never edited."""
    now = now or timezone.now()
    latest = (
        Invoice.objects.filter(
            subscription=subscription,
            kind__in=[InvoiceKind.RENEWAL, InvoiceKind.FINAL, InvoiceKind.CORRECTION],
            superseded_by__isnull=True,
        )
        .exclude(status=InvoiceStatus.VOID)
        .exclude(rating={})
        .order_by("-period_start", "-pk")
        .first()
    )
    if latest is None:
        return Rerate(None, "No closed period to re-rate.")
    segments = latest.rating.get("segments") or []
    if not segments:
        return Rerate(None, "That invoice billed no usage.")
    period_start, period_end = latest.period_start, latest.period_end
    billed = sum(
        line.amount_minor
        for invoice in subscription.invoices.exclude(status=InvoiceStatus.VOID)
        for line in invoice.lines.all()
        if line.kind in engine.USAGE_KINDS
        and line.period_start is not None
        and period_start <= line.period_start < period_end
    )
    # Today's usage, split as before (same segments and versions).
    ranges = [
        (
            subscription.pk,
            datetime.fromisoformat(s["start"]),
            datetime.fromisoformat(s["end"]),
        )
        for s in segments
    ]
    from publisher.models import TierVersion

    versions = {
        v.pk: v
        for v in TierVersion.objects.filter(
            pk__in={s["tier_version"] for s in segments}
        ).prefetch_related("bands")
    }
    whole = (subscription.pk, ranges[0][1], ranges[-1][2])
    total_now = engine.usage_for_ranges([whole])[whole]
    new_lines: list[engine.DraftLine] = []
    new_segments = []
    for seg, rng in zip(segments, ranges, strict=True):
        # Before an upgrade: what was split off then (the store's snapshot); the
        # rest of the period's count goes to the last version.
        quantity = seg["quantity"]
        if seg is segments[-1]:
            quantity = max(0, total_now - sum(s["quantity"] for s in segments[:-1]))
        rated = usage_lines(
            versions[seg["tier_version"]].pricing(),
            quantity,
            period_start=rng[1],
            period_end=rng[2],
        )
        new_lines += [
            engine.DraftLine(x, seg["tier_version"]) for x in chargeable_lines(rated)
        ]
        new_segments.append({**seg, "quantity": quantity})
    new_total = sum(d.line.amount_minor for d in new_lines)
    if new_total == billed:
        return Rerate(None, f"{latest} is right: nothing to correct.")
    currency = latest.currency
    from billing.currencies import from_minor

    reversal = Line(
        kind="REVERSAL",  # type: ignore[arg-type]
        description=f"Reversal of the usage billed for this period ({latest.number})",
        quantity=1,
        unit_price=from_minor(-billed, currency),
        amount_minor=-billed,
        currency=currency,
        period_start=period_start,
        period_end=period_end,
    )
    draft = engine.Draft(
        kind=InvoiceKind.CORRECTION,
        period_start=period_start,
        period_end=period_end,
        lines=[engine.DraftLine(reversal, latest.tier_version_id), *new_lines],
        tier_version_id=latest.tier_version_id,
        rating={
            "segments": new_segments,
            "quantity": sum(s["quantity"] for s in new_segments),
        },
        supersedes_id=latest.pk,
    )
    with transaction.atomic():
        try:
            with transaction.atomic():
                ids = engine.write_single(subscription, [draft], now=now)
        except IntegrityError:
            return Rerate(None, f"{latest} was corrected meanwhile.")
    invoice = Invoice.objects.get(pk=ids[0])
    return Rerate(invoice, f"{invoice} corrects {latest}.")


# --- The minute job ---------------------------------------------------------------


@dataclass(frozen=True)
class TickResult:
    run: engine.RunResult
    pushed: int


def billing_tick(*, now: datetime | None = None) -> TickResult:
    """What beat runs every minute: close due periods and write their invoices, and
    push invoices that are waiting (lost task, reconnected account)."""
    now = now or timezone.now()
    result = engine.billing_run(now=now)
    pushed = push_sweep(now=now)
    return TickResult(run=result, pushed=pushed)


def push_sweep(*, now: datetime, stale: timedelta = timedelta(minutes=5)) -> int:
    """Enqueue the push of invoices written a while ago and still not on Stripe
    (the task was lost), and of those waiting for an account that can take payments
    again."""
    from billing import tasks

    ready_orgs = StripeConnection.objects.filter(
        disconnected_at__isnull=True, billing_paused=False
    ).values("organization_id")
    ids = list(
        Invoice.objects.filter(
            Q(status=InvoiceStatus.DRAFT, created_at__lte=now - stale)
            | Q(status=InvoiceStatus.WAITING, organization_id__in=ready_orgs)
            | Q(status=InvoiceStatus.WAITING, kind=InvoiceKind.PLATFORM)
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in ids:
        tasks.push_invoice.delay(pk)
    return len(ids)
