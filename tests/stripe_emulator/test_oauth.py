from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from apimon import stripe_client as sc
from apimon.payment_errors import (
    StripeAccessDenied,
    StripeGrantInvalid,
    StripeOAuthRefused,
)
from stripe_emulator import testing
from tests.fixtures.stripe import CALLBACK_URL, connect_account


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_the_authorize_url_points_at_the_emulators_connect_host() -> None:
    url = sc.oauth_authorize_url(state="xyz", redirect_uri=CALLBACK_URL)

    assert url.startswith("http://127.0.0.1:12111/oauth/authorize?")
    assert query(url) == {
        "response_type": "code",
        "client_id": "ca_emulator_apimon",
        "scope": "read_write",
        "state": "xyz",
        "redirect_uri": CALLBACK_URL,
    }


def test_the_authorize_page_offers_a_new_or_an_existing_account(
    stripe_emulator: Any,
) -> None:
    existing = connect_account(stripe_emulator, business_name="Acme Existing")
    url = sc.oauth_authorize_url(state="s", redirect_uri=CALLBACK_URL)

    status, content_type, page = testing.get_page(stripe_emulator, url)

    assert status == 200 and "text/html" in content_type
    assert "Stripe emulator" in page
    assert "Authorize access to this account" in page
    assert "Create a new Stripe account" in page
    assert "IR — Iran (not supported for payouts)" in page
    assert existing in page and "Acme Existing" in page
    assert "Deny" in page


def test_authorizing_a_new_account_returns_a_single_use_code(
    stripe_emulator: Any,
) -> None:
    url = sc.oauth_authorize_url(state="csrf-123", redirect_uri=CALLBACK_URL)

    back = testing.authorize(
        stripe_emulator,
        url,
        email="owner@acme.test",
        business_name="Acme",
        country="DE",
    )

    assert back.startswith(CALLBACK_URL + "?")
    params = query(back)
    assert params["state"] == "csrf-123" and params["scope"] == "read_write"
    assert params["code"].startswith("ac_")
    token = sc.oauth_exchange(params["code"])
    assert token["stripe_user_id"].startswith("acct_")
    assert token["access_token"].startswith("sk_test_")
    assert token["refresh_token"] and token["stripe_publishable_key"].startswith(
        "pk_test_"
    )
    assert (token["livemode"], token["scope"], token["token_type"]) == (
        False,
        "read_write",
        "bearer",
    )
    account = sc.get_client().v1.accounts.retrieve(token["stripe_user_id"])
    assert (account.email, account.country, account.default_currency) == (
        "owner@acme.test",
        "DE",
        "eur",
    )
    assert account.business_profile.name == "Acme"
    assert (
        account.charges_enabled
        and account.payouts_enabled
        and account.details_submitted
    )
    assert account.type == "standard"
    with pytest.raises(StripeGrantInvalid):
        sc.oauth_exchange(params["code"])
    with pytest.raises(StripeGrantInvalid):
        sc.oauth_exchange("ac_unknown")


def test_an_unsupported_country_connects_but_cannot_take_payments(
    stripe_emulator: Any,
) -> None:
    account_id = connect_account(stripe_emulator, country="IR")

    account = sc.get_client().v1.accounts.retrieve(account_id)

    assert account.details_submitted is True
    assert account.charges_enabled is False and account.payouts_enabled is False
    assert account.requirements.disabled_reason == "rejected.other"


def test_signing_in_to_an_existing_account_reconnects_it(stripe_emulator: Any) -> None:
    account_id = connect_account(stripe_emulator)
    sc.oauth_deauthorize(account_id)
    url = sc.oauth_authorize_url(state="s", redirect_uri=CALLBACK_URL)

    back = testing.authorize(stripe_emulator, url, existing_account=account_id)

    assert sc.oauth_exchange(query(back)["code"])["stripe_user_id"] == account_id
    assert sc.get_client().v1.accounts.retrieve(account_id).id == account_id


def test_deny_goes_back_with_access_denied(stripe_emulator: Any) -> None:
    url = sc.oauth_authorize_url(state="s1", redirect_uri=CALLBACK_URL)
    deny = url.replace("/oauth/authorize?", "/oauth/authorize/deny?")

    from werkzeug.test import Client

    response = Client(stripe_emulator.app).get(
        deny.removeprefix("http://127.0.0.1:12111")
    )

    assert response.status_code == 302
    assert query(response.headers["Location"]) == {
        "error": "access_denied",
        "error_description": "The user denied your request",
        "state": "s1",
    }


def test_an_unknown_client_id_gets_an_error_page(stripe_emulator: Any) -> None:
    url = sc.oauth_authorize_url(state="s", redirect_uri=CALLBACK_URL).replace(
        "ca_emulator_apimon", "ca_someone_else"
    )

    status, _type, page = testing.get_page(stripe_emulator, url)

    assert status == 400 and "No application matches" in page


def test_the_new_account_form_validates_its_fields(stripe_emulator: Any) -> None:
    url = sc.oauth_authorize_url(state="s", redirect_uri=CALLBACK_URL)

    with pytest.raises(testing.PageError):
        testing.authorize(stripe_emulator, url, email="not-an-email")


def test_deauthorize_disconnects_and_emits_the_event(
    stripe_emulator: Any, stripe_webhook_capture: Any
) -> None:
    account_id = connect_account(stripe_emulator)
    client = sc.get_client()
    options = sc.request_options(account=account_id)
    client.v1.customers.create({}, options)

    sc.oauth_deauthorize(account_id)

    with pytest.raises(StripeAccessDenied) as excinfo:
        client.v1.customers.list({}, options)
    assert excinfo.value.http_status == 403
    with pytest.raises(StripeOAuthRefused):
        sc.oauth_deauthorize(account_id)
    stripe_emulator.deliver_pending()
    events = stripe_webhook_capture.events()
    gone = [e for e in events if e["type"] == "account.application.deauthorized"]
    assert len(gone) == 1
    assert gone[0]["account"] == account_id
    assert gone[0]["data"]["object"] == {
        "id": "ca_emulator_apimon",
        "object": "application",
        "name": "apimon platform",
    }
    assert "account.application.authorized" in [e["type"] for e in events]


def test_the_access_token_acts_as_the_connected_account(stripe_emulator: Any) -> None:
    import stripe

    from stripe_emulator.inprocess import InProcessHTTPClient

    code = testing.oauth_connect(stripe_emulator)
    token = sc.oauth_exchange(code)
    own = stripe.StripeClient(
        token["access_token"],
        http_client=InProcessHTTPClient(),
        base_addresses={"api": "http://127.0.0.1:12111"},
    )

    customer = own.v1.customers.create({"email": "via-token@example.com"})

    options = sc.request_options(account=token["stripe_user_id"])
    assert sc.get_client().v1.customers.retrieve(customer.id, None, options).email == (
        "via-token@example.com"
    )
    sc.oauth_deauthorize(token["stripe_user_id"])
    with pytest.raises(stripe.AuthenticationError) as excinfo:
        own.v1.customers.list()
    assert "Expired API Key provided" in excinfo.value.user_message
