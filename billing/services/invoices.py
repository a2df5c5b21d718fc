"""An invoice after it is written: Stripe's invoice events (paid, finalized, voided,
payment failed), pushing again and voiding."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from apimon import clock
from apimon import stripe_client as sc
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
)
from billing.services.dunning import (
    subscription_payment_failed,
    subscription_payment_recovered,
)
from billing.services.platform_plan import (
    platform_payment_failed,
    platform_payment_recovered,
)

log = logging.getLogger(__name__)


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


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
    elif invoice.platform_subscription_id:
        platform_payment_failed(
            platform_subscription_id=invoice.platform_subscription_id, at=at
        )
    return True


def invoice_settled(*, invoice: Invoice, at: datetime) -> None:
    """`invoice` is paid or void: what it held back may recover (a subscriber's
    subscription, or an organization's past-due platform plan)."""
    if invoice.subscription_id:
        subscription_payment_recovered(subscription_id=invoice.subscription_id, at=at)
    elif invoice.platform_subscription_id:
        platform_payment_recovered(
            platform_subscription_id=invoice.platform_subscription_id, at=at
        )


def _invoice_for_event(event: dict[str, Any]) -> Invoice | None:
    obj = event["data"]["object"]
    account = event.get("account") or ""
    invoice = Invoice.objects.filter(stripe_invoice_id=obj["id"]).first()
    if invoice is None:
        # A push that crashed before saving the id: the metadata names the row.
        local_id = (obj.get("metadata") or {}).get("apimon_invoice_id")
        if local_id and str(local_id).isascii() and str(local_id).isdigit():
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


def invoice_event_apply(event: dict[str, Any]) -> bool:
    """Stripe's copy of an invoice, from one of its events, onto apimon's row:
    `invoice.paid` (PAID; its subscription may recover), `invoice.finalized`
    (number, hosted page and PDF), `invoice.voided`, `invoice.marked_uncollectible`.
    An event older than the last one applied changes nothing."""
    from billing.push import apply_stripe_invoice

    invoice = _invoice_for_event(event)
    if invoice is None:
        return False
    return apply_stripe_invoice(
        invoice, event["data"]["object"], event_created=event["created"]
    )


invoice_paid = invoice_finalized = invoice_event_apply
invoice_voided = invoice_marked_uncollectible = invoice_event_apply


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
        at=_ts(event["created"]) or clock.now(),
        event_created=event["created"],
    )


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
    now = clock.now()
    Invoice.objects.filter(pk=invoice.pk).exclude(status=InvoiceStatus.PAID).update(
        status=InvoiceStatus.VOID, voided_at=now
    )
    invoice.refresh_from_db()
    invoice_settled(invoice=invoice, at=now)
    return invoice
