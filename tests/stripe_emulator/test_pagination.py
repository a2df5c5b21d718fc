from __future__ import annotations

from typing import Any

import pytest
import stripe


@pytest.fixture
def customers(stripe_client: Any, opts: dict[str, Any]) -> list[str]:
    """Seven customers, newest first (Stripe's list order)."""
    made = [
        stripe_client.v1.customers.create({"name": f"c{n}"}, opts).id for n in range(7)
    ]
    return list(reversed(made))


def test_pages_follow_starting_after(
    stripe_client: Any, opts: dict[str, Any], customers: list[str]
) -> None:
    first = stripe_client.v1.customers.list({"limit": 3}, opts)
    assert [c.id for c in first.data] == customers[:3] and first.has_more is True
    assert first.url == "/v1/customers"

    second = stripe_client.v1.customers.list(
        {"limit": 3, "starting_after": first.data[-1].id}, opts
    )
    third = stripe_client.v1.customers.list(
        {"limit": 3, "starting_after": second.data[-1].id}, opts
    )

    assert [c.id for c in second.data] == customers[3:6] and second.has_more is True
    assert [c.id for c in third.data] == customers[6:] and third.has_more is False


def test_ending_before_pages_backwards(
    stripe_client: Any, opts: dict[str, Any], customers: list[str]
) -> None:
    page = stripe_client.v1.customers.list(
        {"limit": 2, "ending_before": customers[4]}, opts
    )

    assert [c.id for c in page.data] == customers[2:4] and page.has_more is True


def test_auto_pagination_walks_every_page(
    stripe_client: Any, opts: dict[str, Any], customers: list[str]
) -> None:
    walked = [
        c.id
        for c in stripe_client.v1.customers.list({"limit": 2}, opts).auto_paging_iter()
    ]

    assert walked == customers


def test_the_default_limit_is_ten(stripe_client: Any, opts: dict[str, Any]) -> None:
    for _ in range(11):
        stripe_client.v1.customers.create({}, opts)

    page = stripe_client.v1.customers.list({}, opts)

    assert len(page.data) == 10 and page.has_more is True


def test_limits_and_cursors_are_checked(
    stripe_client: Any, opts: dict[str, Any], customers: list[str]
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.customers.list({"limit": 101}, opts)
    assert excinfo.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.customers.list({"starting_after": "cus_nope"}, opts)
    assert excinfo.value.param == "starting_after"


def test_created_filters(
    stripe_client: Any, opts: dict[str, Any], stripe_emulator: Any
) -> None:
    old = stripe_client.v1.customers.create({}, opts)
    stripe_emulator.advance(100)
    new = stripe_client.v1.customers.create({}, opts)

    recent = stripe_client.v1.customers.list({"created": {"gt": old.created}}, opts)
    exact = stripe_client.v1.customers.list({"created": old.created}, opts)

    assert [c.id for c in recent.data] == [new.id]
    assert [c.id for c in exact.data] == [old.id]


def test_expand_on_list_items(stripe_client: Any, opts: dict[str, Any]) -> None:
    customer = stripe_client.v1.customers.create({"email": "e@example.com"}, opts)
    stripe_client.v1.invoices.create({"customer": customer.id}, opts)

    page = stripe_client.v1.invoices.list({"expand": ["data.customer"]}, opts)

    assert page.data[0].customer.email == "e@example.com"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoices.list({"expand": ["data.currency"]}, opts)
    assert "cannot be expanded" in excinfo.value.user_message
