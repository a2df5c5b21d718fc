"""Products and prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe.params as P

from stripe_emulator import objects
from stripe_emulator.api.common import (
    get_object,
    list_objects,
    set_fields,
    set_metadata,
)
from stripe_emulator.api.router import route
from stripe_emulator.emulator import Ctx
from stripe_emulator.errors import StripeError, exclusive, invalid, missing_param
from stripe_emulator.ids import new_id
from stripe_emulator.money import (
    check_currency,
    check_decimal,
    decimal_string,
    round_minor,
)
from stripe_emulator.objects import public
from stripe_emulator.render import INCLUDABLE
from stripe_emulator.webhooks import previous_attributes

# --- Products -------------------------------------------------------------------------


@route("POST", "/v1/products", P.ProductCreateParams)
def product_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    product_id = params.get("id") or new_id("product")
    if ctx.store.get(product_id) is not None:
        raise StripeError(
            400, "Product already exists.", param="id", code="resource_already_exists"
        )
    product = objects.product(id=product_id, created=ctx.now(), name=params["name"])
    _apply_product(product, params)
    ctx.store.insert(product, account=ctx.account)
    ctx.emit("product.created", product)
    if params.get("default_price_data"):
        data = params["default_price_data"]
        price = _create_price(ctx, {**data, "product": product_id})
        product["default_price"] = price["id"]
        ctx.store.save(product)
    return public(product)


def _apply_product(product: dict[str, Any], params: dict[str, Any]) -> None:
    set_fields(
        product,
        params,
        (
            "name",
            "description",
            "active",
            "statement_descriptor",
            "tax_code",
            "unit_label",
            "url",
            "shippable",
        ),
    )
    if "images" in params:
        product["images"] = params["images"] or []
    if "type" in params:
        product["type"] = params["type"]
    if "metadata" in params:
        set_metadata(product, params["metadata"])
    if "marketing_features" in params:
        product["marketing_features"] = [
            {"name": feature.get("name")}
            for feature in params["marketing_features"] or []
        ]


@route("GET", "/v1/products/<id>", P.ProductRetrieveParams)
def product_retrieve(ctx: Ctx, params: dict[str, Any], id: str) -> dict[str, Any]:
    return public(get_object(ctx, "product", id))


@route("POST", "/v1/products/<id>", P.ProductUpdateParams)
def product_update(ctx: Ctx, params: dict[str, Any], id: str) -> dict[str, Any]:
    product = get_object(ctx, "product", id)
    before = public(product)
    if params.get("default_price"):
        price = get_object(ctx, "price", params["default_price"], param="default_price")
        if price["product"] != id:
            raise invalid(
                "The price must belong to this product.", param="default_price"
            )
        product["default_price"] = price["id"]
    elif params.get("default_price") == "":
        product["default_price"] = None
    _apply_product(product, params)
    product["updated"] = ctx.now()
    ctx.store.save(product)
    previous = previous_attributes(before, public(product))
    previous.pop("updated", None)
    if previous:
        previous["updated"] = before["updated"]
        ctx.emit("product.updated", product, previous=previous)
    return public(product)


@route("DELETE", "/v1/products/<id>", P.ProductDeleteParams)
def product_delete(ctx: Ctx, params: dict[str, Any], id: str) -> dict[str, Any]:
    product = get_object(ctx, "product", id)
    if ctx.store.list(
        "price",
        account=ctx.account,
        where=lambda p: p["product"] == id and not p.get("_adhoc"),
    ):
        raise invalid(
            "This product cannot be deleted because it has one or more user-created "
            "prices."
        )
    ctx.emit("product.deleted", product)
    ctx.store.save({"id": id, "object": "product", "deleted": True})
    return {"id": id, "object": "product", "deleted": True}


@route("GET", "/v1/products", P.ProductListParams)
def product_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    active = params.get("active")
    ids = params.get("ids")
    return list_objects(
        ctx,
        "product",
        params,
        "/v1/products",
        where=lambda p: (
            (active is None or p["active"] == active) and (not ids or p["id"] in ids)
        ),
    )


# --- Prices ---------------------------------------------------------------------------


def _unit_amount(
    target: dict[str, Any], params: dict[str, Any], prefix: str = ""
) -> None:
    """`unit_amount` (integer) or `unit_amount_decimal` (≤ 12 decimals), never both."""
    if "unit_amount" in params and "unit_amount_decimal" in params:
        raise exclusive(prefix + "unit_amount", prefix + "unit_amount_decimal")
    if "unit_amount" in params:
        value = Decimal(params["unit_amount"])
    elif "unit_amount_decimal" in params:
        value = check_decimal(
            params["unit_amount_decimal"], prefix + "unit_amount_decimal"
        )
    else:
        return
    if value < 0:
        raise invalid(
            "This value must be greater than or equal to 0.",
            param=prefix + "unit_amount",
        )
    target["unit_amount_decimal"] = decimal_string(value)
    target["unit_amount"] = int(value) if value == value.to_integral_value() else None


def _create_price(
    ctx: Ctx, params: dict[str, Any], *, adhoc: bool = False
) -> dict[str, Any]:
    currency = check_currency(params["currency"])
    if "product" in params and "product_data" in params:
        raise exclusive("product", "product_data")
    if params.get("product"):
        product_id = get_object(ctx, "product", params["product"], param="product")[
            "id"
        ]
    elif params.get("product_data"):
        data = params["product_data"]
        if not data.get("name"):
            raise missing_param("product_data[name]")
        product = objects.product(
            id=new_id("product"), created=ctx.now(), name=data["name"]
        )
        _apply_product(product, {k: v for k, v in data.items() if k != "name"})
        if adhoc:
            product["_adhoc"] = True
        ctx.store.insert(product, account=ctx.account)
        if not adhoc:
            ctx.emit("product.created", product)
        product_id = product["id"]
    else:
        raise missing_param("product")
    price = objects.price(
        id=new_id("price"), created=ctx.now(), currency=currency, product=product_id
    )
    scheme = params.get("billing_scheme", "per_unit")
    price["billing_scheme"] = scheme
    if scheme == "tiered":
        if not params.get("tiers"):
            raise missing_param("tiers")
        if not params.get("tiers_mode"):
            raise missing_param("tiers_mode")
        price["tiers_mode"] = params["tiers_mode"]
        price["_tiers"] = _tiers(params["tiers"])
    else:
        _unit_amount(price, params)
        if price["unit_amount_decimal"] is None and not params.get(
            "custom_unit_amount"
        ):
            raise missing_param("unit_amount")
        if params.get("custom_unit_amount"):
            custom = params["custom_unit_amount"]
            price["custom_unit_amount"] = {
                "maximum": custom.get("maximum"),
                "minimum": custom.get("minimum"),
                "preset": custom.get("preset"),
            }
    if params.get("recurring"):
        recurring = params["recurring"]
        if "interval" not in recurring:
            raise missing_param("recurring[interval]")
        price["recurring"] = {
            "interval": recurring["interval"],
            "interval_count": recurring.get("interval_count", 1),
            "meter": recurring.get("meter"),
            "trial_period_days": recurring.get("trial_period_days"),
            "usage_type": recurring.get("usage_type", "licensed"),
        }
        price["type"] = "recurring"
    if params.get("transform_quantity"):
        if scheme == "tiered":
            # Stripe's docs: "Quantity transformation isn't compatible with tiered
            # pricing."
            raise invalid(
                "Quantity transformation isn't compatible with tiered pricing: "
                "transform_quantity cannot be combined with tiers.",
                param="transform_quantity",
            )
        transform = params["transform_quantity"]
        price["transform_quantity"] = {
            "divide_by": transform.get("divide_by"),
            "round": transform.get("round"),
        }
    set_fields(price, params, ("nickname", "lookup_key", "active"))
    if "tax_behavior" in params:
        price["tax_behavior"] = params["tax_behavior"]
    if params.get("lookup_key"):
        for other in ctx.store.list(
            "price",
            account=ctx.account,
            where=lambda p: p["lookup_key"] == params["lookup_key"],
        ):
            if not params.get("transfer_lookup_key"):
                raise invalid(
                    f"A price (`{other['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            other["lookup_key"] = None
            ctx.store.save(other)
    if "metadata" in params:
        set_metadata(price, params["metadata"])
    if adhoc:
        price["active"] = False
        price["_adhoc"] = True
    ctx.store.insert(price, account=ctx.account)
    if not adhoc:
        ctx.emit("price.created", price)
    return price


def _tiers(tiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for index, tier in enumerate(tiers):
        if "up_to" not in tier:
            raise missing_param(f"tiers[{index}][up_to]")
        up_to = tier["up_to"]
        last = index == len(tiers) - 1
        if (up_to == "inf") != last:
            raise invalid(
                "The last tier must have `up_to` set to `inf`, and only the last.",
                param=f"tiers[{index}][up_to]",
            )
        entry: dict[str, Any] = {"up_to": None if up_to == "inf" else int(up_to)}
        _unit_amount(entry, tier, f"tiers[{index}][")
        flat = {}
        if "flat_amount" in tier or "flat_amount_decimal" in tier:
            _unit_amount(
                flat,
                {"unit_amount": tier["flat_amount"]}
                if "flat_amount" in tier
                else {"unit_amount_decimal": tier["flat_amount_decimal"]},
            )
        entry["flat_amount"] = flat.get("unit_amount")
        entry["flat_amount_decimal"] = flat.get("unit_amount_decimal")
        entry.setdefault("unit_amount", None)
        entry.setdefault("unit_amount_decimal", None)
        result.append(entry)
    return result


def price_tiers(price: dict[str, Any]) -> list[dict[str, Any]] | None:
    """`tiers` is includable on prices (expand[]=tiers)."""
    return price.get("_tiers") if price["billing_scheme"] == "tiered" else None


def price_amount(price: dict[str, Any], quantity: Decimal) -> int:
    """What `quantity` of a price costs, in minor units (rounded half up once)."""
    transform = price.get("transform_quantity")
    if transform and transform.get("divide_by"):
        quantity = quantity / Decimal(transform["divide_by"])
        rounding = "ROUND_UP" if transform.get("round") == "up" else "ROUND_DOWN"
        quantity = quantity.quantize(Decimal(1), rounding=rounding)
    if price["billing_scheme"] != "tiered":
        return round_minor(quantity * Decimal(price["unit_amount_decimal"]))
    tiers = price["_tiers"]
    total = Decimal(0)
    if price["tiers_mode"] == "volume":
        for tier in tiers:
            if tier["up_to"] is None or quantity <= tier["up_to"]:
                total = quantity * Decimal(tier["unit_amount_decimal"] or 0)
                total += Decimal(tier["flat_amount_decimal"] or 0)
                break
        return round_minor(total)
    lower = Decimal(0)
    for tier in tiers:
        if quantity <= lower:
            break
        upper = (
            quantity if tier["up_to"] is None else min(quantity, Decimal(tier["up_to"]))
        )
        total += (upper - lower) * Decimal(tier["unit_amount_decimal"] or 0)
        total += Decimal(tier["flat_amount_decimal"] or 0)
        lower = upper
    return round_minor(total)


@route("POST", "/v1/prices", P.PriceCreateParams)
def price_create(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    return public(_create_price(ctx, params))


@route("GET", "/v1/prices/<price>", P.PriceRetrieveParams)
def price_retrieve(ctx: Ctx, params: dict[str, Any], price: str) -> dict[str, Any]:
    return public(get_object(ctx, "price", price, param="price"))


@route("POST", "/v1/prices/<price>", P.PriceUpdateParams)
def price_update(ctx: Ctx, params: dict[str, Any], price: str) -> dict[str, Any]:
    obj = get_object(ctx, "price", price, param="price")
    before = public(obj)
    if "tax_behavior" in params:
        if (
            obj["tax_behavior"] != "unspecified"
            and params["tax_behavior"] != obj["tax_behavior"]
        ):
            raise invalid(
                "Tax behavior cannot be changed once it is set.", param="tax_behavior"
            )
        obj["tax_behavior"] = params["tax_behavior"]
    if params.get("lookup_key"):
        clash = ctx.store.list(
            "price",
            account=ctx.account,
            where=lambda p: (
                p["lookup_key"] == params["lookup_key"] and p["id"] != price
            ),
        )
        for other in clash:
            if not params.get("transfer_lookup_key"):
                raise invalid(
                    f"A price (`{other['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            other["lookup_key"] = None
            ctx.store.save(other)
    set_fields(obj, params, ("active", "nickname", "lookup_key"))
    if "metadata" in params:
        set_metadata(obj, params["metadata"])
    ctx.store.save(obj)
    previous = previous_attributes(before, public(obj))
    if previous:
        ctx.emit("price.updated", obj, previous=previous)
    return public(obj)


@route("GET", "/v1/prices", P.PriceListParams)
def price_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def matches(p: dict[str, Any]) -> bool:
        if p.get("_adhoc"):
            return False
        for key in ("active", "product", "currency", "type"):
            if key in params and p[key] != params[key]:
                return False
        if params.get("lookup_keys") and p["lookup_key"] not in params["lookup_keys"]:
            return False
        recurring = params.get("recurring")
        if recurring:
            if p["recurring"] is None:
                return False
            for key, value in recurring.items():
                if p["recurring"].get(key) != value:
                    return False
        return True

    return list_objects(ctx, "price", params, "/v1/prices", where=matches)


def _include_tiers(emulator: Any, price: dict[str, Any]) -> list[dict[str, Any]] | None:
    stored = emulator.store.get(price["id"])
    return price_tiers(stored) if stored else None


INCLUDABLE[("price", "tiers")] = _include_tiers
