"""apimon.stripe_client: the one module of apimon that talks to Stripe."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import stripe
from stripe import oauth_error

from apimon import stripe_client as sc
from apimon.payment_errors import (
    PaymentProviderError,
    StripeAccessDenied,
    StripeCardDeclined,
    StripeGrantInvalid,
    StripeInvalidRequest,
    StripeOAuthRefused,
    StripeRefused,
    StripeSignatureInvalid,
    StripeUnavailable,
)
from stripe_emulator.inprocess import InProcessHTTPClient

ROOT = Path(__file__).resolve().parents[2]
# Top-level packages of the project that are not apimon (they may use stripe freely).
NOT_APIMON = {"stripe_emulator", "tests", ".venv", "node_modules", "var", "bench"}


def test_the_client_talks_to_the_in_process_emulator_in_tests() -> None:
    client = sc.get_client()

    options = client._requestor._options
    assert options.api_key == "sk_test_emulator_platform"
    assert options.stripe_version == sc.API_VERSION
    assert options.max_network_retries == 2
    assert {options.base_addresses[name] for name in ("api", "connect", "files")} == {
        "http://127.0.0.1:12111"
    }
    assert isinstance(client._requestor._client, InProcessHTTPClient)
    assert sc.get_client() is client
    sc.reset_for_tests()
    assert sc.get_client() is not client


def test_with_real_keys_it_uses_stripes_own_hosts(settings: Any) -> None:
    settings.STRIPE_EMULATOR = False
    settings.STRIPE_SECRET_KEY = "sk_test_real_account_key"
    settings.STRIPE_CONNECT_CLIENT_ID = "ca_real"
    settings.STRIPE_MAX_NETWORK_RETRIES = 3
    sc.reset_for_tests()
    try:
        client = sc.get_client()  # built only: nothing is sent to Stripe
        options = client._requestor._options
        assert options.base_addresses["api"] == "https://api.stripe.com"
        assert options.base_addresses["connect"] == "https://connect.stripe.com"
        assert options.api_key == "sk_test_real_account_key"
        assert options.max_network_retries == 3
        assert not isinstance(client._requestor._client, InProcessHTTPClient)
        assert sc.oauth_authorize_url(
            state="s", redirect_uri="https://x.test/cb"
        ).startswith("https://connect.stripe.com/oauth/authorize?")
        assert "client_id=ca_real" in sc.oauth_authorize_url(
            state="s", redirect_uri="https://x"
        )
        assert sc.emulator_dashboard_url() is None
    finally:
        sc.reset_for_tests()


def test_request_options() -> None:
    assert sc.request_options() == {}
    assert sc.request_options(account="acct_1", idempotency_key="invoice:1:create") == {
        "stripe_account": "acct_1",
        "idempotency_key": "invoice:1:create",
    }


def test_the_dashboard_url_in_emulator_mode() -> None:
    assert sc.emulator_dashboard_url() == "http://127.0.0.1:12111/"


def test_construct_event_rejects_a_bad_signature(stripe_emulator: Any) -> None:
    with pytest.raises(StripeSignatureInvalid):
        sc.construct_event(b'{"object": "event"}', "t=1,v1=00")


# --- Errors: translated once, here --------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (stripe.APIConnectionError("network down"), StripeUnavailable),
        (stripe.APIError("boom", http_status=500), StripeUnavailable),
        (stripe.RateLimitError("slow down", http_status=429), StripeUnavailable),
        (stripe.CardError("declined", "card", "card_declined"), StripeCardDeclined),
        (
            stripe.InvalidRequestError("no such", "id", http_status=404),
            StripeInvalidRequest,
        ),
        (stripe.IdempotencyError("key reused", http_status=400), StripeInvalidRequest),
        (stripe.AuthenticationError("bad key", http_status=401), StripeAccessDenied),
        (stripe.PermissionError("no access", http_status=403), StripeAccessDenied),
        (oauth_error.InvalidGrantError("invalid_grant", "used"), StripeGrantInvalid),
        (oauth_error.OAuthError("invalid_request", "no"), StripeOAuthRefused),
        (stripe.SignatureVerificationError("bad", "t=1"), StripeSignatureInvalid),
        (stripe.StripeError("odd", http_status=409), StripeRefused),
        (stripe.StripeError("odd", http_status=503), StripeUnavailable),
    ],
)
def test_each_stripe_error_becomes_one_of_apimons(error, kind) -> None:
    translated = sc.translate(error)

    assert type(translated) is kind
    assert isinstance(translated, PaymentProviderError)
    assert (translated.http_status, translated.user_message) == (
        error.http_status,
        error.user_message,
    )


def test_the_client_raises_apimons_errors_with_stripes_details(
    stripe_emulator: Any,
) -> None:
    with pytest.raises(StripeInvalidRequest) as refused:
        sc.get_client().v1.customers.retrieve("cus_doesnotexist")

    assert refused.value.http_status == 404
    assert refused.value.code == "resource_missing"
    assert "No such customer" in refused.value.user_message
    assert isinstance(refused.value.__cause__, stripe.InvalidRequestError)


def test_a_replaced_client_method_is_translated_and_put_back(
    stripe_emulator: Any, monkeypatch: Any
) -> None:
    customers = sc.get_client().v1.customers

    def down(*args: Any, **kwargs: Any) -> None:
        raise stripe.APIConnectionError("network down")

    monkeypatch.setattr(customers, "list", down)
    with pytest.raises(StripeUnavailable):
        sc.get_client().v1.customers.list()
    monkeypatch.undo()

    assert sc.get_client().v1.customers.list().data == []


def test_paging_raises_apimons_errors_too(stripe_emulator: Any, monkeypatch) -> None:
    page = sc.get_client().v1.customers.list()

    def down(*args: Any, **kwargs: Any) -> None:
        raise stripe.APIConnectionError("network down")

    monkeypatch.setattr(type(page), "auto_paging_iter", down)
    with pytest.raises(StripeUnavailable):
        list(sc.each(page))


def _imports_stripe(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == "stripe" for alias in node.names
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] == "stripe"
        ):
            return True
    return False


def test_nothing_else_in_apimon_imports_stripe() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if path.relative_to(ROOT).parts[0] not in NOT_APIMON
        and path != ROOT / "apimon" / "stripe_client.py"
        and _imports_stripe(path)
    ]

    assert offenders == [], "only apimon/stripe_client.py may import stripe"


def test_use_emulator_sends_every_call_to_that_emulator_until_the_block_ends(
    tmp_path,
) -> None:
    from stripe_emulator.config import EmulatorConfig
    from stripe_emulator.emulator import Emulator

    other = Emulator(EmulatorConfig(db_path=str(tmp_path / "s.sqlite3")))
    default = sc.raw_client()
    try:
        with sc.use_emulator(other):
            customer = sc.get_client().v1.customers.create({"email": "a@b.example"})
        assert other.store.get(customer.id) is not None
        assert sc.raw_client() is default
        with pytest.raises(stripe.InvalidRequestError):  # not in the usual emulator
            default.v1.customers.retrieve(customer.id)
    finally:
        other.close()


def test_use_emulator_never_replaces_real_stripe(settings) -> None:
    settings.STRIPE_EMULATOR = False
    with pytest.raises(RuntimeError), sc.use_emulator(object()):
        pass


def test_a_stripe_that_does_not_answer_is_given_up_after_stripe_timeout(
    settings: Any, stripe_emulator: Any
) -> None:
    """A Stripe request that hangs ends after STRIPE_TIMEOUT seconds with a
    connection error (which the push retries with backoff and the store shows as
    "not reachable"), instead of holding a subscriber's page for stripe-python's
    default 80 s per try."""
    import time

    from werkzeug.test import Client

    url, server = stripe_emulator.serve_in_thread()
    try:
        settings.STRIPE_EMULATOR_IN_PROCESS = False
        settings.STRIPE_EMULATOR_URL = url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        settings.STRIPE_TIMEOUT = 0.5
        sc.reset_for_tests()
        Client(stripe_emulator.app).post(
            "/_emulator/faults", data={"mode": "timeout", "delay": "3", "count": "1"}
        )
        started = time.monotonic()
        with pytest.raises(StripeUnavailable):
            sc.get_client().v1.customers.create({"email": "a@example.com"})
        assert time.monotonic() - started < 2.5
    finally:
        server.shutdown()
        sc.reset_for_tests()
