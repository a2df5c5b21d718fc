"""Events: list and retrieve (webhook delivery is in webhooks.py)."""

from __future__ import annotations

from typing import Any

import stripe.params as P

from stripe_emulator.api.common import get_object, list_objects
from stripe_emulator.api.router import route
from stripe_emulator.emulator import Ctx
from stripe_emulator.errors import StripeError


def _type_matches(event_type: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


@route("GET", "/v1/events", P.EventListParams)
def event_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    patterns = params.get("types") or ([params["type"]] if params.get("type") else [])
    delivered = params.get("delivery_success")

    def matches(event: dict[str, Any]) -> bool:
        if patterns and not any(_type_matches(event["type"], p) for p in patterns):
            return False
        if delivered is not None:
            return (event["pending_webhooks"] == 0) == delivered
        return True

    return list_objects(ctx, "event", params, "/v1/events", where=matches)


@route("GET", "/v1/events/<id>", P.EventRetrieveParams)
def event_retrieve(ctx: Ctx, params: dict[str, Any], id: str) -> dict[str, Any]:
    return get_object(ctx, "event", id)


# Endpoints Stripe has that the emulator does not: named explicitly so they are not
# mistaken for an object id (`/v1/customers/search` is not customer "search").
_NOT_EMULATED = [
    ("GET", f"/v1/{resource}/search")
    for resource in (
        "customers",
        "invoices",
        "prices",
        "products",
        "charges",
        "payment_intents",
    )
] + [("POST", "/v1/invoices/create_preview")]


def _not_emulated(ctx: Ctx, params: dict[str, Any], **_: str) -> dict[str, Any]:
    raise StripeError(
        404,
        "The Stripe emulator does not implement this endpoint (see "
        "docs/stripe-emulator.md for what it emulates).",
    )


for _method, _rule in _NOT_EMULATED:
    route(_method, _rule)(_not_emulated)
