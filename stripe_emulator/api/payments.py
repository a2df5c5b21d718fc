"""Charging a card for an invoice: PaymentIntent, Charge, balance transactions and the
platform's application fee — direct charges on the connected account, as Stripe does
them for Standard accounts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe.params as P

from stripe_emulator import cards, objects
from stripe_emulator.api.common import get_object, list_objects
from stripe_emulator.api.customers import card_of
from stripe_emulator.api.router import route
from stripe_emulator.emulator import Ctx
from stripe_emulator.errors import StripeError
from stripe_emulator.ids import new_id
from stripe_emulator.money import round_minor
from stripe_emulator.objects import public

# Stripe's standard US card pricing, charged to the connected account on direct charges.
STRIPE_FEE_PERCENT = Decimal("0.029")
STRIPE_FEE_FIXED = 30
AVAILABLE_AFTER = 2 * 86400


def _invoice_intent(ctx: Ctx, invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice's PaymentIntent: one per invoice, reused by every attempt."""
    if invoice.get("_payment_intent"):
        intent = ctx.store.get(invoice["_payment_intent"], account=ctx.account)
        assert intent is not None
        intent["amount"] = invoice["amount_remaining"]
        return intent
    intent = objects.payment_intent(
        id=new_id("payment_intent"),
        created=ctx.now(),
        amount=invoice["amount_remaining"],
        currency=invoice["currency"],
        customer=invoice["customer"],
        description="Payment for Invoice",
        application=ctx.application,
        application_fee_amount=invoice.get("_application_fee_amount"),
    )
    ctx.store.insert(intent, account=ctx.account)
    invoice["_payment_intent"] = intent["id"]
    payment = objects.invoice_payment(
        id=new_id("invoice_payment"),
        created=ctx.now(),
        invoice=invoice,
        intent=intent["id"],
        amount=invoice["amount_remaining"],
    )
    ctx.store.insert(payment, account=ctx.account)
    invoice["_invoice_payment"] = payment["id"]
    ctx.emit("payment_intent.created", intent)
    return intent


def charge_card(
    ctx: Ctx, invoice: dict[str, Any], pm: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], cards.Decline | None]:
    """One payment attempt. Returns (payment intent, charge, decline or None)."""
    intent = _invoice_intent(ctx, invoice)
    now = ctx.now()
    charge_id = new_id("charge")
    charge = objects.charge(
        id=charge_id,
        created=now,
        intent=intent,
        pm=pm,
        receipt_url=ctx.url(f"/receipts/payment/{ctx.account}/{charge_id}"),
    )
    intent["payment_method"] = pm["id"]
    intent["latest_charge"] = charge_id
    decline = card_of(pm).charge_decline
    if decline is None:
        _succeed(ctx, intent, charge)
    else:
        _fail(ctx, intent, charge, pm, decline)
    ctx.store.insert(charge, account=ctx.account)
    ctx.store.save(intent)
    if decline is None:
        ctx.emit("charge.succeeded", charge)
        ctx.emit("payment_intent.succeeded", intent)
        payment = ctx.store.get(invoice["_invoice_payment"], account=ctx.account)
        assert payment is not None
        payment["status"] = "paid"
        payment["amount_paid"] = intent["amount"]
        payment["status_transitions"]["paid_at"] = now
        ctx.store.save(payment)
        ctx.emit("invoice_payment.paid", payment)
        fee_amount = intent.get("application_fee_amount")
        if fee_amount:
            fee = ctx.store.get(charge["application_fee"])
            assert fee is not None
            ctx.for_account(ctx.platform_id).emit("application_fee.created", fee)
    else:
        ctx.emit("charge.failed", charge)
        ctx.emit("payment_intent.payment_failed", intent)
    return intent, charge, decline


def _succeed(ctx: Ctx, intent: dict[str, Any], charge: dict[str, Any]) -> None:
    now = ctx.now()
    amount = intent["amount"]
    fee_amount = min(intent.get("application_fee_amount") or 0, amount)
    stripe_fee = round_minor(Decimal(amount) * STRIPE_FEE_PERCENT) + STRIPE_FEE_FIXED
    fee_details = [
        {
            "amount": stripe_fee,
            "application": None,
            "currency": intent["currency"],
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        },
    ]
    if fee_amount:
        fee_details.append(
            {
                "amount": fee_amount,
                "application": ctx.emulator.config.client_id,
                "currency": intent["currency"],
                "description": f"{ctx.emulator.config.platform_name} application fee",
                "type": "application_fee",
            }
        )
    txn = objects.balance_transaction(
        id=new_id("balance_transaction"),
        created=now,
        amount=amount,
        currency=intent["currency"],
        source=charge["id"],
        type="charge",
        fee_details=fee_details,
        description=intent["description"],
        available_on=now + AVAILABLE_AFTER,
    )
    ctx.store.insert(txn, account=ctx.account)
    charge.update(
        {
            "amount_captured": amount,
            "balance_transaction": txn["id"],
            "captured": True,
            "paid": True,
            "status": "succeeded",
            "outcome": _outcome(None),
        }
    )
    charge["payment_method_details"]["card"]["amount_authorized"] = amount
    if fee_amount and not ctx.is_platform:
        platform_txn = objects.balance_transaction(
            id=new_id("balance_transaction"),
            created=now,
            amount=fee_amount,
            currency=intent["currency"],
            source="",
            type="application_fee",
            fee_details=[],
            description=None,
            available_on=now + AVAILABLE_AFTER,
        )
        fee = objects.application_fee(
            id=new_id("application_fee"),
            created=now,
            account=ctx.account,
            amount=fee_amount,
            currency=intent["currency"],
            application=ctx.emulator.config.client_id,
            charge=charge["id"],
            balance_transaction=platform_txn["id"],
        )
        platform_txn["source"] = fee["id"]
        ctx.store.insert(platform_txn, account=ctx.platform_id)
        ctx.store.insert(fee, account=ctx.platform_id)
        charge["application_fee"] = fee["id"]
    intent.update(
        {"amount_received": amount, "status": "succeeded", "last_payment_error": None}
    )


def _outcome(decline: cards.Decline | None) -> dict[str, Any]:
    if decline is None:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "advice_code": "try_again_later"
        if decline.code == "processing_error"
        else None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network",
        "reason": decline.decline_code,
        "seller_message": (
            "The bank did not return any further details with this decline."
        ),
        "type": "issuer_declined",
    }


def payment_error(
    decline: cards.Decline, charge: dict[str, Any], pm: dict[str, Any]
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "charge": charge["id"],
        "code": decline.code,
        "doc_url": "https://stripe.com/docs/error-codes/"
        + decline.code.replace("_", "-"),
        "message": decline.message,
        "payment_method": public(pm),
        "type": "card_error",
    }
    if decline.decline_code:
        error["decline_code"] = decline.decline_code
    return error


def _fail(
    ctx: Ctx,
    intent: dict[str, Any],
    charge: dict[str, Any],
    pm: dict[str, Any],
    decline: cards.Decline,
) -> None:
    charge.update(
        {
            "failure_code": decline.code,
            "failure_message": decline.message,
            "outcome": _outcome(decline),
            "status": "failed",
        }
    )
    intent["status"] = "requires_payment_method"
    intent["last_payment_error"] = payment_error(decline, charge, pm)


def card_error(
    decline: cards.Decline,
    intent: dict[str, Any],
    charge: dict[str, Any],
    pm: dict[str, Any],
) -> StripeError:
    """The 402 Stripe answers a declined payment with; the attempt is kept (persist)."""
    error = payment_error(decline, charge, pm)
    extra = {
        key: value
        for key, value in error.items()
        if key not in ("code", "message", "type", "doc_url")
    }
    extra["payment_intent"] = public(intent)
    return StripeError(
        402,
        decline.message,
        type="card_error",
        code=decline.code,
        persist=True,
        **extra,
    )


# --- Read-only endpoints for the objects payments create ------------------------------


@route("GET", "/v1/payment_intents/<intent>", P.PaymentIntentRetrieveParams)
def payment_intent_retrieve(
    ctx: Ctx, params: dict[str, Any], intent: str
) -> dict[str, Any]:
    return public(get_object(ctx, "payment_intent", intent, param="intent"))


@route("GET", "/v1/payment_intents", P.PaymentIntentListParams)
def payment_intent_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    customer = params.get("customer")
    return list_objects(
        ctx,
        "payment_intent",
        params,
        "/v1/payment_intents",
        where=lambda pi: customer is None or pi["customer"] == customer,
    )


@route("GET", "/v1/charges/<charge>", P.ChargeRetrieveParams)
def charge_retrieve(ctx: Ctx, params: dict[str, Any], charge: str) -> dict[str, Any]:
    return public(get_object(ctx, "charge", charge, param="charge"))


@route("GET", "/v1/charges", P.ChargeListParams)
def charge_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    customer = params.get("customer")
    intent = params.get("payment_intent")
    return list_objects(
        ctx,
        "charge",
        params,
        "/v1/charges",
        where=lambda ch: (
            (customer is None or ch["customer"] == customer)
            and (intent is None or ch["payment_intent"] == intent)
        ),
    )


@route("GET", "/v1/application_fees/<id>", P.ApplicationFeeRetrieveParams)
def application_fee_retrieve(
    ctx: Ctx, params: dict[str, Any], id: str
) -> dict[str, Any]:
    return public(get_object(ctx, "application_fee", id))


@route("GET", "/v1/application_fees", P.ApplicationFeeListParams)
def application_fee_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    charge = params.get("charge")
    return list_objects(
        ctx,
        "application_fee",
        params,
        "/v1/application_fees",
        where=lambda fee: charge is None or fee["charge"] == charge,
    )


@route("GET", "/v1/balance_transactions/<id>", P.BalanceTransactionRetrieveParams)
def balance_transaction_retrieve(
    ctx: Ctx, params: dict[str, Any], id: str
) -> dict[str, Any]:
    return public(get_object(ctx, "balance_transaction", id))


@route("GET", "/v1/balance_transactions", P.BalanceTransactionListParams)
def balance_transaction_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    kind = params.get("type")
    source = params.get("source")
    return list_objects(
        ctx,
        "balance_transaction",
        params,
        "/v1/balance_transactions",
        where=lambda txn: (
            (kind is None or txn["type"] == kind)
            and (source is None or txn["source"] == source)
        ),
    )


@route("GET", "/v1/invoice_payments/<invoice_payment>", P.InvoicePaymentRetrieveParams)
def invoice_payment_retrieve(
    ctx: Ctx, params: dict[str, Any], invoice_payment: str
) -> dict[str, Any]:
    return public(
        get_object(ctx, "invoice_payment", invoice_payment, param="invoice_payment")
    )


@route("GET", "/v1/invoice_payments", P.InvoicePaymentListParams)
def invoice_payment_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    invoice = params.get("invoice")
    status = params.get("status")
    return list_objects(
        ctx,
        "invoice_payment",
        params,
        "/v1/invoice_payments",
        where=lambda p: (
            (invoice is None or p["invoice"] == invoice)
            and (status is None or p["status"] == status)
        ),
    )
