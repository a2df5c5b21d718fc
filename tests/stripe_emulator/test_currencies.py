"""Currencies Stripe cannot charge: the emulator refuses them as Stripe does, and
agrees with apimon's rule (`pricing.stripe_money.stripe_can_charge`)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from apimon import stripe_client as sc
from pricing.currencies import CURRENCIES
from pricing.stripe_money import stripe_can_charge
from stripe_emulator import money


@pytest.fixture
def account(stripe_client: Any, stripe_account: str) -> dict[str, Any]:
    return sc.request_options(account=stripe_account)


def refused(call, param: str = "currency") -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        call()
    error = excinfo.value
    assert error.http_status == 400
    assert error.error.type == "invalid_request_error"
    assert error.error.param == param
    return error


@pytest.mark.parametrize("currency", ["iqd", "LYD"])
def test_a_price_invoice_or_item_in_a_currency_stripe_cannot_charge_is_refused(
    stripe_client: Any, account: dict[str, Any], currency: str
) -> None:
    product = stripe_client.v1.products.create({"name": "Weather"}, account)
    customer = stripe_client.v1.customers.create({"email": "c@x.test"}, account)

    error = refused(
        lambda: stripe_client.v1.prices.create(
            {"product": product.id, "currency": currency, "unit_amount": 1000},
            account,
        )
    )
    assert f"Invalid currency: {currency.lower()}" in error.user_message
    refused(
        lambda: stripe_client.v1.invoices.create(
            {"customer": customer.id, "currency": currency}, account
        )
    )
    refused(
        lambda: stripe_client.v1.invoice_items.create(
            {"customer": customer.id, "currency": currency, "amount": 1000}, account
        )
    )
    assert stripe_client.v1.prices.list({}, account).data == []
    assert stripe_client.v1.invoices.list({}, account).data == []


@pytest.mark.parametrize("currency", ["bhd", "kwd", "jod", "omr", "tnd"])
def test_three_decimal_currencies_stripe_charges_are_accepted(
    stripe_client: Any, account: dict[str, Any], currency: str
) -> None:
    product = stripe_client.v1.products.create({"name": "Weather"}, account)
    price = stripe_client.v1.prices.create(
        {"product": product.id, "currency": currency, "unit_amount": 1230}, account
    )
    assert (price.currency, price.unit_amount) == (currency, 1230)


def test_the_emulator_and_apimon_agree_on_what_stripe_can_charge(
    stripe_client: Any, account: dict[str, Any]
) -> None:
    product = stripe_client.v1.products.create({"name": "Weather"}, account)
    accepted = set()
    for code in CURRENCIES:
        try:
            stripe_client.v1.prices.create(
                {"product": product.id, "currency": code, "unit_amount": 100}, account
            )
        except stripe.InvalidRequestError:
            continue
        accepted.add(code)

    assert accepted == {code for code in CURRENCIES if stripe_can_charge(code)}
    assert {c for c in CURRENCIES if not stripe_can_charge(c)} == money.NOT_ON_STRIPE


def test_the_emulator_knows_the_same_iso_4217_list_as_apimon() -> None:
    assert set(CURRENCIES) == money.ISO_4217
    assert set(CURRENCIES) - money.NOT_ON_STRIPE == money.STRIPE_CURRENCIES


@pytest.mark.parametrize("currency", ["xyz", "XYZ", "xau", "xts", "us", "usdd", "12$"])
def test_a_code_that_is_not_a_currency_is_refused_everywhere(
    stripe_client: Any, account: dict[str, Any], currency: str
) -> None:
    product = stripe_client.v1.products.create({"name": "Weather"}, account)
    customer = stripe_client.v1.customers.create({"email": "c@x.test"}, account)

    error = refused(
        lambda: stripe_client.v1.prices.create(
            {"product": product.id, "currency": currency, "unit_amount": 1000},
            account,
        )
    )
    assert error.user_message.startswith(
        f"Invalid currency: {currency.lower()}. Stripe currently supports these "
        "currencies: usd, aed, afn, "
    )
    assert ", iqd," not in error.user_message
    refused(
        lambda: stripe_client.v1.products.create(
            {
                "name": "Maps",
                "default_price_data": {"currency": currency, "unit_amount": 100},
            },
            account,
        ),
        "default_price_data[currency]",
    )
    refused(
        lambda: stripe_client.v1.invoices.create(
            {"customer": customer.id, "currency": currency}, account
        )
    )
    refused(
        lambda: stripe_client.v1.invoice_items.create(
            {"customer": customer.id, "currency": currency, "amount": 1000}, account
        )
    )
    refused(
        lambda: stripe_client.v1.invoice_items.create(
            {
                "customer": customer.id,
                "price_data": {
                    "currency": currency,
                    "product": product.id,
                    "unit_amount": 100,
                },
            },
            account,
        ),
        "price_data[currency]",
    )
    refused(
        lambda: stripe_client.v1.checkout.sessions.create(
            {
                "mode": "setup",
                "currency": currency,
                "customer": customer.id,
                "success_url": "http://testserver/done/",
            },
            account,
        )
    )
    refused(
        lambda: stripe_client.v1.accounts.update(
            account["stripe_account"], {"default_currency": currency}
        ),
        "default_currency",
    )
    assert stripe_client.v1.prices.list({}, account).data == []
    assert stripe_client.v1.products.list({}, account).data[0].name == "Weather"
    assert stripe_client.v1.invoices.list({}, account).data == []
    assert stripe_client.v1.invoice_items.list({}, account).data == []
    assert stripe_client.v1.checkout.sessions.list({}, account).data == []
    assert (
        stripe_client.v1.customers.retrieve(customer.id, None, account).currency is None
    )


def test_a_currency_in_upper_case_is_taken_in_lower_case(
    stripe_client: Any, account: dict[str, Any]
) -> None:
    customer = stripe_client.v1.customers.create({"email": "c@x.test"}, account)
    item = stripe_client.v1.invoice_items.create(
        {"customer": customer.id, "currency": "EUR", "amount": 1000}, account
    )
    session = stripe_client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "currency": "GBP",
            "customer": customer.id,
            "success_url": "http://testserver/done/",
        },
        account,
    )

    assert (item.currency, session.currency) == ("eur", "gbp")
