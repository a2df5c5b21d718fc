"""Pushing a local invoice to Stripe, exactly once, and paying it.

The protocol (docs/billing.md), every call through `apimon.stripe_client`:

1. **Create the draft** on the organization's connected account (platform invoices:
   on the platform's own account): the customer, the currency,
   `collection_method=charge_automatically`, `auto_advance=false` (so Stripe never
   finalizes a half-built draft on its own), `pending_invoice_items_behavior=exclude`,
   the platform's `application_fee_amount`, `metadata.apimon_invoice_id` and
   apimon's own invoice `number` (Stripe's page and PDF show it). Idempotency key
   `invoice:<pk>:create`. Its id is saved at once.
2. **Add the items**, one per local line, with `invoice=<id>`, the line's amount
   (translated by `pricing.stripe_money.to_stripe_amount`) and `metadata.apimon_line_id`.
   Key `invoice:<pk>:line:<line pk>`.
3. **Finalize** with `auto_advance=true` (Stripe then collects automatically and
   retries failed payments on its schedule). Key `invoice:<pk>:finalize`.
4. **Pay** now with the customer's default payment method. Key
   `invoice:<pk>:pay:<n>`, n counting apimon's own attempts (saved before the call),
   so a card update gets a new attempt while a retried job repeats the same one.

Crash safety: every request is derived from the local row alone (amounts, customer
and account are copied onto the invoice when it is written), so a retry sends the
same request with the same key and Stripe answers with the first result instead of
doing it twice. Idempotency keys expire after 24 hours; so a retry of an invoice that
has been tried before first looks for what an earlier attempt may have made: the
invoice by its `apimon_invoice_id` metadata among the customer's invoices, the items
by `apimon_line_id` among the invoice's lines. Hence a crash after Stripe created the
invoice but before apimon saved its id reuses that invoice: no second invoice, no
second charge. A paid invoice is never paid again (its Stripe status is read first).

Errors: network errors, Stripe 5xx and rate limits propagate (the Celery task retries
them with backoff); a card decline is a payment failure (dunning); anything else
Stripe refuses marks the invoice PUSH_FAILED with the message, for the admin. An
invoice in a currency Stripe cannot charge (`pricing.stripe_money.stripe_can_charge`)
is marked PUSH_FAILED before any call to Stripe.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import F

from apimon import clock
from apimon import stripe_client as sc
from apimon.payment_errors import (
    PaymentProviderError,
    StripeCardDeclined,
    StripeInvalidRequest,
    StripeUnavailable,
)
from billing.models import (
    STATUS_RANK,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    StripeConnection,
)
from pricing.dates import strftime
from pricing.stripe_money import (
    NotChargeableOnStripe,
    require_stripe_currency,
    to_stripe_amount,
)

log = logging.getLogger(__name__)

# Hook points of invoice_push, in order; a test passes `hook` and raises in it to
# crash the push at that point.
PUSH_STEPS = ("created", "recorded", "items", "finalized", "paying", "paid")
RETRYABLE = (StripeUnavailable,)

STRIPE_STATUS = {
    "draft": InvoiceStatus.DRAFT,
    "open": InvoiceStatus.OPEN,
    "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID,
    "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}


class PushBlocked(Exception):
    """The invoice cannot go to Stripe now (no connection, paused billing)."""


def _now() -> datetime:
    return clock.now()


def key(invoice: Invoice, *action: object) -> str:
    """The idempotency key of an action on an invoice: derived from the row (its id,
    and its creation time so that a database reset never replays another
    installation's answers), e.g. `invoice:42:1795000000123456:finalize`."""
    created = int(invoice.created_at.timestamp() * 1_000_000)
    return sc.idempotency_key("invoice", invoice.pk, created, *action)


def invoice_push(
    *, invoice_id: int, hook: Callable[[str], None] | None = None
) -> Invoice:
    """Push one invoice to Stripe and pay it; safe to call again at any point."""
    step = hook or (lambda name: None)
    invoice = Invoice.objects.select_related(
        "subscription__customer", "platform_subscription"
    ).get(pk=invoice_id)
    if invoice.status in (
        InvoiceStatus.PAID,
        InvoiceStatus.VOID,
        InvoiceStatus.UNCOLLECTIBLE,
    ):
        return invoice
    try:
        # Before any call: Stripe would refuse the draft (IQD, LYD).
        require_stripe_currency(invoice.currency)
        account = _account_for(invoice)
        _check_customer(invoice)
    except PushBlocked as blocked:
        _set_fields(invoice, status=InvoiceStatus.WAITING, last_push_error=str(blocked))
        return invoice
    except (NotChargeableOnStripe, ValueError) as error:
        _set_fields(
            invoice, status=InvoiceStatus.PUSH_FAILED, last_push_error=str(error)
        )
        return invoice
    Invoice.objects.filter(pk=invoice.pk).update(push_attempts=F("push_attempts") + 1)
    invoice.push_attempts += 1
    options = sc.request_options  # shorthand
    client = sc.get_client()
    try:
        stripe_invoice = _ensure_invoice(client, invoice, account, step)
        if stripe_invoice["status"] == "draft":
            _ensure_items(client, invoice, account, stripe_invoice)
            step("items")
            stripe_invoice = client.v1.invoices.finalize_invoice(
                invoice.stripe_invoice_id,
                {"auto_advance": True},
                options(
                    account=account,
                    idempotency_key=key(invoice, "finalize"),
                ),
            ).to_dict()
            step("finalized")
        apply_stripe_invoice(invoice, stripe_invoice)
        # Pay now unless a payment was already attempted (by apimon or by Stripe's
        # automatic collection): then dunning and Stripe's retries take over.
        if (
            stripe_invoice["status"] == "open"
            and stripe_invoice["amount_due"] > 0
            and not stripe_invoice.get("attempt_count")
        ):
            pay(invoice, hook=step)
    except RETRYABLE as error:
        # Shown in the admin while the task retries with backoff; cleared when
        # Stripe's answer moves the invoice on.
        _set_fields(
            invoice,
            last_push_error=f"Stripe unavailable, retrying: {_message(error)}"[:2000],
        )
        raise
    except PaymentProviderError as error:
        log.warning("push of invoice %s failed: %s", invoice.pk, error)
        _set_fields(
            invoice,
            status=InvoiceStatus.PUSH_FAILED,
            last_push_error=_message(error),
        )
    except NotChargeableOnStripe as error:
        _set_fields(
            invoice, status=InvoiceStatus.PUSH_FAILED, last_push_error=str(error)
        )
    invoice.refresh_from_db()
    return invoice


def _account_for(invoice: Invoice) -> str | None:
    """The account to act on: the organization's connected account, or None (the
    platform itself) for platform invoices."""
    if invoice.kind == InvoiceKind.PLATFORM:
        return None
    connection = StripeConnection.objects.filter(
        organization_id=invoice.organization_id
    ).first()
    if connection is None or not connection.is_connected:
        raise PushBlocked("The organization's Stripe account is not connected.")
    if connection.billing_paused:
        raise PushBlocked("Billing is paused on the organization's Stripe account.")
    account = invoice.stripe_account_id or connection.account_id
    if account != connection.account_id:
        # Its customer lives on an account that is no longer connected.
        raise PushBlocked(
            f"The invoice belongs to Stripe account {account}, which is no longer "
            "connected."
        )
    if not invoice.stripe_account_id:
        _set_fields(invoice, stripe_account_id=account)
    return account


def _check_customer(invoice: Invoice) -> None:
    if invoice.stripe_customer_id:
        return
    if invoice.kind == InvoiceKind.PLATFORM:
        customer_id = invoice.platform_subscription.customer_id
        if not customer_id:
            raise ValueError("The organization has no card for its platform plan.")
        _set_fields(invoice, stripe_customer_id=customer_id)
        return
    customer = invoice.subscription.customer if invoice.subscription else None
    if customer is None:
        raise ValueError("The subscriber has no Stripe customer (no card on file).")
    _set_fields(invoice, stripe_customer_id=customer.stripe_customer_id)


def _payment_method(invoice: Invoice) -> str:
    """The card a subscriber's invoice charges: its subscription's; empty for a
    platform plan's invoice (the organization's customer default)."""
    if invoice.kind == InvoiceKind.PLATFORM or invoice.subscription is None:
        return ""
    return invoice.subscription.card[0]


def _ensure_invoice(client, invoice: Invoice, account, step) -> dict[str, Any]:
    options = sc.request_options
    if invoice.stripe_invoice_id:
        return client.v1.invoices.retrieve(
            invoice.stripe_invoice_id, options=options(account=account)
        ).to_dict()
    found = None
    if invoice.push_attempts > 1:
        found = _find_invoice(client, invoice, account)
    if found is None:
        params: dict[str, Any] = {
            "customer": invoice.stripe_customer_id,
            "currency": invoice.currency,
            "collection_method": "charge_automatically",
            "auto_advance": False,
            "pending_invoice_items_behavior": "exclude",
            "description": _description(invoice),
            "metadata": {
                "apimon_invoice_id": str(invoice.pk),
                "apimon_invoice_number": invoice.number,
            },
        }
        method = _payment_method(invoice)
        if method:
            # The subscription's own card: a card saved for another subscription
            # of the same customer never pays this one (docs/decisions.md).
            params["default_payment_method"] = method
        if account is not None and invoice.application_fee_minor:
            params["application_fee_amount"] = to_stripe_amount(
                invoice.application_fee_minor, invoice.currency
            )
        found = _create_numbered(client, invoice, account, params)
    step("created")
    # Only the first writer records it; a concurrent push made the same request.
    Invoice.objects.filter(pk=invoice.pk, stripe_invoice_id__isnull=True).update(
        stripe_invoice_id=found["id"]
    )
    invoice.stripe_invoice_id = found["id"]
    step("recorded")
    return found


def _create_numbered(client, invoice: Invoice, account, params) -> dict[str, Any]:
    """Create the draft with apimon's number, so Stripe's page and PDF show the
    number apimon shows. Numbers are unique per account by construction (the
    organization's slug, then its own sequence: docs/billing.md); if Stripe still
    refuses it (an invoice made outside apimon, or a database reset against the same
    account), the invoice is created with Stripe's own number rather than not at all."""
    options = sc.request_options
    try:
        return client.v1.invoices.create(
            {**params, "number": invoice.number},
            options(account=account, idempotency_key=key(invoice, "create")),
        ).to_dict()
    except StripeInvalidRequest as error:
        if error.param != "number":
            raise
        log.warning(
            "invoice %s: Stripe refused the number %s (%s); Stripe numbers it",
            invoice.pk,
            invoice.number,
            _message(error),
        )
    return client.v1.invoices.create(
        params,
        options(account=account, idempotency_key=key(invoice, "create", "unnumbered")),
    ).to_dict()


def _find_invoice(client, invoice: Invoice, account) -> dict[str, Any] | None:
    """An invoice an earlier attempt created (its idempotency key may have
    expired): the customer's invoice with this row's apimon_invoice_id."""
    page = client.v1.invoices.list(
        {"customer": invoice.stripe_customer_id, "limit": 100},
        sc.request_options(account=account),
    )
    for candidate in sc.each(page):
        data = candidate.to_dict()
        if (data.get("metadata") or {}).get("apimon_invoice_id") == str(invoice.pk):
            return data
    return None


def _description(invoice: Invoice) -> str:
    start, end = invoice.period_start, invoice.period_end
    period = f"{strftime(start, '%d %b %Y')} – {strftime(end, '%d %b %Y')}"
    if invoice.subscription_id and invoice.api_id:
        return f"{invoice.api} · {invoice.get_kind_display()} · {period} (apimon {invoice.number})"
    return f"{invoice.get_kind_display()} · {period} (apimon {invoice.number})"


def _ensure_items(client, invoice: Invoice, account, stripe_invoice) -> None:
    lines = list(invoice.lines.all())
    existing: dict[str, str] = {}
    if invoice.push_attempts > 1 or any(x.stripe_invoice_item_id for x in lines):
        for item in sc.each(
            client.v1.invoice_items.list(
                {"invoice": invoice.stripe_invoice_id, "limit": 100},
                sc.request_options(account=account),
            )
        ):
            data = item.to_dict()
            line_id = (data.get("metadata") or {}).get("apimon_line_id")
            if line_id:
                existing[line_id] = data["id"]
    for line in lines:
        item_id = existing.get(str(line.pk))
        if item_id is None:
            params: dict[str, Any] = {
                "customer": invoice.stripe_customer_id,
                "invoice": invoice.stripe_invoice_id,
                "currency": invoice.currency,
                "amount": to_stripe_amount(line.amount_minor, invoice.currency),
                "description": line.description,
                "metadata": {"apimon_line_id": str(line.pk)},
            }
            if line.period_start and line.period_end:
                params["period"] = {
                    "start": int(line.period_start.timestamp()),
                    "end": int(line.period_end.timestamp()),
                }
            item_id = client.v1.invoice_items.create(
                params,
                sc.request_options(
                    account=account,
                    idempotency_key=key(invoice, "line", line.pk),
                ),
            ).id
        if line.stripe_invoice_item_id != item_id:
            InvoiceLine.objects.filter(pk=line.pk).update(
                stripe_invoice_item_id=item_id
            )


def pay(
    invoice: Invoice,
    *,
    payment_method: str | None = None,
    hook: Callable[[str], None] | None = None,
) -> bool:
    """One payment attempt of an open invoice; True if it is paid. A decline is
    recorded as a payment failure (and starts dunning); network errors propagate."""
    step = hook or (lambda name: None)
    account = (
        None if invoice.kind == InvoiceKind.PLATFORM else invoice.stripe_account_id
    )
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        locked.pay_attempts += 1
        locked.save(update_fields=["pay_attempts"])
    attempt = locked.pay_attempts
    invoice.pay_attempts = attempt
    params: dict[str, Any] = {"off_session": True}
    if payment_method:
        params["payment_method"] = payment_method
    client = sc.get_client()
    step("paying")
    try:
        paid = client.v1.invoices.pay(
            invoice.stripe_invoice_id,
            params,
            sc.request_options(
                account=account,
                idempotency_key=key(invoice, "pay", attempt),
            ),
        ).to_dict()
    except StripeCardDeclined as error:
        current = client.v1.invoices.retrieve(
            invoice.stripe_invoice_id, options=sc.request_options(account=account)
        ).to_dict()
        from billing.services import invoice_payment_failed_apply

        invoice_payment_failed_apply(
            invoice=invoice,
            stripe_invoice=current,
            message=_message(error),
            at=_now(),
        )
        return False
    except StripeInvalidRequest:
        # Already paid (Stripe collected it automatically meanwhile), or voided.
        current = client.v1.invoices.retrieve(
            invoice.stripe_invoice_id, options=sc.request_options(account=account)
        ).to_dict()
        if current["status"] not in ("paid", "void"):
            raise
        paid = current
    step("paid")
    apply_stripe_invoice(invoice, paid)
    return paid["status"] == "paid"


def open_invoices_use_card(*, subscription_id: int, payment_method: str) -> None:
    """A subscription's card changed: its open invoices on Stripe name the new card
    as their default, so Stripe's own retries charge it (not the old one)."""
    client = sc.get_client()
    invoices = Invoice.objects.filter(
        subscription_id=subscription_id,
        status=InvoiceStatus.OPEN,
        stripe_invoice_id__isnull=False,
    )
    for invoice in invoices.order_by("pk"):
        # Paid or voided meanwhile: nothing left to charge.
        with contextlib.suppress(StripeInvalidRequest):
            client.v1.invoices.update(
                invoice.stripe_invoice_id,
                {"default_payment_method": payment_method},
                sc.request_options(
                    account=invoice.stripe_account_id,
                    idempotency_key=key(invoice, "card", payment_method),
                ),
            )


def pay_each(invoices, payment_method: str | None) -> int:
    """Pay each of `invoices` (oldest first) with `payment_method` (None: the
    invoice's default); returns how many are paid now."""
    return sum(
        1
        for invoice in invoices.order_by("pk")
        if pay(invoice, payment_method=payment_method or None)
    )


def apply_stripe_invoice(
    invoice: Invoice, data: dict[str, Any], *, event_created: int | None = None
) -> bool:
    """Mirror a Stripe invoice object onto the local row. Its status only moves
    forward (STATUS_RANK); an older event never undoes a newer one. Returns True if
    the status changed. A paid invoice then lets its subscription recover."""
    new_status = STRIPE_STATUS.get(data.get("status") or "")
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if (
            event_created is not None
            and locked.last_event_created is not None
            and event_created < locked.last_event_created
            and new_status is not None
            and STATUS_RANK[new_status] <= STATUS_RANK[locked.status]
        ):
            return False
        changed = False
        fields: dict[str, Any] = {}
        if (
            new_status is not None
            and STATUS_RANK[new_status] > STATUS_RANK[locked.status]
        ):
            fields["status"] = new_status
            changed = True
        if not locked.stripe_invoice_id and data.get("id"):
            fields["stripe_invoice_id"] = data["id"]
        for name, key in (
            ("hosted_invoice_url", "hosted_invoice_url"),
            ("invoice_pdf", "invoice_pdf"),
            ("stripe_number", "number"),
        ):
            if data.get(key) and getattr(locked, name) != data[key]:
                fields[name] = data[key]
        if data.get("status") != "draft" and locked.pushed_at is None:
            finalized = (data.get("status_transitions") or {}).get("finalized_at")
            fields["pushed_at"] = (
                datetime.fromtimestamp(finalized, UTC) if finalized else _now()
            )
        attempts = data.get("attempt_count")
        if (
            attempts
            and attempts > locked.payment_failures
            and data.get("status") == "open"
        ):
            fields["payment_failures"] = attempts
        if fields.get("status") == InvoiceStatus.PAID:
            paid_at = (data.get("status_transitions") or {}).get("paid_at")
            fields["paid_at"] = (
                datetime.fromtimestamp(paid_at, UTC) if paid_at else _now()
            )
            fields["amount_paid_minor"] = data.get("amount_paid") or 0
        if fields.get("status") == InvoiceStatus.VOID:
            voided = (data.get("status_transitions") or {}).get("voided_at")
            fields["voided_at"] = (
                datetime.fromtimestamp(voided, UTC) if voided else _now()
            )
        if event_created is not None:
            fields["last_event_created"] = max(
                event_created, locked.last_event_created or 0
            )
        if fields.get("status") or "stripe_invoice_id" in fields:
            fields["stripe_data"] = data
            fields["last_push_error"] = ""
        for name, value in fields.items():
            setattr(locked, name, value)
            setattr(invoice, name, value)
        if fields:
            locked.save(update_fields=list(fields))
    if changed and invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
        from billing.services import invoice_settled

        invoice_settled(invoice=invoice, at=invoice.paid_at or _now())
    return changed


def _set_fields(invoice: Invoice, **fields: Any) -> None:
    Invoice.objects.filter(pk=invoice.pk).update(**fields)
    for name, value in fields.items():
        setattr(invoice, name, value)


def _message(error: PaymentProviderError) -> str:
    return getattr(error, "user_message", None) or str(error) or type(error).__name__
