"""Helpers the API handlers share: lookups, metadata, list pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stripe_emulator.emulator import Ctx
from stripe_emulator.errors import StripeError, invalid, no_such
from stripe_emulator.objects import public

LABELS = {
    "account": "account",
    "application_fee": "application fee",
    "balance_transaction": "balance transaction",
    "charge": "charge",
    "checkout.session": "checkout.session",
    "customer": "customer",
    "event": "event",
    "invoice": "invoice",
    "invoice_payment": "invoice payment",
    "invoiceitem": "invoiceitem",
    "payment_intent": "payment_intent",
    "payment_method": "PaymentMethod",
    "price": "price",
    "product": "product",
    "setup_intent": "setupintent",
}


def get_object(
    ctx: Ctx, type: str, object_id: str, *, param: str = "id"
) -> dict[str, Any]:
    """An object of the acting account, or Stripe's 404 — another account's objects
    do not exist from here."""
    obj = ctx.store.get(object_id, account=ctx.account)
    if obj is None or obj.get("object") != type or obj.get("deleted"):
        raise no_such(LABELS.get(type, type), object_id, param=param)
    return obj


def set_metadata(obj: dict[str, Any], value: Any) -> None:
    """Stripe's metadata update: merge keys, "" unsets a key, metadata="" clears all."""
    if value == "":
        obj["metadata"] = {}
        return
    metadata = dict(obj.get("metadata") or {})
    for key, item in value.items():
        if len(key) > 40:
            raise invalid(
                "Metadata keys can have up to 40 characters.", param=f"metadata[{key}]"
            )
        if item == "":
            metadata.pop(key, None)
        else:
            if len(item) > 500:
                raise invalid(
                    "Metadata values can have up to 500 characters.",
                    param=f"metadata[{key}]",
                )
            metadata[key] = item
    if len(metadata) > 50:
        raise invalid("Metadata can have up to 50 keys.", param="metadata")
    obj["metadata"] = metadata


def set_fields(
    obj: dict[str, Any], params: dict[str, Any], names: tuple[str, ...]
) -> None:
    """Copy simple fields; an empty string unsets (null), as in Stripe's API."""
    for name in names:
        if name in params:
            obj[name] = None if params[name] == "" else params[name]


def _created_matches(created: int, condition: Any) -> bool:
    if isinstance(condition, int):
        return created == condition
    checks = {
        "gt": lambda bound: created > bound,
        "gte": lambda bound: created >= bound,
        "lt": lambda bound: created < bound,
        "lte": lambda bound: created <= bound,
    }
    return all(
        checks[op](int(bound)) for op, bound in condition.items() if op in checks
    )


def list_objects(
    ctx: Ctx,
    type: str,
    params: dict[str, Any],
    url: str,
    *,
    where: Callable[[dict[str, Any]], bool] | None = None,
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """A Stripe list object: newest first, `limit` (1 to 100, default 10), cursor
    pagination with `starting_after` / `ending_before`, `created` filters."""
    items = ctx.store.list(
        type,
        account=account or ctx.account,
        where=lambda obj: not obj.get("deleted") and (where is None or where(obj)),
    )
    if "created" in params:
        items = [
            item
            for item in items
            if _created_matches(
                item.get("created", item.get("date")), params["created"]
            )
        ]
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid("Invalid limit: must be between 1 and 100", param="limit")
    ids = [item["id"] for item in items]
    if params.get("starting_after"):
        cursor = params["starting_after"]
        if cursor not in ids:
            raise no_such(LABELS.get(type, type), cursor, param="starting_after")
        start = ids.index(cursor) + 1
        page = items[start : start + limit]
        has_more = start + limit < len(items)
    elif params.get("ending_before"):
        cursor = params["ending_before"]
        if cursor not in ids:
            raise no_such(LABELS.get(type, type), cursor, param="ending_before")
        end = ids.index(cursor)
        page = items[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        page = items[:limit]
        has_more = len(items) > limit
    render = render or public
    return {
        "object": "list",
        "data": [render(item) for item in page],
        "has_more": has_more,
        "url": url,
    }


def require(params: dict[str, Any], *names: str) -> None:
    from stripe_emulator.errors import missing_param

    for name in names:
        if name not in params or params[name] in ("", None):
            raise missing_param(name)


def platform_only(ctx: Ctx, what: str) -> None:
    if not ctx.is_platform:
        raise StripeError(
            400,
            f"You cannot {what} on behalf of a connected account (remove the "
            "Stripe-Account "
            "header).",
        )
