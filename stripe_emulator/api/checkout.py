"""Checkout Sessions (setup mode) and their hosted page's completion."""

from __future__ import annotations

import datetime
from typing import Any

import stripe.params.checkout as PC

from stripe_emulator import cards, objects
from stripe_emulator.api.common import get_object, list_objects, require
from stripe_emulator.api.customers import (
    confirm_setup_intent,
    create_payment_method,
    create_setup_intent,
)
from stripe_emulator.api.router import route
from stripe_emulator.emulator import Ctx
from stripe_emulator.errors import exclusive, invalid, missing_param
from stripe_emulator.ids import new_id, random_token
from stripe_emulator.money import check_currency
from stripe_emulator.objects import public

SESSION_TTL = 24 * 3600
# Stripe's limit on each custom text message.
CUSTOM_TEXT_MAX = 1200
MIN_TTL = 30 * 60


@route("POST", "/v1/checkout/sessions", PC.SessionCreateParams)
def session_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    mode = params.get("mode")
    if not mode:
        raise missing_param("mode")
    if mode != "setup":
        raise invalid(
            "The Stripe emulator supports only mode=setup Checkout Sessions, not "
            f"{mode}.",
            param="mode",
        )
    ui_mode = params.get("ui_mode", "hosted")
    if ui_mode != "hosted":
        raise invalid(
            "The Stripe emulator supports only ui_mode=hosted.", param="ui_mode"
        )
    require(params, "success_url")
    types = params.get("allowed_payment_method_types")
    if types and types != ["card"]:
        raise invalid(
            "The Stripe emulator supports only card payment methods.",
            param="allowed_payment_method_types",
        )
    if not types and not params.get("currency"):
        raise invalid(
            "`currency` is required in setup mode when `allowed_payment_method_types` "
            "is not set.",
            param="currency",
        )
    for slot, text in (params.get("custom_text") or {}).items():
        if slot == "shipping_address" and text:
            raise invalid(
                "The Stripe emulator does not collect shipping addresses.",
                param="custom_text[shipping_address]",
            )
        if text and len(text.get("message") or "") > CUSTOM_TEXT_MAX:
            raise invalid(
                f"custom_text[{slot}][message] must be at most {CUSTOM_TEXT_MAX} "
                "characters.",
                param=f"custom_text[{slot}][message]",
            )
    if params.get("customer") and params.get("customer_email"):
        raise exclusive("customer", "customer_email")
    customer = None
    if params.get("customer"):
        customer = get_object(ctx, "customer", params["customer"], param="customer")
    now = ctx.now()
    expires_at = params.get("expires_at", now + SESSION_TTL)
    if not now + MIN_TTL <= expires_at <= now + SESSION_TTL:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from "
            "now.",
            param="expires_at",
        )
    setup_data = params.get("setup_intent_data") or {}
    intent = create_setup_intent(
        ctx,
        customer=customer["id"] if customer else None,
        metadata=setup_data.get("metadata") or {},
        description=setup_data.get("description"),
    )
    session_id = new_id("checkout.session")
    session = objects.checkout_session(
        id=session_id,
        created=now,
        expires_at=expires_at,
        url=ctx.url(f"/c/pay/{session_id}#{random_token(24)}"),
        params=params,
        customer=customer["id"] if customer else None,
        customer_email=params.get("customer_email"),
        setup_intent=intent["id"],
        currency=check_currency(params["currency"]) if params.get("currency") else None,
    )
    ctx.store.insert(session, account=ctx.account)
    return public(session)


def get_session(ctx: Ctx, session_id: str) -> dict[str, Any]:
    return get_object(ctx, "checkout.session", session_id, param="session")


@route("GET", "/v1/checkout/sessions/<session>", PC.SessionRetrieveParams)
def session_retrieve(ctx: Ctx, params: dict[str, Any], session: str) -> dict[str, Any]:
    return public(get_session(ctx, session))


@route("GET", "/v1/checkout/sessions", PC.SessionListParams)
def session_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def matches(session: dict[str, Any]) -> bool:
        for key in ("customer", "status", "setup_intent", "payment_intent"):
            if key in params and session[key] != params[key]:
                return False
        return True

    return list_objects(
        ctx, "checkout.session", params, "/v1/checkout/sessions", where=matches
    )


def expire_session(ctx: Ctx, session: dict[str, Any]) -> None:
    session["status"] = "expired"
    session["url"] = None
    ctx.store.save(session)
    intent = ctx.store.get(session["setup_intent"], account=ctx.account)
    if intent is not None and intent["status"] not in ("succeeded", "canceled"):
        intent["status"] = "canceled"
        intent["cancellation_reason"] = "abandoned"
        ctx.store.save(intent)
        ctx.emit("setup_intent.canceled", intent)
    ctx.emit("checkout.session.expired", session)


@route("POST", "/v1/checkout/sessions/<session>/expire", PC.SessionExpireParams)
def session_expire(ctx: Ctx, params: dict[str, Any], session: str) -> dict[str, Any]:
    obj = get_session(ctx, session)
    if obj["status"] != "open":
        raise invalid(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This '
            f'Checkout Session has a status of "{obj["status"]}".',
            param="session",
        )
    expire_session(ctx, obj)
    return public(obj)


# --- What the hosted page does when the customer submits a card -----------------------


def parse_expiry(raw: str, now: int) -> tuple[int, int] | str:
    """`MM / YY`, `MM/YY`, `MMYY` or `MM/YYYY` → (month, year), or an error message."""
    digits = "".join(char for char in raw if char in "0123456789")
    if len(digits) not in (4, 6):
        return "Your card's expiration date is incomplete."
    month = int(digits[:2])
    year = int(digits[2:])
    if len(digits) == 4:
        year += 2000
    if not 1 <= month <= 12:
        return "Your card's expiration date is invalid."
    today = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    if (year, month) < (today.year, today.month):
        return "Your card's expiration year is in the past."
    return month, year


def card_from_form(
    ctx: Ctx, form: dict[str, str]
) -> tuple[cards.TestCard, int, int] | str:
    found = cards.card_for_number(form.get("cardnumber", ""))
    if isinstance(found, cards.Decline):
        return found.message
    expiry = parse_expiry(form.get("exp-date", ""), ctx.now())
    if isinstance(expiry, str):
        return expiry
    cvc = form.get("cvc", "").strip()
    if not (cvc.isascii() and cvc.isdigit()) or len(cvc) not in (3, 4):
        return "Your card's security code is incomplete."
    return found, expiry[0], expiry[1]


def complete_session(
    ctx: Ctx, session: dict[str, Any], form: dict[str, str]
) -> str | None:
    """Save the typed card through the session's SetupIntent.

    Returns an error message for the page (the session stays open and the customer can
    try again), or None once the session is complete."""
    card = card_from_form(ctx, form)
    if isinstance(card, str):
        return card
    test_card, month, year = card
    name = form.get("name", "").strip() or None
    email = form.get("email", "").strip() or session.get("customer_email")
    customer = None
    if session["customer"]:
        customer = ctx.store.get(session["customer"], account=ctx.account)
    elif session.get("customer_creation") == "always":
        from stripe_emulator.api.customers import customer_create

        created = customer_create(
            ctx, {"email": email, "name": name} if email else {"name": name}
        )
        customer = ctx.store.get(created["id"], account=ctx.account)
        session["customer"] = created["id"]
        intent = ctx.store.get(session["setup_intent"], account=ctx.account)
        assert intent is not None
        intent["customer"] = created["id"]
        ctx.store.save(intent)
    pm = create_payment_method(
        ctx,
        test_card,
        exp_month=month,
        exp_year=year,
        name=name,
        email=email,
        allow_redisplay="limited",
    )
    intent = ctx.store.get(session["setup_intent"], account=ctx.account)
    assert intent is not None
    decline = confirm_setup_intent(ctx, intent, pm)
    if decline is not None:
        ctx.store.save(session)
        return decline.message
    session["status"] = "complete"
    session["url"] = None
    session["customer_details"] = {
        "address": objects.address_or_none({"country": form.get("country") or None}),
        "business_name": None,
        "email": email or (customer or {}).get("email"),
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
    ctx.store.save(session)
    ctx.emit("checkout.session.completed", session)
    return None


def success_redirect(session: dict[str, Any]) -> str:
    return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
