"""apimon's one seam to Stripe: the only module that imports `stripe`.

Everything else talks to Stripe through `get_client()` and the helpers here, so the
same code runs against real Stripe (test or live keys) and against the bundled
emulator (no STRIPE_SECRET_KEY), in a separate process or inside the test process.

    from apimon import stripe_client as sc

    client = sc.get_client()
    invoice = client.v1.invoices.create(
        {"customer": customer_id, "auto_advance": True, "application_fee_amount": fee},
        sc.request_options(
            account=acct_id, idempotency_key=sc.idempotency_key("invoice", pk, "create")
        ),
    )

Errors: catch `sc.StripeError` (or the specific classes re-exported below).
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import stripe
from django.conf import settings
from stripe import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    CardError,
    IdempotencyError,
    InvalidRequestError,
    PermissionError,
    RateLimitError,
    SignatureVerificationError,
    StripeError,
)
from stripe.oauth_error import InvalidGrantError, OAuthError

from apimon import jsonbody

__all__ = [
    "API_VERSION",
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "CardError",
    "IdempotencyError",
    "InvalidGrantError",
    "InvalidRequestError",
    "OAuthError",
    "PermissionError",
    "RateLimitError",
    "SignatureVerificationError",
    "StripeError",
    "construct_event",
    "emulator_dashboard_url",
    "get_client",
    "idempotency_key",
    "oauth_authorize_url",
    "oauth_deauthorize",
    "oauth_exchange",
    "request_options",
    "reset_for_tests",
    "verify_webhook",
]

# The API version of the pinned stripe-python release (requirements.txt). The objects
# apimon reads have this version's shapes; bumping stripe-python means reviewing them
# (tests/stripe_emulator/test_contract.py fails until this is updated).
API_VERSION = "2026-10-28.endive"

# Stripe accepts idempotency keys of up to 255 characters.
_MAX_IDEMPOTENCY_KEY = 255

_lock = threading.Lock()
_client: stripe.StripeClient | None = None


def _build_client() -> stripe.StripeClient:
    options: dict[str, Any] = {
        "client_id": settings.STRIPE_CONNECT_CLIENT_ID,
        "stripe_version": API_VERSION,
        "max_network_retries": settings.STRIPE_MAX_NETWORK_RETRIES,
    }
    if settings.STRIPE_EMULATOR:
        url = settings.STRIPE_EMULATOR_URL
        options["base_addresses"] = {"api": url, "connect": url, "files": url}
        if settings.STRIPE_EMULATOR_IN_PROCESS:
            from stripe_emulator.inprocess import (
                InProcessHTTPClient,
                configure_inprocess_emulator,
            )

            configure_inprocess_emulator(
                client_id=settings.STRIPE_CONNECT_CLIENT_ID,
                webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
                webhook_url=_webhook_url(),
            )
            options["http_client"] = InProcessHTTPClient()
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, **options)


def _webhook_url() -> str:
    return getattr(
        settings,
        "STRIPE_EMULATOR_WEBHOOK_URL",
        settings.SITE_URL + "/billing/stripe/webhook/",
    )


def get_client() -> stripe.StripeClient:
    """The process's StripeClient, built once from settings."""
    global _client
    with _lock:
        if _client is None:
            _client = _build_client()
        return _client


def reset_for_tests() -> None:
    """Drop the cached client (after changing Stripe settings in a test)."""
    global _client
    with _lock:
        _client = None


def request_options(
    *, account: str | None = None, idempotency_key: str | None = None
) -> dict[str, Any]:
    """Per-request options: act on a connected account (`Stripe-Account`), and make a
    write safe to retry (`Idempotency-Key`)."""
    options: dict[str, Any] = {}
    if account:
        options["stripe_account"] = account
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def object_id(value: Any) -> str | None:
    """The id in an expandable field: the id itself, or the expanded object's."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):  # StripeObject is a dict too
        return value.get("id")
    return getattr(value, "id", None)


def idempotency_key(*parts: object) -> str:
    """A key derived from the local row and the action, e.g. `invoice:42:finalize`.

    The same parts give the same key, so a retried job repeats the same Stripe request
    and Stripe answers it without doing it twice. Over-long keys are hashed."""
    if not parts:
        raise ValueError("an idempotency key needs at least one part")
    key = ":".join(str(part) for part in parts)
    if len(key) > _MAX_IDEMPOTENCY_KEY:
        key = key[:190] + ":" + hashlib.sha256(key.encode()).hexdigest()
    return key


def oauth_authorize_url(
    *, state: str, redirect_uri: str, stripe_user: dict[str, str] | None = None
) -> str:
    """Where "Connect with Stripe" sends the owner (Standard account, read_write)."""
    params: dict[str, Any] = {
        "response_type": "code",
        "scope": "read_write",
        "state": state,
        "redirect_uri": redirect_uri,
    }
    if stripe_user:
        params["stripe_user"] = stripe_user
    return get_client().oauth.authorize_url(params)


def oauth_exchange(code: str) -> dict[str, Any]:
    """Trade the callback's `code` for the connection; `stripe_user_id` is the account.

    Raises `InvalidGrantError` for an unknown, expired or already used code."""
    token = get_client().oauth.token({"grant_type": "authorization_code", "code": code})
    return token.to_dict()


def oauth_deauthorize(account_id: str) -> None:
    """Disconnect a connected account from the platform."""
    get_client().oauth.deauthorize({"stripe_user_id": account_id})


# How old a webhook's signature may be (Stripe's own default) and how far ahead of
# this server's clock: Stripe's libraries check only the past, so a signature made
# with a leaked secret and a timestamp far ahead could be replayed for years.
# Five minutes ahead covers clocks that disagree by minutes, no more.
WEBHOOK_TOLERANCE = 300
WEBHOOK_FUTURE_SKEW = 300


def _signed_at(sig_header: str) -> int:
    """The `t=` timestamp of a Stripe-Signature header that verified."""
    for item in sig_header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t":
            return int(value)
    raise SignatureVerificationError("No timestamp", sig_header)


def verify_webhook(payload: bytes, sig_header: str) -> dict[str, Any]:
    """Verify a webhook's `Stripe-Signature` with the endpoint secret and parse its
    body, a JSON object (at most `jsonbody.MAX_DEPTH` levels deep).

    Raises SignatureVerificationError (bad signature; signed more than
    WEBHOOK_TOLERANCE seconds ago or more than WEBHOOK_FUTURE_SKEW seconds ahead)
    or ValueError (not UTF-8, not JSON, too deep, not an object)."""
    stripe.WebhookSignature.verify_header(
        payload, sig_header, settings.STRIPE_WEBHOOK_SECRET, WEBHOOK_TOLERANCE
    )
    signed_at = _signed_at(sig_header)
    if signed_at > time.time() + WEBHOOK_FUTURE_SKEW:
        raise SignatureVerificationError(
            f"Timestamp too far in the future ({signed_at})", sig_header, payload
        )
    data = jsonbody.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("A webhook's body is a JSON object (an event).")
    return data


def construct_event(payload: bytes, sig_header: str) -> stripe.Event:
    """`verify_webhook`, as a stripe.Event."""
    verify_webhook(payload, sig_header)
    return get_client().construct_event(
        payload, sig_header, settings.STRIPE_WEBHOOK_SECRET, WEBHOOK_TOLERANCE
    )


def emulator_dashboard_url() -> str | None:
    """The emulator's dashboard (accounts, events, deliveries, time controls), or None
    when apimon talks to real Stripe."""
    return settings.STRIPE_EMULATOR_URL + "/" if settings.STRIPE_EMULATOR else None
