"""Invoice items and invoices: drafts, finalization, payment, void, uncollectible.

Automatic collection (auto_advance) follows Stripe: a draft is finalized about an hour
after it was created, payment is attempted when it is finalized, and a failed attempt
is retried RETRY_DAYS after the first failure (see automation.py and the docs).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import stripe.params as P

from stripe_emulator import objects
from stripe_emulator.api.catalog import _create_price, price_amount
from stripe_emulator.api.common import get_object, list_objects, require, set_metadata
from stripe_emulator.api.customers import resolve_payment_method
from stripe_emulator.api.payments import card_error, charge_card
from stripe_emulator.api.router import route
from stripe_emulator.emulator import Ctx, Emulator
from stripe_emulator.errors import (
    StripeError,
    exclusive,
    invalid,
    missing_param,
    no_such,
)
from stripe_emulator.ids import new_id, random_token
from stripe_emulator.money import (
    MAX_AMOUNT,
    check_currency,
    check_decimal,
    decimal_string,
)
from stripe_emulator.objects import public
from stripe_emulator.render import INCLUDABLE, RENDERERS, render
from stripe_emulator.webhooks import previous_attributes

# Smart-retries-like schedule: retries 1, 3 and 5 days after the first failed attempt.
RETRY_DAYS = (1, 3, 5)
EMBEDDED_LINES = 10

NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. Please "
    "consider adding a default payment method. For more information, visit "
    "https://stripe.com/docs/billing/subscriptions/payment-methods-setting"
    "#payment-method-priority."
)


# --- Rendering ------------------------------------------------------------------------


def items_of(
    emulator: Emulator, invoice: dict[str, Any], account: str
) -> list[dict[str, Any]]:
    items = emulator.store.list(
        "invoiceitem",
        account=account,
        invoice=invoice["id"],
        where=lambda item: not item.get("deleted"),
    )
    return list(reversed(items))  # invoice lines read in the order they were added


def render_invoice(emulator: Emulator, invoice: dict[str, Any]) -> dict[str, Any]:
    shown = public(invoice)
    if invoice.get("deleted"):
        return shown
    account = emulator.store.owner(invoice["id"]) or emulator.platform_id
    lines = [
        objects.line_item_for(item) for item in items_of(emulator, invoice, account)
    ]
    shown["lines"] = {
        "object": "list",
        "data": lines[:EMBEDDED_LINES],
        "has_more": len(lines) > EMBEDDED_LINES,
        "url": f"/v1/invoices/{invoice['id']}/lines",
    }
    return shown


def include_payments(emulator: Emulator, invoice: dict[str, Any]) -> dict[str, Any]:
    account = emulator.store.owner(invoice["id"]) or emulator.platform_id
    payments = emulator.store.list(
        "invoice_payment", account=account, invoice=invoice["id"]
    )
    return {
        "object": "list",
        "data": [public(p) for p in payments],
        "has_more": False,
        "url": f"/v1/invoice_payments?invoice={invoice['id']}",
    }


RENDERERS["invoice"] = render_invoice
INCLUDABLE[("invoice", "payments")] = include_payments


def recompute(ctx: Ctx, invoice: dict[str, Any]) -> None:
    """Totals from the lines: the sum of the (already rounded) line amounts."""
    subtotal = sum(
        item["amount"] for item in items_of(ctx.emulator, invoice, ctx.account)
    )
    invoice["subtotal"] = invoice["subtotal_excluding_tax"] = subtotal
    invoice["total"] = invoice["total_excluding_tax"] = subtotal
    if invoice["status"] == "draft":
        invoice["amount_due"] = max(0, subtotal)
        invoice["amount_remaining"] = max(0, subtotal)


# --- Invoice items --------------------------------------------------------------------


def _quantity(item: dict[str, Any], params: dict[str, Any]) -> Decimal:
    if "quantity" in params and "quantity_decimal" in params:
        raise exclusive("quantity", "quantity_decimal")
    if "quantity" in params:
        quantity = Decimal(params["quantity"])
    elif "quantity_decimal" in params:
        quantity = check_decimal(params["quantity_decimal"], "quantity_decimal")
    else:
        return Decimal(item["quantity_decimal"])
    if quantity < 0:
        raise invalid(
            "This value must be greater than or equal to 0.", param="quantity"
        )
    item["quantity"] = int(quantity.to_integral_value(rounding=ROUND_HALF_UP))
    item["quantity_decimal"] = decimal_string(quantity)
    return quantity


def _price_line(
    ctx: Ctx, item: dict[str, Any], price: dict[str, Any], quantity: Decimal
) -> None:
    if price["type"] != "one_time":
        raise invalid(
            "The price specified is set to `type=recurring` but this field only "
            "accepts "
            "prices with `type=one_time`.",
            param="pricing[price]",
        )
    if price["currency"] != item["currency"]:
        raise invalid(
            f"The price's currency ({price['currency']}) does not match the invoice "
            "item's "
            f"currency ({item['currency']}).",
            param="pricing[price]",
        )
    item["amount"] = price_amount(price, quantity)
    item["pricing"] = {
        "price_details": {"price": price["id"], "product": price["product"]},
        "type": "price_details",
        "unit_amount_decimal": price["unit_amount_decimal"],
    }
    item["_basis"] = "price"
    if item["description"] is None:
        product = ctx.store.get(price["product"], account=ctx.account)
        item["description"] = product["name"] if product else None


def _apply_item_amount(
    ctx: Ctx, item: dict[str, Any], params: dict[str, Any], *, creating: bool
) -> None:
    sources = [
        key
        for key in ("amount", "pricing", "price_data", "unit_amount_decimal")
        if key in params
    ]
    if len(sources) > 1:
        raise exclusive(*sources)
    if "amount" in params and "quantity_decimal" in params:
        raise exclusive("amount", "quantity_decimal")
    quantity = _quantity(item, params)
    source = sources[0] if sources else None
    if source == "amount":
        amount = params["amount"]
        item["amount"] = amount
        item["_basis"] = "amount"
        unit = Decimal(amount) / quantity if quantity else Decimal(amount)
        item["pricing"] = {
            "price_details": None,
            "type": "price_details",
            "unit_amount_decimal": decimal_string(unit.normalize()),
        }
    elif source == "unit_amount_decimal":
        unit = check_decimal(params["unit_amount_decimal"], "unit_amount_decimal")
        item["_basis"] = "unit"
        item["pricing"] = {
            "price_details": None,
            "type": "price_details",
            "unit_amount_decimal": decimal_string(unit),
        }
        item["amount"] = int(
            (quantity * unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        )
    elif source == "pricing":
        price_id = (params["pricing"] or {}).get("price")
        if not price_id:
            raise missing_param("pricing[price]")
        price = get_object(ctx, "price", price_id, param="pricing[price]")
        if not price["active"]:
            raise invalid(
                f"The price `{price_id}` is not active.", param="pricing[price]"
            )
        _price_line(ctx, item, price, quantity)
    elif source == "price_data":
        data = dict(params["price_data"])
        data.setdefault("currency", item["currency"])
        require(data, "currency", "product")
        price = _create_price(ctx, data, adhoc=True)
        price["active"] = True  # ad-hoc prices are usable once, by this item
        _price_line(ctx, item, price, quantity)
    elif creating:
        raise missing_param("amount")
    elif "quantity" in params or "quantity_decimal" in params:
        # A new quantity reprices the line unless its amount was given outright.
        if item.get("_basis") == "price":
            price = ctx.store.get(
                item["pricing"]["price_details"]["price"], account=ctx.account
            )
            assert price is not None
            item["amount"] = price_amount(price, quantity)
        elif item.get("_basis") == "unit":
            unit = Decimal(item["pricing"]["unit_amount_decimal"])
            item["amount"] = int(
                (quantity * unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            )
    if abs(item["amount"]) > MAX_AMOUNT:
        raise invalid(f"Amount must be no more than {MAX_AMOUNT:,}", param="amount")
    item["net_amount"] = item["amount"]


def _apply_item_fields(item: dict[str, Any], params: dict[str, Any]) -> None:
    if "description" in params:
        item["description"] = params["description"] or None
    if "discountable" in params:
        item["discountable"] = params["discountable"]
    if "metadata" in params:
        set_metadata(item, params["metadata"])
    if "period" in params:
        period = params["period"]
        require(period, "start", "end")
        if period["end"] < period["start"]:
            raise invalid(
                "The period end must be on or after its start.", param="period[end]"
            )
        item["period"] = {"end": period["end"], "start": period["start"]}
    if params.get("discounts"):
        raise invalid(
            "The Stripe emulator does not support discounts.", param="discounts"
        )
    if params.get("tax_rates"):
        raise invalid(
            "The Stripe emulator does not support tax rates.", param="tax_rates"
        )


def _draft_invoice(ctx: Ctx, invoice_id: str, customer: str) -> dict[str, Any]:
    invoice = get_object(ctx, "invoice", invoice_id, param="invoice")
    if invoice["status"] != "draft":
        raise StripeError(
            400,
            f"You can only add invoice items to draft invoices; {invoice_id} is "
            f"{invoice['status']}.",
            param="invoice",
            code="invoice_not_editable",
        )
    if invoice["customer"] != customer:
        raise invalid(
            f"The invoice {invoice_id} belongs to a different customer.",
            param="invoice",
        )
    return invoice


@route("POST", "/v1/invoiceitems", P.InvoiceItemCreateParams)
def invoice_item_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("subscription"):
        raise invalid(
            "The Stripe emulator does not support subscriptions.", param="subscription"
        )
    if not params.get("customer"):
        raise missing_param("customer")
    customer = get_object(ctx, "customer", params["customer"], param="customer")
    invoice = (
        _draft_invoice(ctx, params["invoice"], customer["id"])
        if params.get("invoice")
        else None
    )
    acct = ctx.store.get(ctx.account)
    assert acct is not None
    currency = (
        params.get("currency")
        or (invoice and invoice["currency"])
        or customer.get("currency")
        or (params.get("price_data") or {}).get("currency")
        or acct["default_currency"]
    )
    currency = check_currency(currency)
    if invoice and invoice["currency"] != currency:
        raise invalid(
            f"The currency of this invoice item ({currency}) does not match the "
            "invoice's "
            f"currency ({invoice['currency']}).",
            param="currency",
        )
    item = objects.invoice_item(
        id=new_id("invoiceitem"),
        created=ctx.now(),
        customer=customer["id"],
        currency=currency,
    )
    item["_line_id"] = new_id("line_item")
    item["invoice"] = invoice["id"] if invoice else None
    _apply_item_fields(item, params)
    _apply_item_amount(ctx, item, params, creating=True)
    ctx.store.insert(item, account=ctx.account)
    if invoice:
        recompute(ctx, invoice)
        ctx.store.save(invoice)
    ctx.emit("invoiceitem.created", item)
    return public(item)


@route("GET", "/v1/invoiceitems/<invoiceitem>", P.InvoiceItemRetrieveParams)
def invoice_item_retrieve(
    ctx: Ctx, params: dict[str, Any], invoiceitem: str
) -> dict[str, Any]:
    return public(get_object(ctx, "invoiceitem", invoiceitem, param="invoiceitem"))


def _editable_item(
    ctx: Ctx, item_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    item = get_object(ctx, "invoiceitem", item_id, param="invoiceitem")
    invoice = (
        ctx.store.get(item["invoice"], account=ctx.account) if item["invoice"] else None
    )
    if invoice is not None and invoice["status"] != "draft":
        raise StripeError(
            400,
            "Invoice items on a finalized invoice cannot be changed.",
            code="invoice_not_editable",
        )
    return item, invoice


@route("POST", "/v1/invoiceitems/<invoiceitem>", P.InvoiceItemUpdateParams)
def invoice_item_update(
    ctx: Ctx, params: dict[str, Any], invoiceitem: str
) -> dict[str, Any]:
    item, invoice = _editable_item(ctx, invoiceitem)
    before = public(item)
    _apply_item_fields(item, params)
    _apply_item_amount(ctx, item, params, creating=False)
    ctx.store.save(item)
    if invoice is not None:
        recompute(ctx, invoice)
        ctx.store.save(invoice)
    previous = previous_attributes(before, public(item))
    if previous:
        ctx.emit("invoiceitem.updated", item, previous=previous)
    return public(item)


@route("DELETE", "/v1/invoiceitems/<invoiceitem>", P.InvoiceItemDeleteParams)
def invoice_item_delete(
    ctx: Ctx, params: dict[str, Any], invoiceitem: str
) -> dict[str, Any]:
    item, invoice = _editable_item(ctx, invoiceitem)
    ctx.emit("invoiceitem.deleted", item)
    ctx.store.save(
        {
            "id": item["id"],
            "object": "invoiceitem",
            "deleted": True,
            "invoice": None,
        }
    )
    if invoice is not None:
        recompute(ctx, invoice)
        ctx.store.save(invoice)
    return {"id": item["id"], "object": "invoiceitem", "deleted": True}


@route("GET", "/v1/invoiceitems", P.InvoiceItemListParams)
def invoice_item_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def matches(item: dict[str, Any]) -> bool:
        if "customer" in params and item["customer"] != params["customer"]:
            return False
        if "invoice" in params and item["invoice"] != params["invoice"]:
            return False
        return "pending" not in params or (item["invoice"] is None) == params["pending"]

    return list_objects(ctx, "invoiceitem", params, "/v1/invoiceitems", where=matches)


# --- Invoices -------------------------------------------------------------------------


def _check_default_pm(ctx: Ctx, customer_id: str, pm_id: str) -> None:
    pm = ctx.store.get(pm_id, account=ctx.account)
    if pm is None or pm.get("object") != "payment_method":
        raise no_such("PaymentMethod", pm_id, param="default_payment_method")
    if pm.get("customer") != customer_id:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The "
            "payment "
            "method must be attached to the customer.",
            param="default_payment_method",
        )


def _check_number_free(ctx: Ctx, invoice: dict[str, Any], number: str) -> None:
    """Invoice numbers are unique per account, as in Stripe: a number that another
    invoice of the account (of any status, until it is deleted) has is refused."""
    taken = ctx.store.invoice_numbered(ctx.account, number)
    if taken is not None and taken != invoice["id"]:
        raise invalid(
            f"Invoice number {number} is already used by another invoice on this "
            "account. Invoice numbers must be unique.",
            param="number",
        )


_UNSUPPORTED_INVOICE_PARAMS = (
    "subscription",
    "from_invoice",
    "transfer_data",
    "on_behalf_of",
    "customer_account",
)


def _apply_invoice(ctx: Ctx, invoice: dict[str, Any], params: dict[str, Any]) -> None:
    for name in _UNSUPPORTED_INVOICE_PARAMS:
        if params.get(name):
            raise invalid(
                f"The Stripe emulator does not support `{name}` on invoices.",
                param=name,
            )
    if params.get("discounts"):
        raise invalid(
            "The Stripe emulator does not support discounts.", param="discounts"
        )
    if params.get("default_tax_rates"):
        raise invalid(
            "The Stripe emulator does not support tax rates.", param="default_tax_rates"
        )
    if (params.get("automatic_tax") or {}).get("enabled"):
        raise invalid(
            "The Stripe emulator does not calculate tax.",
            param="automatic_tax[enabled]",
        )
    if params.get("number"):
        _check_number_free(ctx, invoice, params["number"])
    for name in ("description", "footer", "statement_descriptor", "number"):
        if name in params:
            invoice[name] = params[name] or None
    if "metadata" in params:
        set_metadata(invoice, params["metadata"])
    if "custom_fields" in params:
        invoice["custom_fields"] = params["custom_fields"] or None
    if "collection_method" in params:
        invoice["collection_method"] = params["collection_method"]
    if "days_until_due" in params:
        invoice["_days_until_due"] = params["days_until_due"]
    if "due_date" in params:
        invoice["due_date"] = params["due_date"] or None
    if "effective_at" in params:
        invoice["_effective_at"] = params["effective_at"] or None
    if invoice["collection_method"] == "send_invoice":
        if invoice.get("_days_until_due") is None and invoice["due_date"] is None:
            raise missing_param("days_until_due")
    else:
        if "days_until_due" in params or params.get("due_date"):
            raise invalid(
                "Invoices with `collection_method=charge_automatically` can't have a "
                "due "
                "date.",
                param="days_until_due" if "days_until_due" in params else "due_date",
            )
    if "application_fee_amount" in params:
        fee = params["application_fee_amount"]
        if ctx.is_platform and fee not in ("", None):
            raise invalid(
                "Can only apply an application_fee_amount when the request is made on "
                "behalf "
                "of another account (using an OAuth key, the Stripe-Account header, "
                "or the "
                "destination parameter).",
                param="application_fee_amount",
            )
        if fee not in ("", None) and fee < 0:
            raise invalid(
                "This value must be greater than or equal to 0.",
                param="application_fee_amount",
            )
        invoice["_application_fee_amount"] = fee if fee != "" else None
    if "default_payment_method" in params:
        pm_id = params["default_payment_method"]
        if pm_id:
            _check_default_pm(ctx, invoice["customer"], pm_id)
        invoice["default_payment_method"] = pm_id or None
    if "auto_advance" in params:
        invoice["auto_advance"] = params["auto_advance"]
    if "automatically_finalizes_at" in params:
        invoice["automatically_finalizes_at"] = params["automatically_finalizes_at"]
    if invoice["status"] == "draft":
        if not invoice["auto_advance"]:
            invoice["automatically_finalizes_at"] = None
        elif invoice["automatically_finalizes_at"] is None:
            invoice["automatically_finalizes_at"] = (
                ctx.now()
                + ctx.emulator.clock.delay(ctx.emulator.config.auto_finalize_delay)
            )


@route("POST", "/v1/invoices", P.InvoiceCreateParams)
def invoice_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    if not params.get("customer"):
        raise missing_param("customer")
    customer = get_object(ctx, "customer", params["customer"], param="customer")
    acct = ctx.store.get(ctx.account)
    assert acct is not None
    currency = check_currency(
        params.get("currency") or customer.get("currency") or acct["default_currency"]
    )
    invoice = objects.invoice(
        id=new_id("invoice"),
        created=ctx.now(),
        customer=customer,
        currency=currency,
        account_country=acct["country"],
        account_name=acct["business_profile"]["name"],
        application=ctx.application,
    )
    _apply_invoice(ctx, invoice, params)
    ctx.store.insert(invoice, account=ctx.account)
    if params.get("pending_invoice_items_behavior") == "include":
        for item in ctx.store.list(
            "invoiceitem",
            account=ctx.account,
            where=lambda i: (
                i.get("customer") == customer["id"]
                and i.get("invoice") is None
                and not i.get("deleted")
                and i["currency"] == currency
            ),
        ):
            item["invoice"] = invoice["id"]
            ctx.store.save(item)
    recompute(ctx, invoice)
    ctx.store.save(invoice)
    if customer["currency"] is None:
        customer["currency"] = currency
        ctx.store.save(customer)
    ctx.emit("invoice.created", invoice)
    return render(ctx.emulator, invoice)


def _get_invoice(ctx: Ctx, invoice_id: str) -> dict[str, Any]:
    return get_object(ctx, "invoice", invoice_id, param="invoice")


@route("GET", "/v1/invoices/<invoice>", P.InvoiceRetrieveParams)
def invoice_retrieve(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    return render(ctx.emulator, _get_invoice(ctx, invoice))


# Fields Stripe still lets you change once an invoice is finalized.
_FINALIZED_EDITABLE = frozenset(
    {
        "auto_advance",
        "metadata",
        "default_payment_method",
        "description",
        "footer",
        "custom_fields",
        "expand",
        "rendering",
        "payment_settings",
    }
)


@route("POST", "/v1/invoices/<invoice>", P.InvoiceUpdateParams)
def invoice_update(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    if obj["status"] != "draft":
        fixed = sorted(set(params) - _FINALIZED_EDITABLE)
        if fixed:
            raise StripeError(
                400,
                f"Finalized invoices can't be updated in this way: {', '.join(fixed)} "
                "can "
                "only be changed on drafts.",
                param=fixed[0],
                code="invoice_not_editable",
            )
    before = render(ctx.emulator, obj)
    _apply_invoice(ctx, obj, params)
    if obj["status"] == "open" and "auto_advance" in params:
        _schedule_after_change(ctx, obj)
    ctx.store.save(obj)
    after = render(ctx.emulator, obj)
    previous = previous_attributes(before, after)
    if previous:
        ctx.emit("invoice.updated", obj, previous=previous)
    return after


def _schedule_after_change(ctx: Ctx, invoice: dict[str, Any]) -> None:
    automatic = (
        invoice["auto_advance"]
        and invoice["collection_method"] == "charge_automatically"
    )
    if not automatic:
        invoice["next_payment_attempt"] = None
    elif invoice["next_payment_attempt"] is None and invoice["attempt_count"] <= len(
        RETRY_DAYS
    ):
        invoice["next_payment_attempt"] = ctx.now()


@route("DELETE", "/v1/invoices/<invoice>", P.InvoiceDeleteParams)
def invoice_delete(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    if obj["status"] != "draft":
        raise StripeError(
            400,
            "You can only delete draft invoices. Void the invoice instead.",
            code="invoice_not_editable",
        )
    ctx.emit("invoice.deleted", obj)
    for item in items_of(ctx.emulator, obj, ctx.account):
        ctx.store.save(
            {
                "id": item["id"],
                "object": "invoiceitem",
                "deleted": True,
                "invoice": None,
            }
        )
    ctx.store.save({"id": invoice, "object": "invoice", "deleted": True})
    return {"id": invoice, "object": "invoice", "deleted": True}


@route("GET", "/v1/invoices", P.InvoiceListParams)
def invoice_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("subscription"):
        raise invalid(
            "The Stripe emulator does not support subscriptions.", param="subscription"
        )

    def matches(inv: dict[str, Any]) -> bool:
        for key in ("customer", "status", "collection_method"):
            if key in params and inv[key] != params[key]:
                return False
        return True

    return list_objects(
        ctx,
        "invoice",
        params,
        "/v1/invoices",
        where=matches,
        render=lambda inv: render(ctx.emulator, inv),
    )


@route("GET", "/v1/invoices/<invoice>/lines", P.InvoiceLineItemListParams)
def invoice_lines(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    lines = [
        objects.line_item_for(item) for item in items_of(ctx.emulator, obj, ctx.account)
    ]
    limit = params.get("limit", 10)
    ids = [line["id"] for line in lines]
    start = 0
    if params.get("starting_after"):
        if params["starting_after"] not in ids:
            raise no_such("line item", params["starting_after"], param="starting_after")
        start = ids.index(params["starting_after"]) + 1
    page = lines[start : start + limit]
    return {
        "object": "list",
        "data": page,
        "has_more": start + limit < len(lines),
        "url": f"/v1/invoices/{invoice}/lines",
    }


# --- State changes --------------------------------------------------------------------


def _set_customer_field(
    ctx: Ctx, customer: dict[str, Any], field: str, value: Any
) -> None:
    if customer[field] == value:
        return
    previous = {field: customer[field]}
    customer[field] = value
    ctx.store.save(customer)
    ctx.emit("customer.updated", customer, previous=previous)


def finalize(ctx: Ctx, invoice: dict[str, Any]) -> None:
    """draft → open: number, hosted page and PDF, customer balance, first collection."""
    customer = ctx.store.get(invoice["customer"], account=ctx.account)
    if customer is None or customer.get("deleted"):
        raise invalid(
            "The customer of this invoice has been deleted.", param="customer"
        )
    recompute(ctx, invoice)
    now = ctx.now()
    if invoice["number"] is None:
        while True:  # skip a number an invoice was given by the API
            number = (
                f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
            )
            customer["next_invoice_sequence"] += 1
            if ctx.store.invoice_numbered(ctx.account, number) is None:
                break
        invoice["number"] = number
        ctx.store.save(customer)
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = now
    invoice["effective_at"] = invoice.get("_effective_at") or now
    invoice["automatically_finalizes_at"] = None
    for field, source in (
        ("customer_address", "address"),
        ("customer_email", "email"),
        ("customer_name", "name"),
        ("customer_phone", "phone"),
        ("customer_shipping", "shipping"),
        ("customer_tax_exempt", "tax_exempt"),
    ):
        invoice[field] = customer[source]
    net = invoice["total"] + customer["balance"]
    invoice["starting_balance"] = customer["balance"]
    invoice["amount_due"] = max(0, net)
    invoice["amount_remaining"] = invoice["amount_due"] - invoice["amount_paid"]
    invoice["ending_balance"] = min(0, net)
    _set_customer_field(ctx, customer, "balance", min(0, net))
    token = random_token(40)
    invoice["_token"] = token
    invoice["hosted_invoice_url"] = ctx.url(f"/i/{ctx.account}/test_{token}")
    invoice["invoice_pdf"] = ctx.url(f"/invoice/{ctx.account}/test_{token}/pdf")
    if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
        invoice["due_date"] = now + 86400 * int(invoice.get("_days_until_due") or 0)
    ctx.store.save(invoice)
    ctx.emit("invoice.finalized", invoice)
    if invoice["amount_due"] == 0:
        mark_paid(ctx, invoice)
    elif (
        invoice["auto_advance"]
        and invoice["collection_method"] == "charge_automatically"
    ):
        # Automatic collection starts now; automation.py makes the attempt.
        invoice["next_payment_attempt"] = now
        ctx.store.save(invoice)


def mark_paid(ctx: Ctx, invoice: dict[str, Any], *, out_of_band: bool = False) -> None:
    now = ctx.now()
    if out_of_band:
        invoice["amount_paid"] += invoice["amount_remaining"]
    invoice["amount_remaining"] = 0
    invoice["status"] = "paid"
    invoice["status_transitions"]["paid_at"] = now
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    ctx.store.save(invoice)
    ctx.emit("invoice.paid", invoice)


def payment_method_for(ctx: Ctx, invoice: dict[str, Any]) -> dict[str, Any] | None:
    """Stripe's order: the invoice's default PM, then the customer's invoice default."""
    customer = ctx.store.get(invoice["customer"], account=ctx.account) or {}
    for pm_id in (
        invoice["default_payment_method"],
        (customer.get("invoice_settings") or {}).get("default_payment_method"),
    ):
        if pm_id:
            pm = ctx.store.get(pm_id, account=ctx.account)
            if pm is not None and pm.get("customer") == invoice["customer"]:
                return pm
    return None


def attempt_payment(
    ctx: Ctx, invoice: dict[str, Any], pm: dict[str, Any] | None
) -> StripeError | None:
    """One collection attempt (explicit /pay, automatic collection, hosted page).

    Returns None when paid, else the error to answer with; the attempt is recorded."""
    now = ctx.now()
    customer = ctx.store.get(invoice["customer"], account=ctx.account)
    assert customer is not None
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    if pm is None:
        error: StripeError = StripeError(400, NO_PAYMENT_METHOD, persist=True)
        decline_code = None
    else:
        intent, charge, decline = charge_card(ctx, invoice, pm)
        if decline is None:
            invoice["amount_paid"] += intent["amount"]
            _set_customer_field(ctx, customer, "delinquent", False)
            mark_paid(ctx, invoice)
            ctx.emit("invoice.payment_succeeded", invoice)
            return None
        error = card_error(decline, intent, charge, pm)
        decline_code = decline.code
    invoice["_first_failed_at"] = invoice.get("_first_failed_at") or now
    failures = invoice["_failures"] = invoice.get("_failures", 0) + 1
    automatic = (
        invoice["auto_advance"]
        and invoice["collection_method"] == "charge_automatically"
    )
    if automatic and failures <= len(RETRY_DAYS):
        invoice["next_payment_attempt"] = invoice[
            "_first_failed_at"
        ] + ctx.emulator.clock.delay(RETRY_DAYS[failures - 1] * 86400)
    else:
        invoice["next_payment_attempt"] = None
    ctx.store.save(invoice)
    _set_customer_field(ctx, customer, "delinquent", True)
    ctx.emit("invoice.payment_failed", invoice)
    if decline_code == "authentication_required":
        ctx.emit("invoice.payment_action_required", invoice)
    return error


@route("POST", "/v1/invoices/<invoice>/finalize", P.InvoiceFinalizeInvoiceParams)
def invoice_finalize(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    if obj["status"] != "draft":
        raise StripeError(
            400,
            "This invoice is already finalized, you can't re-finalize a non-draft "
            "invoice.",
            code="invoice_not_editable",
        )
    if "auto_advance" in params:
        obj["auto_advance"] = params["auto_advance"]
    finalize(ctx, obj)
    return render(ctx.emulator, obj)


@route("POST", "/v1/invoices/<invoice>/pay", P.InvoicePayParams)
def invoice_pay(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    if obj["status"] == "paid":
        raise invalid("Invoice is already paid", param="invoice")
    if obj["status"] == "void":
        raise invalid(
            "This invoice has been voided and can no longer be paid.", param="invoice"
        )
    if params.get("source") or params.get("mandate"):
        raise invalid(
            "The Stripe emulator supports paying with payment methods only.",
            param="source" if params.get("source") else "mandate",
        )
    if obj["status"] == "draft":
        finalize(ctx, obj)
        if obj["status"] == "paid":
            return render(ctx.emulator, obj)
    if params.get("paid_out_of_band"):
        mark_paid(ctx, obj, out_of_band=True)
        return render(ctx.emulator, obj)
    if params.get("payment_method"):
        pm = resolve_payment_method(ctx, params["payment_method"])
        if pm.get("customer") is None and pm["id"] != params["payment_method"]:
            customer = get_object(ctx, "customer", obj["customer"], param="customer")
            from stripe_emulator.api.customers import attach_payment_method

            attach_payment_method(ctx, pm, customer)
        elif pm.get("customer") != obj["customer"]:
            raise invalid(
                "The PaymentMethod must be attached to the invoice's customer.",
                param="payment_method",
            )
    else:
        pm = payment_method_for(ctx, obj)
        if pm is None:
            raise invalid(NO_PAYMENT_METHOD)
    error = attempt_payment(ctx, obj, pm)
    if error is not None:
        raise error
    return render(ctx.emulator, obj)


@route("POST", "/v1/invoices/<invoice>/void", P.InvoiceVoidInvoiceParams)
def invoice_void(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    if obj["status"] not in ("open", "uncollectible"):
        raise StripeError(
            400,
            f"You can only void open or uncollectible invoices; this invoice is "
            f"{obj['status']}.",
            code="invoice_not_editable" if obj["status"] == "draft" else None,
        )
    obj["status"] = "void"
    obj["status_transitions"]["voided_at"] = ctx.now()
    obj["next_payment_attempt"] = None
    obj["auto_advance"] = False
    ctx.store.save(obj)
    ctx.emit("invoice.voided", obj)
    return render(ctx.emulator, obj)


@route(
    "POST",
    "/v1/invoices/<invoice>/mark_uncollectible",
    P.InvoiceMarkUncollectibleParams,
)
def invoice_mark_uncollectible(
    ctx: Ctx, params: dict[str, Any], invoice: str
) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    if obj["status"] != "open":
        raise invalid(
            f"You can only mark open invoices as uncollectible; this invoice is "
            f"{obj['status']}."
        )
    obj["status"] = "uncollectible"
    obj["status_transitions"]["marked_uncollectible_at"] = ctx.now()
    obj["next_payment_attempt"] = None
    obj["auto_advance"] = False
    ctx.store.save(obj)
    ctx.emit("invoice.marked_uncollectible", obj)
    return render(ctx.emulator, obj)


@route("POST", "/v1/invoices/<invoice>/send", P.InvoiceSendInvoiceParams)
def invoice_send(ctx: Ctx, params: dict[str, Any], invoice: str) -> dict[str, Any]:
    obj = _get_invoice(ctx, invoice)
    if obj["collection_method"] != "send_invoice":
        raise invalid(
            "You can only manually send an invoice if its collection method is "
            "'send_invoice'."
        )
    if obj["status"] == "draft":
        finalize(ctx, obj)
    ctx.emit("invoice.sent", obj)
    return render(ctx.emulator, obj)
