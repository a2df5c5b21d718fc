from __future__ import annotations

from typing import Any

import pytest
import stripe


@pytest.fixture
def customer(stripe_client: Any, opts: dict[str, Any]) -> Any:
    return stripe_client.v1.customers.create({"email": "sub@example.com"}, opts)


def test_attaching_a_test_payment_method_id_makes_a_new_card(
    stripe_client: Any, opts: dict[str, Any], customer: Any
) -> None:
    pm = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer.id}, opts
    )

    assert pm.id.startswith("pm_") and pm.id != "pm_card_visa"
    assert (pm.type, pm.customer) == ("card", customer.id)
    assert (pm.card.brand, pm.card.last4, pm.card.funding) == ("visa", "4242", "credit")
    assert pm.card.exp_year > 2025
    again = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer.id}, opts
    )
    assert again.id != pm.id
    assert pm.card.fingerprint == again.card.fingerprint


@pytest.mark.parametrize(
    ("pm_id", "code", "decline_code"),
    [
        ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
        ("pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card"),
    ],
)
def test_cards_that_decline_on_attach_raise_a_card_error(
    stripe_client: Any,
    opts: dict[str, Any],
    customer: Any,
    pm_id: str,
    code: str,
    decline_code: str,
) -> None:
    with pytest.raises(stripe.CardError) as excinfo:
        stripe_client.v1.payment_methods.attach(pm_id, {"customer": customer.id}, opts)

    assert excinfo.value.http_status == 402
    assert excinfo.value.code == code
    assert excinfo.value.error.decline_code == decline_code
    assert (
        stripe_client.v1.customers.payment_methods.list(customer.id, None, opts).data
        == []
    )


@pytest.mark.parametrize(
    "pm_id",
    ["pm_card_chargeCustomerFail", "pm_card_visa_chargeDeclinedInsufficientFunds"],
)
def test_cards_that_fail_only_on_charge_attach_fine(
    stripe_client: Any, opts: dict[str, Any], customer: Any, pm_id: str
) -> None:
    pm = stripe_client.v1.payment_methods.attach(pm_id, {"customer": customer.id}, opts)

    assert pm.customer == customer.id


def test_list_retrieve_and_detach(
    stripe_client: Any, opts: dict[str, Any], customer: Any
) -> None:
    first = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer.id}, opts
    )
    second = stripe_client.v1.payment_methods.attach(
        "pm_card_amex", {"customer": customer.id}, opts
    )
    stripe_client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": first.id}}, opts
    )

    listed = stripe_client.v1.customers.payment_methods.list(
        customer.id, {"type": "card"}, opts
    )
    assert [pm.id for pm in listed.data] == [second.id, first.id]
    same = stripe_client.v1.payment_methods.list({"customer": customer.id}, opts)
    assert [pm.id for pm in same.data] == [second.id, first.id]
    one = stripe_client.v1.customers.payment_methods.retrieve(
        customer.id, second.id, None, opts
    )
    assert one.card.brand == "amex"

    detached = stripe_client.v1.payment_methods.detach(first.id, None, opts)

    assert detached.customer is None
    fresh = stripe_client.v1.customers.retrieve(customer.id, None, opts)
    assert fresh.invoice_settings.default_payment_method is None
    remaining = stripe_client.v1.customers.payment_methods.list(customer.id, None, opts)
    assert [pm.id for pm in remaining.data] == [second.id]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.payment_methods.attach(
            first.id, {"customer": customer.id}, opts
        )


def test_a_card_attached_to_one_customer_cannot_be_attached_to_another(
    stripe_client: Any, opts: dict[str, Any], customer: Any
) -> None:
    other = stripe_client.v1.customers.create({}, opts)
    pm = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer.id}, opts
    )

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.payment_methods.attach(pm.id, {"customer": other.id}, opts)

    assert "already been attached" in excinfo.value.user_message


def test_a_payment_method_from_a_test_token(
    stripe_client: Any, opts: dict[str, Any]
) -> None:
    pm = stripe_client.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"token": "tok_mastercard"},
            "billing_details": {"name": "Jenny Rosen"},
        },
        opts,
    )

    assert (pm.card.brand, pm.card.last4, pm.customer) == ("mastercard", "4444", None)
    assert pm.billing_details.name == "Jenny Rosen"


def test_update_changes_metadata_and_emits_updated(
    stripe_client: Any, opts: dict[str, Any], customer: Any
) -> None:
    pm = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer.id}, opts
    )

    stripe_client.v1.payment_methods.update(
        pm.id, {"metadata": {"label": "work"}}, opts
    )

    event = stripe_client.v1.events.list({"type": "payment_method.updated"}, opts).data[
        0
    ]
    assert event.data.object.metadata.label == "work"
    assert event.data.previous_attributes.to_dict() == {"metadata": {}}
    types = [e.type for e in stripe_client.v1.events.list({}, opts).data]
    assert "payment_method.attached" in types


def test_a_setup_intent_confirms_a_card_for_a_customer(
    stripe_client: Any, opts: dict[str, Any], customer: Any
) -> None:
    intent = stripe_client.v1.setup_intents.create(
        {
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
            "usage": "off_session",
        },
        opts,
    )

    assert intent.id.startswith("seti_") and intent.status == "succeeded"
    assert intent.client_secret.startswith(intent.id + "_secret_")
    pm = stripe_client.v1.payment_methods.retrieve(intent.payment_method, None, opts)
    assert pm.customer == customer.id
    types = [e.type for e in stripe_client.v1.events.list({}, opts).data]
    assert "setup_intent.succeeded" in types


def test_a_declined_setup_intent_keeps_the_failure(
    stripe_client: Any, opts: dict[str, Any], customer: Any
) -> None:
    intent = stripe_client.v1.setup_intents.create({"customer": customer.id}, opts)

    with pytest.raises(stripe.CardError) as excinfo:
        stripe_client.v1.setup_intents.confirm(
            intent.id, {"payment_method": "pm_card_visa_chargeDeclined"}, opts
        )

    assert excinfo.value.code == "card_declined"
    failed = stripe_client.v1.setup_intents.retrieve(intent.id, None, opts)
    assert failed.status == "requires_payment_method"
    assert failed.last_setup_error.decline_code == "generic_decline"
    types = [e.type for e in stripe_client.v1.events.list({}, opts).data]
    assert "setup_intent.setup_failed" in types
    ok = stripe_client.v1.setup_intents.confirm(
        intent.id, {"payment_method": "pm_card_visa"}, opts
    )
    assert ok.status == "succeeded"
    canceled = stripe_client.v1.setup_intents.create({}, opts)
    assert (
        stripe_client.v1.setup_intents.cancel(canceled.id, None, opts).status
        == "canceled"
    )
