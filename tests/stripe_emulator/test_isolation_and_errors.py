"""Separate data per account, authentication, and Stripe's error shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import stripe
from werkzeug.test import Client

from apimon import stripe_client as sc
from stripe_emulator.inprocess import InProcessHTTPClient
from tests.fixtures.stripe import connect_account

URL = "http://127.0.0.1:12111"


def client_with_key(key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        key, http_client=InProcessHTTPClient(), base_addresses={"api": URL}
    )


def test_each_account_sees_only_its_own_objects(
    stripe_client: Any, stripe_emulator: Any
) -> None:
    alice = sc.request_options(
        account=connect_account(stripe_emulator, email="a@a.test")
    )
    bob = sc.request_options(account=connect_account(stripe_emulator, email="b@b.test"))
    customer = stripe_client.v1.customers.create({"email": "c@alice.test"}, alice)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.customers.retrieve(customer.id, None, bob)
    assert excinfo.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.customers.retrieve(customer.id)  # the platform's own data
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.create({"customer": customer.id}, bob)
    assert stripe_client.v1.customers.list({}, bob).data == []
    assert stripe_client.v1.customers.list().data == []
    assert [c.id for c in stripe_client.v1.customers.list({}, alice).data] == [
        customer.id
    ]
    assert all(
        e.account == alice["stripe_account"]
        for e in stripe_client.v1.events.list({}, alice).data
    )
    assert "customer.created" not in [
        e.type for e in stripe_client.v1.events.list({}, bob).data
    ]


def test_an_unknown_stripe_account_is_a_403(stripe_client: Any) -> None:
    with pytest.raises(stripe.PermissionError) as excinfo:
        stripe_client.v1.customers.list(
            {}, sc.request_options(account="acct_1Unknown000000")
        )

    error = excinfo.value
    assert error.http_status == 403
    # stripe-python's PermissionError does not keep the code; the body has it.
    assert error.json_body["error"]["code"] == "account_invalid"
    assert error.json_body["error"]["type"] == "invalid_request_error"
    assert error.user_message == (
        "The provided key 'sk_test_*************form' does not have access to account "
        "'acct_1Unknown000000' (or that account does not exist). Application access "
        "may have been revoked."
    )


def test_a_missing_or_invalid_key_is_a_401(stripe_emulator: Any) -> None:
    with pytest.raises(stripe.AuthenticationError) as excinfo:
        client_with_key("sk_live_abcdefgh1234").v1.customers.list()
    assert excinfo.value.http_status == 401
    assert (
        excinfo.value.user_message == "Invalid API Key provided: sk_live_********1234"
    )

    response = Client(stripe_emulator.app).get("/v1/customers")
    assert response.status_code == 401
    body = json.loads(response.get_data())
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("You did not provide an API key.")


def test_any_test_mode_secret_key_is_the_platform(stripe_emulator: Any) -> None:
    created = client_with_key("sk_test_anything").v1.customers.create({})

    assert sc.get_client().v1.customers.retrieve(created.id).id == created.id


def test_basic_auth_works_like_curl_u(stripe_emulator: Any) -> None:
    import base64

    auth = base64.b64encode(b"sk_test_emulator_platform:").decode()
    response = Client(stripe_emulator.app).get(
        "/v1/customers", headers={"Authorization": f"Basic {auth}"}
    )

    assert response.status_code == 200
    assert json.loads(response.get_data())["object"] == "list"


@pytest.mark.parametrize(
    ("params", "message", "param", "code"),
    [
        (
            {"bogus": "1"},
            "Received unknown parameter: bogus",
            "bogus",
            "parameter_unknown",
        ),
        (
            {"address": {"planet": "Mars"}},
            "Received unknown parameter: address[planet]",
            "address[planet]",
            "parameter_unknown",
        ),
        (
            {"balance": "lots"},
            "Invalid integer: lots",
            "balance",
            "parameter_invalid_integer",
        ),
        (
            {"tax_exempt": "sometimes"},
            "Invalid tax_exempt: must be one of exempt, none or reverse",
            "tax_exempt",
            None,
        ),
    ],
)
def test_bad_parameters_are_rejected_like_stripe(
    stripe_client: Any,
    params: dict[str, Any],
    message: str,
    param: str,
    code: str | None,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.customers.create(params)

    error = excinfo.value
    assert (error.http_status, error.user_message, error.param, error.code) == (
        400,
        message,
        param,
        code,
    )
    assert error.json_body["error"]["type"] == "invalid_request_error"
    if code:
        assert error.json_body["error"]["doc_url"].startswith(
            "https://stripe.com/docs/error-codes/"
        )


def test_a_missing_required_parameter(stripe_client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.products.create({})  # name is required

    assert excinfo.value.code == "parameter_missing"
    assert excinfo.value.user_message == "Missing required param: name."
    assert excinfo.value.param == "name"


def test_an_unknown_url_is_a_404_in_stripes_words(stripe_client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.raw_request("get", "/v1/subscriptions")

    assert excinfo.value.http_status == 404
    assert excinfo.value.user_message.startswith(
        "Unrecognized request URL (GET: /v1/subscriptions)."
    )


def test_responses_carry_a_request_id_and_the_api_version(stripe_client: Any) -> None:
    customer = stripe_client.v1.customers.create({})

    headers = customer.last_response.headers
    assert headers["request-id"].startswith("req_")
    assert headers["stripe-version"] == sc.API_VERSION


def test_search_is_not_mistaken_for_an_id(stripe_client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.customers.search({"query": "email:'a@b.c'"})

    assert "does not implement this endpoint" in excinfo.value.user_message


def test_an_emulator_bug_is_an_api_error_that_is_not_retried(
    stripe_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stripe_emulator.api import customers

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(customers.objects, "customer", broken)

    with pytest.raises(stripe.APIError) as excinfo:
        stripe_client.v1.customers.create({})

    assert excinfo.value.http_status == 500
    assert "boom" in excinfo.value.user_message
    assert excinfo.value.headers["stripe-should-retry"] == "false"
