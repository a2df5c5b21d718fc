from __future__ import annotations

from typing import Any

import pytest
import stripe

from apimon import stripe_client as sc
from tests.fixtures.stripe import connect_account, create_customer_with_card


def test_the_same_key_and_parameters_replay_the_first_response(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    key = sc.idempotency_key("customer", 42, "create")
    options = {**opts, "idempotency_key": key}

    first = stripe_client.v1.customers.create({"email": "a@example.com"}, options)
    second = stripe_client.v1.customers.create({"email": "a@example.com"}, options)

    assert second.id == first.id
    assert second.last_response.headers["idempotent-replayed"] == "true"
    assert (
        second.last_response.headers["original-request"]
        == (first.last_response.headers["request-id"])
    )
    assert len(stripe_client.v1.customers.list({}, opts).data) == 1
    created = stripe_client.v1.events.list({"type": "customer.created"}, opts).data
    assert len(created) == 1 and created[0].request.idempotency_key == key


def test_the_same_key_with_other_parameters_is_an_idempotency_error(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    options = {**opts, "idempotency_key": "customer:1:create"}
    stripe_client.v1.customers.create({"email": "a@example.com"}, options)

    with pytest.raises(stripe.IdempotencyError) as excinfo:
        stripe_client.v1.customers.create({"email": "b@example.com"}, options)

    assert excinfo.value.http_status == 400
    assert excinfo.value.json_body["error"]["type"] == "idempotency_error"
    assert "same parameters" in excinfo.value.user_message
    with pytest.raises(stripe.IdempotencyError) as excinfo:
        stripe_client.v1.products.create({"name": "x"}, options)
    assert "same endpoint" in excinfo.value.user_message


def test_keys_are_scoped_per_account(stripe_client: Any, stripe_emulator: Any) -> None:
    one = sc.request_options(
        account=connect_account(stripe_emulator), idempotency_key="customer:1:create"
    )
    two = sc.request_options(
        account=connect_account(stripe_emulator), idempotency_key="customer:1:create"
    )

    a = stripe_client.v1.customers.create({"email": "x@example.com"}, one)
    b = stripe_client.v1.customers.create({"email": "y@example.com"}, two)

    assert a.id != b.id


def test_a_declined_payment_is_replayed_not_retried(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(
        stripe_account, card="pm_card_chargeCustomerFail"
    )
    invoice = stripe_client.v1.invoices.create({"customer": customer}, opts)
    stripe_client.v1.invoice_items.create(
        {"customer": customer, "invoice": invoice.id, "amount": 500}, opts
    )
    stripe_client.v1.invoices.finalize_invoice(invoice.id, None, opts)
    options = {**opts, "idempotency_key": f"invoice:{invoice.id}:pay"}

    with pytest.raises(stripe.CardError) as first:
        stripe_client.v1.invoices.pay(invoice.id, None, options)
    with pytest.raises(stripe.CardError) as second:
        stripe_client.v1.invoices.pay(invoice.id, None, options)

    assert second.value.error.charge == first.value.error.charge
    assert second.value.headers["idempotent-replayed"] == "true"
    assert stripe_client.v1.invoices.retrieve(invoice.id, None, opts).attempt_count == 1


def test_a_request_rejected_by_validation_is_not_remembered(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    options = {**opts, "idempotency_key": "product:1:create"}
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.products.create({"name": "x", "bogus": "1"}, options)

    product = stripe_client.v1.products.create({"name": "x"}, options)

    assert product.name == "x"


def test_keys_expire_after_24_hours(
    stripe_client: Any, opts: dict[str, Any], stripe_emulator: Any
) -> None:
    options = {**opts, "idempotency_key": "customer:9:create"}
    first = stripe_client.v1.customers.create({}, options)

    stripe_emulator.advance(24 * 3600 + 1)

    assert stripe_client.v1.customers.create({}, options).id != first.id


def test_every_post_from_stripe_python_carries_a_key_anyway(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    customer = stripe_client.v1.customers.create({}, opts)

    assert customer.last_response.headers["idempotency-key"]


def test_idempotency_keys_are_derived_from_parts() -> None:
    assert sc.idempotency_key("invoice", 42, "finalize") == "invoice:42:finalize"
    long_key = sc.idempotency_key("x" * 300)
    assert len(long_key) <= 255
    assert long_key == sc.idempotency_key("x" * 300)
    with pytest.raises(ValueError):
        sc.idempotency_key()
