from __future__ import annotations

from typing import Any

import pytest
import stripe


def test_it_creates_and_retrieves_a_customer_on_the_connected_account(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    created = stripe_client.v1.customers.create(
        {"email": "sub@example.com", "name": "Sub Scriber", "metadata": {"org": "42"}},
        opts,
    )

    assert created.id.startswith("cus_")
    assert created.object == "customer"
    assert created.livemode is False
    assert created.created > 1_700_000_000
    fetched = stripe_client.v1.customers.retrieve(created.id, None, opts)
    assert (fetched.email, fetched.name, fetched.metadata.to_dict()) == (
        "sub@example.com",
        "Sub Scriber",
        {"org": "42"},
    )
    assert fetched.invoice_settings.default_payment_method is None
    assert fetched.balance == 0 and fetched.delinquent is False


def test_update_merges_metadata_and_an_empty_value_unsets_a_key(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    customer = stripe_client.v1.customers.create(
        {"metadata": {"a": "1", "b": "2"}}, opts
    )

    updated = stripe_client.v1.customers.update(
        customer.id, {"metadata": {"b": "", "c": "3"}, "name": "New"}, opts
    )

    assert updated.metadata.to_dict() == {"a": "1", "c": "3"}
    assert updated.name == "New"
    cleared = stripe_client.v1.customers.update(customer.id, {"metadata": ""}, opts)
    assert cleared.metadata.to_dict() == {}


def test_update_emits_customer_updated_with_previous_attributes(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    customer = stripe_client.v1.customers.create({"email": "old@example.com"}, opts)

    stripe_client.v1.customers.update(customer.id, {"email": "new@example.com"}, opts)

    event = stripe_client.v1.events.list({"type": "customer.updated"}, opts).data[0]
    assert event.data.object.email == "new@example.com"
    assert event.data.previous_attributes.to_dict() == {"email": "old@example.com"}


def test_a_deleted_customer_is_retrievable_as_deleted_and_unusable(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    customer = stripe_client.v1.customers.create({}, opts)

    deleted = stripe_client.v1.customers.delete(customer.id, None, opts)

    assert deleted.deleted is True
    assert stripe_client.v1.customers.retrieve(customer.id, None, opts).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoices.create({"customer": customer.id}, opts)
    assert excinfo.value.code == "resource_missing"
    assert excinfo.value.param == "customer"
    assert customer.id not in [
        c.id for c in stripe_client.v1.customers.list({}, opts).data
    ]


def test_list_filters_by_email(stripe_client: Any, opts: dict[str, Any]) -> None:
    stripe_client.v1.customers.create({"email": "a@example.com"}, opts)
    wanted = stripe_client.v1.customers.create({"email": "b@example.com"}, opts)

    found = stripe_client.v1.customers.list({"email": "b@example.com"}, opts)

    assert [c.id for c in found.data] == [wanted.id]


def test_an_unknown_customer_is_a_404_resource_missing(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.customers.retrieve("cus_doesnotexist", None, opts)

    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"
    assert excinfo.value.user_message == "No such customer: 'cus_doesnotexist'"


def test_default_payment_method_must_be_attached_to_the_customer(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    customer = stripe_client.v1.customers.create({}, opts)
    stranger = stripe_client.v1.customers.create({}, opts)
    pm = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": stranger.id}, opts
    )

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.customers.update(
            customer.id, {"invoice_settings": {"default_payment_method": pm.id}}, opts
        )

    assert excinfo.value.param == "invoice_settings[default_payment_method]"


def test_create_with_a_payment_method_attaches_it_and_can_make_it_the_default(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    customer = stripe_client.v1.customers.create(
        {
            "payment_method": "pm_card_mastercard",
            "invoice_settings": {"default_payment_method": "pm_card_mastercard"},
        },
        opts,
    )

    default = customer.invoice_settings.default_payment_method
    assert default.startswith("pm_") and default != "pm_card_mastercard"
    pm = stripe_client.v1.payment_methods.retrieve(default, None, opts)
    assert (pm.customer, pm.card.brand, pm.card.last4) == (
        customer.id,
        "mastercard",
        "4444",
    )
