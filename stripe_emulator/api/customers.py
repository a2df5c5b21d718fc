"""Customers, payment methods and setup intents."""

from __future__ import annotations

from typing import Any

import stripe.params as P

from stripe_emulator import cards, objects
from stripe_emulator.api.common import (
    get_object,
    list_objects,
    set_fields,
    set_metadata,
)
from stripe_emulator.api.router import route
from stripe_emulator.emulator import Ctx
from stripe_emulator.errors import StripeError, invalid, no_such
from stripe_emulator.ids import new_id, random_token
from stripe_emulator.objects import public
from stripe_emulator.webhooks import previous_attributes

# --- Payment methods ------------------------------------------------------------------


def default_expiry(ctx: Ctx) -> tuple[int, int]:
    import datetime

    today = datetime.datetime.fromtimestamp(ctx.now(), tz=datetime.UTC)
    return today.month, today.year + 3


def create_payment_method(
    ctx: Ctx,
    card: cards.TestCard,
    *,
    exp_month: int | None = None,
    exp_year: int | None = None,
    name: str | None = None,
    email: str | None = None,
    metadata: dict[str, str] | None = None,
    allow_redisplay: str = "unspecified",
) -> dict[str, Any]:
    default_month, default_year = default_expiry(ctx)
    pm = objects.payment_method(
        id=new_id("payment_method"),
        created=ctx.now(),
        card=card,
        exp_month=exp_month or default_month,
        exp_year=exp_year or default_year,
        name=name,
        email=email,
        metadata=metadata,
        allow_redisplay=allow_redisplay,
    )
    ctx.store.insert(pm, account=ctx.account)
    return pm


def resolve_payment_method(
    ctx: Ctx, pm_id: str, *, param: str = "payment_method"
) -> dict[str, Any]:
    """A PaymentMethod by id; Stripe's test ids (pm_card_visa, …) make a new one."""
    card = cards.BY_PM_ID.get(pm_id)
    if card is not None:
        return create_payment_method(ctx, card)
    return get_object(ctx, "payment_method", pm_id, param=param)


def card_of(pm: dict[str, Any]) -> cards.TestCard:
    return cards.BY_NUMBER[pm["_card_number"]]


def decline_error(decline: cards.Decline, **extra: Any) -> StripeError:
    if decline.decline_code:
        extra.setdefault("decline_code", decline.decline_code)
    return StripeError(
        402, decline.message, type="card_error", code=decline.code, **extra
    )


def attach_payment_method(
    ctx: Ctx, pm: dict[str, Any], customer: dict[str, Any]
) -> dict[str, Any]:
    """Attach (validating the card as Stripe does) and emit payment_method.attached."""
    if pm.get("customer") == customer["id"]:
        return pm
    if pm.get("customer"):
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    if pm.get("_consumed"):
        raise invalid(
            "This PaymentMethod was previously used without being attached to a "
            "Customer or "
            "was detached from a Customer, and may not be used again.",
            param="payment_method",
        )
    decline = card_of(pm).attach_decline
    if decline is not None:
        raise decline_error(decline, param="")
    pm["customer"] = customer["id"]
    ctx.store.save(pm)
    ctx.emit("payment_method.attached", pm)
    return pm


def detach_payment_method(ctx: Ctx, pm: dict[str, Any]) -> dict[str, Any]:
    if not pm.get("customer"):
        raise invalid(
            "The payment method you provided is not attached to a customer so "
            "detachment is "
            "impossible.",
            param="payment_method",
        )
    customer = ctx.store.get(pm["customer"], account=ctx.account)
    previous = {"customer": pm["customer"]}
    pm["customer"] = None
    pm["_consumed"] = True
    ctx.store.save(pm)
    if customer and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        customer["invoice_settings"]["default_payment_method"] = None
        ctx.store.save(customer)
    ctx.emit("payment_method.detached", pm, previous=previous)
    return pm


def _card_from_params(
    ctx: Ctx, params: dict[str, Any]
) -> tuple[cards.TestCard, int | None, int | None]:
    card_params = params.get("card")
    if not isinstance(card_params, dict):
        raise invalid("Missing required param: card.", param="card")
    if "token" in card_params:
        card = cards.BY_TOKEN.get(card_params["token"])
        if card is None:
            raise no_such("token", card_params["token"], param="card[token]")
        return card, None, None
    if "number" in card_params:
        found = cards.card_for_number(card_params["number"])
        if isinstance(found, cards.Decline):
            raise decline_error(found, param="card[number]")
        month = card_params.get("exp_month")
        year = card_params.get("exp_year")
        return found, int(month) if month else None, int(year) if year else None
    raise invalid("Missing required param: card[token].", param="card[token]")


@route("POST", "/v1/payment_methods", P.PaymentMethodCreateParams)
def payment_method_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("type", "card") != "card":
        raise invalid(
            "The Stripe emulator supports only type=card payment methods.", param="type"
        )
    card, month, year = _card_from_params(ctx, params)
    billing = params.get("billing_details") or {}
    pm = create_payment_method(
        ctx,
        card,
        exp_month=month,
        exp_year=year,
        name=billing.get("name") or None,
        email=billing.get("email") or None,
        metadata=params.get("metadata") or {},
        allow_redisplay=params.get("allow_redisplay", "unspecified"),
    )
    return public(pm)


@route("GET", "/v1/payment_methods/<payment_method>", P.PaymentMethodRetrieveParams)
def payment_method_retrieve(
    ctx: Ctx, params: dict[str, Any], payment_method: str
) -> dict[str, Any]:
    return public(resolve_payment_method(ctx, payment_method, param="payment_method"))


@route("POST", "/v1/payment_methods/<payment_method>", P.PaymentMethodUpdateParams)
def payment_method_update(
    ctx: Ctx, params: dict[str, Any], payment_method: str
) -> dict[str, Any]:
    pm = get_object(ctx, "payment_method", payment_method, param="payment_method")
    before = public(pm)
    if "metadata" in params:
        set_metadata(pm, params["metadata"])
    billing = params.get("billing_details")
    if isinstance(billing, dict):
        for key in ("email", "name", "phone"):
            if key in billing:
                pm["billing_details"][key] = billing[key] or None
        if isinstance(billing.get("address"), dict):
            pm["billing_details"]["address"].update(billing["address"])
    card = params.get("card") or {}
    for key in ("exp_month", "exp_year"):
        if key in card:
            pm["card"][key] = int(card[key])
    if "allow_redisplay" in params:
        pm["allow_redisplay"] = params["allow_redisplay"]
    ctx.store.save(pm)
    previous = previous_attributes(before, public(pm))
    if previous:
        ctx.emit("payment_method.updated", pm, previous=previous)
    return public(pm)


@route(
    "POST", "/v1/payment_methods/<payment_method>/attach", P.PaymentMethodAttachParams
)
def payment_method_attach(
    ctx: Ctx, params: dict[str, Any], payment_method: str
) -> dict[str, Any]:
    if not params.get("customer"):
        from stripe_emulator.errors import missing_param

        raise missing_param("customer")
    customer = get_object(ctx, "customer", params["customer"], param="customer")
    pm = resolve_payment_method(ctx, payment_method, param="payment_method")
    return public(attach_payment_method(ctx, pm, customer))


@route(
    "POST", "/v1/payment_methods/<payment_method>/detach", P.PaymentMethodDetachParams
)
def payment_method_detach(
    ctx: Ctx, params: dict[str, Any], payment_method: str
) -> dict[str, Any]:
    pm = get_object(ctx, "payment_method", payment_method, param="payment_method")
    return public(detach_payment_method(ctx, pm))


@route("GET", "/v1/payment_methods", P.PaymentMethodListParams)
def payment_method_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    customer = params.get("customer")
    if customer:
        get_object(ctx, "customer", customer, param="customer")
    kind = params.get("type")
    return list_objects(
        ctx,
        "payment_method",
        params,
        "/v1/payment_methods",
        where=lambda pm: pm["customer"] == customer and (kind in (None, pm["type"])),
    )


@route(
    "GET", "/v1/customers/<customer>/payment_methods", P.CustomerPaymentMethodListParams
)
def customer_payment_methods(
    ctx: Ctx, params: dict[str, Any], customer: str
) -> dict[str, Any]:
    get_object(ctx, "customer", customer)
    kind = params.get("type")
    return list_objects(
        ctx,
        "payment_method",
        params,
        f"/v1/customers/{customer}/payment_methods",
        where=lambda pm: pm["customer"] == customer and (kind in (None, pm["type"])),
    )


@route(
    "GET",
    "/v1/customers/<customer>/payment_methods/<payment_method>",
    P.CustomerPaymentMethodRetrieveParams,
)
def customer_payment_method(
    ctx: Ctx, params: dict[str, Any], customer: str, payment_method: str
) -> dict[str, Any]:
    get_object(ctx, "customer", customer)
    pm = get_object(ctx, "payment_method", payment_method, param="payment_method")
    if pm["customer"] != customer:
        raise no_such("PaymentMethod", payment_method, param="payment_method")
    return public(pm)


# --- Customers ------------------------------------------------------------------------

_SIMPLE_CUSTOMER_FIELDS = (
    "email",
    "name",
    "description",
    "phone",
    "preferred_locales",
    "tax_exempt",
    "invoice_prefix",
    "next_invoice_sequence",
    "balance",
)


def _apply_customer(ctx: Ctx, customer: dict[str, Any], params: dict[str, Any]) -> None:
    set_fields(customer, params, _SIMPLE_CUSTOMER_FIELDS)
    if customer.get("tax_exempt") is None:
        customer["tax_exempt"] = "none"
    if customer.get("preferred_locales") is None:
        customer["preferred_locales"] = []
    if "metadata" in params:
        set_metadata(customer, params["metadata"])
    if "address" in params:
        customer["address"] = objects.address_or_none(params["address"])
    if "shipping" in params:
        shipping = params["shipping"]
        customer["shipping"] = (
            {
                "address": objects.address_or_none(shipping.get("address")),
                "name": shipping.get("name"),
                "phone": shipping.get("phone"),
            }
            if shipping
            else None
        )
    settings = params.get("invoice_settings")
    if isinstance(settings, dict):
        target = customer["invoice_settings"]
        if "default_payment_method" in settings:
            pm_id = settings["default_payment_method"]
            if pm_id:
                pm = ctx.store.get(pm_id, account=ctx.account)
                if pm is None or pm.get("customer") != customer["id"]:
                    raise invalid(
                        "The customer does not have a payment method with the ID "
                        f"{pm_id}. "
                        "The payment method must be attached to the customer.",
                        param="invoice_settings[default_payment_method]",
                    )
            target["default_payment_method"] = pm_id or None
        if "footer" in settings:
            target["footer"] = settings["footer"] or None
        if "custom_fields" in settings:
            target["custom_fields"] = settings["custom_fields"] or None


@route("POST", "/v1/customers", P.CustomerCreateParams)
def customer_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    customer = objects.customer(
        id=new_id("customer"), created=ctx.now(), invoice_prefix=random_token(8).upper()
    )
    ctx.store.insert(customer, account=ctx.account)
    pm = None
    if params.get("payment_method"):
        pm = resolve_payment_method(ctx, params["payment_method"])
    settings = dict(params.get("invoice_settings") or {})
    if pm and settings.get("default_payment_method") == params["payment_method"]:
        settings["default_payment_method"] = pm["id"]
    # The customer exists (customer.created) before its card is attached, as in Stripe.
    _apply_customer(ctx, customer, {**params, "invoice_settings": {}})
    ctx.store.save(customer)
    ctx.emit("customer.created", customer)
    if pm is not None:
        attach_payment_method(ctx, pm, customer)
    if settings:
        before = public(customer)
        _apply_customer(ctx, customer, {"invoice_settings": settings})
        ctx.store.save(customer)
        previous = previous_attributes(before, public(customer))
        if previous:
            ctx.emit("customer.updated", customer, previous=previous)
    return public(customer)


@route("GET", "/v1/customers/<customer>", P.CustomerRetrieveParams)
def customer_retrieve(
    ctx: Ctx, params: dict[str, Any], customer: str
) -> dict[str, Any]:
    obj = ctx.store.get(customer, account=ctx.account)
    if obj is None or obj.get("object") != "customer":
        raise no_such("customer", customer)
    return public(obj)


@route("POST", "/v1/customers/<customer>", P.CustomerUpdateParams)
def customer_update(ctx: Ctx, params: dict[str, Any], customer: str) -> dict[str, Any]:
    obj = get_object(ctx, "customer", customer)
    before = public(obj)
    _apply_customer(ctx, obj, params)
    ctx.store.save(obj)
    previous = previous_attributes(before, public(obj))
    if previous:
        ctx.emit("customer.updated", obj, previous=previous)
    return public(obj)


@route("DELETE", "/v1/customers/<customer>", P.CustomerDeleteParams)
def customer_delete(ctx: Ctx, params: dict[str, Any], customer: str) -> dict[str, Any]:
    obj = get_object(ctx, "customer", customer)
    for pm in ctx.store.list(
        "payment_method",
        account=ctx.account,
        where=lambda pm: pm["customer"] == customer,
    ):
        pm["customer"] = None
        pm["_consumed"] = True
        ctx.store.save(pm)
    ctx.emit("customer.deleted", obj)
    stub = {
        "id": customer,
        "object": "customer",
        "deleted": True,
    }
    ctx.store.save(stub)
    return {"id": customer, "object": "customer", "deleted": True}


@route("GET", "/v1/customers", P.CustomerListParams)
def customer_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    email = params.get("email")
    return list_objects(
        ctx,
        "customer",
        params,
        "/v1/customers",
        where=lambda c: email is None or c.get("email") == email,
    )


# --- Setup intents --------------------------------------------------------------------


def create_setup_intent(
    ctx: Ctx,
    *,
    customer: str | None,
    metadata: dict[str, str] | None = None,
    description: str | None = None,
    usage: str = "off_session",
) -> dict[str, Any]:
    seti_id = new_id("setup_intent")
    intent = objects.setup_intent(
        id=seti_id,
        created=ctx.now(),
        client_secret=f"{seti_id}_secret_{random_token(32)}",
        customer=customer,
        application=ctx.application,
        usage=usage,
        description=description,
        metadata=metadata,
    )
    ctx.store.insert(intent, account=ctx.account)
    ctx.emit("setup_intent.created", intent)
    return intent


def confirm_setup_intent(
    ctx: Ctx, intent: dict[str, Any], pm: dict[str, Any]
) -> cards.Decline | None:
    """Validate the card and, if it passes, attach it to the intent's customer.

    Returns the decline (with the intent updated and events emitted) or None."""
    if intent["status"] in ("succeeded", "canceled"):
        raise invalid(
            f"You cannot confirm this SetupIntent because it has a status of "
            f"{intent['status']}.",
            param="intent",
        )
    card = card_of(pm)
    decline = card.attach_decline
    attempt_id = new_id("setup_attempt")
    error = None
    if decline is not None:
        error = {
            "code": decline.code,
            "decline_code": decline.decline_code,
            "doc_url": "https://stripe.com/docs/error-codes/"
            + decline.code.replace("_", "-"),
            "message": decline.message,
            "payment_method": public(pm),
            "type": "card_error",
        }
    attempt = objects.setup_attempt(
        id=attempt_id, created=ctx.now(), intent=intent, pm=pm, error=error
    )
    ctx.store.insert(attempt, account=ctx.account)
    intent["latest_attempt"] = attempt_id
    if decline is not None:
        intent["status"] = "requires_payment_method"
        intent["last_setup_error"] = error
        intent["payment_method"] = None
        ctx.store.save(intent)
        ctx.emit("setup_intent.setup_failed", intent)
        return decline
    if intent["customer"]:
        customer = get_object(ctx, "customer", intent["customer"], param="customer")
        attach_payment_method(ctx, pm, customer)
    intent["status"] = "succeeded"
    intent["payment_method"] = pm["id"]
    intent["last_setup_error"] = None
    ctx.store.save(intent)
    ctx.emit("setup_intent.succeeded", intent)
    return None


def _confirm_or_raise(
    ctx: Ctx, intent: dict[str, Any], pm: dict[str, Any]
) -> dict[str, Any]:
    decline = confirm_setup_intent(ctx, intent, pm)
    if decline is not None:
        raise StripeError(
            402,
            decline.message,
            type="card_error",
            code=decline.code,
            decline_code=decline.decline_code,
            setup_intent=public(intent),
            payment_method=public(pm),
            persist=True,
        )
    return intent


@route("POST", "/v1/setup_intents", P.SetupIntentCreateParams)
def setup_intent_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    types = params.get("payment_method_types")
    if types and types != ["card"]:
        raise invalid(
            "The Stripe emulator supports only card payment methods.",
            param="payment_method_types",
        )
    customer = params.get("customer")
    if customer:
        get_object(ctx, "customer", customer, param="customer")
    intent = create_setup_intent(
        ctx,
        customer=customer,
        metadata=params.get("metadata") or {},
        description=params.get("description"),
        usage=params.get("usage", "off_session"),
    )
    if params.get("payment_method"):
        pm = resolve_payment_method(ctx, params["payment_method"])
        intent["payment_method"] = pm["id"]
        intent["status"] = "requires_confirmation"
        ctx.store.save(intent)
        if params.get("confirm"):
            _confirm_or_raise(ctx, intent, pm)
    elif params.get("confirm"):
        raise invalid(
            "You cannot confirm this SetupIntent because it's missing a payment "
            "method.",
            param="payment_method",
        )
    return public(intent)


@route("GET", "/v1/setup_intents/<intent>", P.SetupIntentRetrieveParams)
def setup_intent_retrieve(
    ctx: Ctx, params: dict[str, Any], intent: str
) -> dict[str, Any]:
    return public(get_object(ctx, "setup_intent", intent, param="intent"))


@route("POST", "/v1/setup_intents/<intent>", P.SetupIntentUpdateParams)
def setup_intent_update(
    ctx: Ctx, params: dict[str, Any], intent: str
) -> dict[str, Any]:
    obj = get_object(ctx, "setup_intent", intent, param="intent")
    before = public(obj)
    if "metadata" in params:
        set_metadata(obj, params["metadata"])
    set_fields(obj, params, ("description",))
    if params.get("customer"):
        get_object(ctx, "customer", params["customer"], param="customer")
        obj["customer"] = params["customer"]
    if params.get("payment_method"):
        pm = resolve_payment_method(ctx, params["payment_method"])
        obj["payment_method"] = pm["id"]
        obj["status"] = "requires_confirmation"
    ctx.store.save(obj)
    previous = previous_attributes(before, public(obj))
    if previous:
        ctx.emit("setup_intent.updated", obj, previous=previous)
    return public(obj)


@route("POST", "/v1/setup_intents/<intent>/confirm", P.SetupIntentConfirmParams)
def setup_intent_confirm(
    ctx: Ctx, params: dict[str, Any], intent: str
) -> dict[str, Any]:
    obj = get_object(ctx, "setup_intent", intent, param="intent")
    pm_id = params.get("payment_method") or obj.get("payment_method")
    if not pm_id:
        raise invalid(
            "You cannot confirm this SetupIntent because it's missing a payment "
            "method. "
            "Update the SetupIntent with a payment method and then confirm it again.",
            param="payment_method",
        )
    pm = resolve_payment_method(ctx, pm_id)
    return public(_confirm_or_raise(ctx, obj, pm))


@route("POST", "/v1/setup_intents/<intent>/cancel", P.SetupIntentCancelParams)
def setup_intent_cancel(
    ctx: Ctx, params: dict[str, Any], intent: str
) -> dict[str, Any]:
    obj = get_object(ctx, "setup_intent", intent, param="intent")
    if obj["status"] in ("succeeded", "canceled"):
        raise invalid(
            "You cannot cancel this SetupIntent because it has a status of "
            f"{obj['status']}.",
            param="intent",
        )
    obj["status"] = "canceled"
    obj["cancellation_reason"] = params.get("cancellation_reason")
    ctx.store.save(obj)
    ctx.emit("setup_intent.canceled", obj)
    return public(obj)


@route("GET", "/v1/setup_intents", P.SetupIntentListParams)
def setup_intent_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    customer = params.get("customer")
    pm = params.get("payment_method")
    return list_objects(
        ctx,
        "setup_intent",
        params,
        "/v1/setup_intents",
        where=lambda si: (
            (customer is None or si["customer"] == customer)
            and (pm is None or si["payment_method"] == pm)
        ),
    )
