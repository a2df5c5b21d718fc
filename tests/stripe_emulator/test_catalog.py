from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import stripe


def test_products_are_created_updated_listed_and_deleted(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create(
        {"name": "Weather API", "description": "v1", "metadata": {"api_id": "7"}}, opts
    )
    assert product.id.startswith("prod_") and product.active is True

    updated = stripe_client.v1.products.update(
        product.id, {"name": "Weather API v2"}, opts
    )

    assert updated.name == "Weather API v2"
    event = stripe_client.v1.events.list({"type": "product.updated"}, opts).data[0]
    assert event.data.previous_attributes.name == "Weather API"
    listed = stripe_client.v1.products.list({"active": True}, opts)
    assert [p.id for p in listed.data] == [product.id]
    assert stripe_client.v1.products.delete(product.id, None, opts).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.products.retrieve(product.id, None, opts)


def test_a_custom_product_id_is_kept_and_must_be_unique(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create({"id": "api_7", "name": "A"}, opts)
    assert product.id == "api_7"

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.products.create({"id": "api_7", "name": "B"}, opts)

    assert excinfo.value.code == "resource_already_exists"


def test_a_recurring_price_with_a_twelve_decimal_unit_amount(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create({"name": "Calls"}, opts)

    price = stripe_client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount_decimal": "0.000400000001",
            "recurring": {"interval": "month", "usage_type": "licensed"},
            "nickname": "Gold",
            "metadata": {"tier_id": "3"},
        },
        opts,
    )

    assert price.id.startswith("price_")
    assert price.unit_amount is None  # not a whole number of cents
    assert price.unit_amount_decimal == Decimal("0.000400000001")
    assert (price.type, price.recurring.interval, price.recurring.interval_count) == (
        "recurring",
        "month",
        1,
    )
    raw = stripe_client.raw_request("get", f"/v1/prices/{price.id}", **opts).data
    assert raw["unit_amount_decimal"] == "0.000400000001"


def test_more_than_twelve_decimals_and_both_amounts_are_rejected(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create({"name": "Calls"}, opts)
    base = {"product": product.id, "currency": "usd"}

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.prices.create(
            {**base, "unit_amount_decimal": "0.0000000000001"}, opts
        )
    assert excinfo.value.param == "unit_amount_decimal"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.prices.create(
            {**base, "unit_amount": 1, "unit_amount_decimal": "1"}, opts
        )
    assert excinfo.value.code == "parameters_exclusive"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.prices.create(
            {**base, "recurring": {"interval": "decade"}}, opts
        )
    assert excinfo.value.param == "recurring[interval]"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.prices.create({"product": product.id, "unit_amount": 5}, opts)
    assert (
        excinfo.value.code == "parameter_missing" and excinfo.value.param == "currency"
    )


def test_archiving_a_price_with_active_false(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create({"name": "Calls"}, opts)
    old = stripe_client.v1.prices.create(
        {"product": product.id, "currency": "usd", "unit_amount": 1000}, opts
    )
    new = stripe_client.v1.prices.create(
        {"product": product.id, "currency": "usd", "unit_amount": 1200}, opts
    )

    archived = stripe_client.v1.prices.update(old.id, {"active": False}, opts)

    assert archived.active is False
    event = stripe_client.v1.events.list({"type": "price.updated"}, opts).data[0]
    assert event.data.previous_attributes.to_dict() == {"active": True}
    active = stripe_client.v1.prices.list({"product": product.id, "active": True}, opts)
    assert [p.id for p in active.data] == [new.id]
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.prices.update(old.id, {"unit_amount": 5}, opts)
    assert excinfo.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.products.delete(product.id, None, opts)


def test_a_price_with_product_data_creates_the_product(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    price = stripe_client.v1.prices.create(
        {
            "currency": "eur",
            "unit_amount": 500,
            "product_data": {"name": "Maps API"},
            "expand": ["product"],
        },
        opts,
    )

    assert price.product.name == "Maps API"
    assert price.product.id.startswith("prod_")


def test_tiered_prices_expose_tiers_only_when_expanded(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create({"name": "Calls"}, opts)
    price = stripe_client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "billing_scheme": "tiered",
            "tiers_mode": "volume",
            "tiers": [
                {"up_to": 1000, "unit_amount_decimal": "0.5", "flat_amount": 100},
                {"up_to": "inf", "unit_amount_decimal": "0.25"},
            ],
        },
        opts,
    )

    assert "tiers" not in price
    expanded = stripe_client.v1.prices.retrieve(price.id, {"expand": ["tiers"]}, opts)
    assert expanded.tiers[0].up_to == 1000 and expanded.tiers[1].up_to is None
    assert expanded.tiers[0].flat_amount == 100


def test_lookup_keys_are_unique_unless_transferred(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create({"name": "Calls"}, opts)
    base = {"product": product.id, "currency": "usd", "unit_amount": 1}
    first = stripe_client.v1.prices.create({**base, "lookup_key": "gold"}, opts)

    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.prices.create({**base, "lookup_key": "gold"}, opts)
    second = stripe_client.v1.prices.create(
        {**base, "lookup_key": "gold", "transfer_lookup_key": True}, opts
    )

    found = stripe_client.v1.prices.list({"lookup_keys": ["gold"]}, opts)
    assert [p.id for p in found.data] == [second.id]
    assert stripe_client.v1.prices.retrieve(first.id, None, opts).lookup_key is None
