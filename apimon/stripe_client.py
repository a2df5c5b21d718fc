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

Errors: every call through `get_client()` (and the OAuth and webhook helpers)
raises apimon's own exceptions (`apimon.payment_errors`: `StripeUnavailable`,
`StripeRefused` and its kinds, under `PaymentProviderError`), never stripe-python's:
they are translated here, once.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import stripe
from django.conf import settings
from stripe import oauth_error
from stripe._stripe_service import StripeService

from apimon import jsonbody
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

if TYPE_CHECKING:
    from stripe_emulator.emulator import Emulator

__all__ = [
    "API_VERSION",
    "advance_emulator_clock",
    "construct_event",
    "each",
    "emulator_dashboard_url",
    "get_client",
    "idempotency_key",
    "oauth_authorize_url",
    "oauth_deauthorize",
    "oauth_exchange",
    "raw_client",
    "request_options",
    "reset_for_tests",
    "use_emulator",
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
_guarded: _Guarded | None = None


# --- Errors: stripe-python's, translated once ------------------------------------

# In order: the first class an error is an instance of decides.
_TRANSLATIONS: tuple[tuple[type[Exception], type[PaymentProviderError]], ...] = (
    (stripe.APIConnectionError, StripeUnavailable),
    (stripe.APIError, StripeUnavailable),
    (stripe.RateLimitError, StripeUnavailable),
    (stripe.CardError, StripeCardDeclined),
    (stripe.AuthenticationError, StripeAccessDenied),
    (stripe.PermissionError, StripeAccessDenied),
    (stripe.SignatureVerificationError, StripeSignatureInvalid),
    (oauth_error.InvalidGrantError, StripeGrantInvalid),
    (oauth_error.OAuthError, StripeOAuthRefused),
    (stripe.InvalidRequestError, StripeInvalidRequest),
    (stripe.IdempotencyError, StripeInvalidRequest),
)


def translate(error: stripe.StripeError) -> PaymentProviderError:
    """apimon's exception for a stripe-python error (see apimon.payment_errors)."""
    kind: type[PaymentProviderError] = StripeRefused
    for stripe_class, apimon_class in _TRANSLATIONS:
        if isinstance(error, stripe_class):
            kind = apimon_class
            break
    else:
        if (error.http_status or 0) >= 500:
            kind = StripeUnavailable
    return kind(
        str(error) or type(error).__name__,
        user_message=error.user_message,
        http_status=error.http_status,
        code=error.code,
        param=getattr(error, "param", None),
    )


def _translating(call: Any) -> Any:
    @functools.wraps(call)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except stripe.StripeError as error:
            raise translate(error) from error

    return guarded


class _Guarded:
    """A stripe-python client or service whose calls raise apimon's errors.

    Sub-services are wrapped too; results (Stripe objects) are returned as they
    are. Setting an attribute (a test replacing a service method) replaces it for
    the calls made through this wrapper, translated like the original."""

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_replaced", {})

    def __getattr__(self, name: str) -> Any:
        replaced = self._replaced
        value = replaced[name] if name in replaced else getattr(self._target, name)
        if isinstance(value, StripeService):
            if name not in self._children:
                self._children[name] = _Guarded(value)
            return self._children[name]
        if callable(value):
            guarded = _translating(value)
            guarded.__apimon_guarded__ = (self, name)  # type: ignore[attr-defined]
            return guarded
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(value, "__apimon_guarded__", None) == (self, name):
            self._replaced.pop(name, None)  # putting back what was there
        else:
            self._replaced[name] = value

    def __delattr__(self, name: str) -> None:
        self._replaced.pop(name, None)


def _options() -> dict[str, Any]:
    return {
        "client_id": settings.STRIPE_CONNECT_CLIENT_ID,
        "stripe_version": API_VERSION,
        "max_network_retries": settings.STRIPE_MAX_NETWORK_RETRIES,
    }


def _build_client() -> stripe.StripeClient:
    options = _options()
    if settings.STRIPE_EMULATOR:
        url = settings.STRIPE_EMULATOR_URL
        options["base_addresses"] = {"api": url, "connect": url, "files": url}
        if settings.STRIPE_EMULATOR_IN_PROCESS:
            # The emulator is a separate program apimon talks to over stripe-python
            # (HTTP); run inside this process (the test suite) it is reached through
            # stripe-python's HTTP client. Imported only then: a deployment on real
            # Stripe never loads it. The one place the product names the emulator.
            from stripe_emulator.inprocess import (
                InProcessHTTPClient,
                configure_inprocess_emulator,
            )

            configure_inprocess_emulator(
                client_id=settings.STRIPE_CONNECT_CLIENT_ID,
                webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
                webhook_url=_webhook_url(),
                control_secret=settings.STRIPE_EMULATOR_CONTROL_SECRET,
            )
            options["http_client"] = InProcessHTTPClient()
    options.setdefault(
        "http_client", stripe.new_default_http_client(timeout=settings.STRIPE_TIMEOUT)
    )
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, **options)


def _webhook_url() -> str:
    return getattr(
        settings,
        "STRIPE_EMULATOR_WEBHOOK_URL",
        settings.SITE_URL + "/billing/stripe/webhook/",
    )


def raw_client() -> stripe.StripeClient:
    """The process's StripeClient, built once from settings, with stripe-python's
    own errors: for the emulator's tests, which check Stripe's error shapes. apimon
    itself uses `get_client()`."""
    global _client
    with _lock:
        if _client is None:
            _client = _build_client()
        return _client


def get_client() -> Any:
    """The process's StripeClient, whose calls raise apimon's errors
    (`apimon.payment_errors`) instead of stripe-python's."""
    global _guarded
    client = raw_client()
    with _lock:
        if _guarded is None or _guarded._target is not client:
            _guarded = _Guarded(client)
        return _guarded


@contextmanager
def use_emulator(emulator: Emulator) -> Iterator[None]:
    """Until the block ends, every call of this process goes to `emulator` (a
    `stripe_emulator` Emulator object, e.g. on the state file the emulator process
    will open) inside this process, without HTTP. `manage.py seed_demo` writes the
    demo's Stripe history this way before `make run` starts the emulator. Only with
    the emulator: real Stripe is never replaced."""
    if not settings.STRIPE_EMULATOR:
        raise RuntimeError("use_emulator() is for the Stripe emulator only")
    from stripe_emulator.inprocess import InProcessHTTPClient

    global _client
    url = settings.STRIPE_EMULATOR_URL
    client = stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        **_options(),
        base_addresses={"api": url, "connect": url, "files": url},
        http_client=InProcessHTTPClient(emulator),
    )
    with _lock:
        previous, _client = _client, client
    try:
        yield
    finally:
        with _lock:
            _client = previous


def reset_for_tests() -> None:
    """Drop the cached client (after changing Stripe settings in a test)."""
    global _client, _guarded
    with _lock:
        _client = None
        _guarded = None


def each(page: Any) -> Iterator[Any]:
    """Every object of a list `page` and of the pages after it (stripe-python's
    auto-paging), with apimon's errors."""
    items = _translating(lambda: iter(page.auto_paging_iter()))()
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except stripe.StripeError as error:
            raise translate(error) from error
        yield item


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

    Raises `StripeGrantInvalid` for an unknown, expired or already used code."""
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


def _signed_at(sig_header: str) -> int | None:
    """The `t=` timestamp of a Stripe-Signature header that verified."""
    for item in sig_header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t" and value.strip().isascii() and value.strip().isdigit():
            return int(value)
    return None


def verify_webhook(payload: bytes, sig_header: str) -> dict[str, Any]:
    """Verify a webhook's `Stripe-Signature` with the endpoint secret and parse its
    body, a JSON object (at most `jsonbody.MAX_DEPTH` levels deep).

    Raises StripeSignatureInvalid (bad signature; signed more than
    WEBHOOK_TOLERANCE seconds ago or more than WEBHOOK_FUTURE_SKEW seconds ahead)
    or ValueError (not UTF-8, not JSON, too deep, not an object)."""
    try:
        stripe.WebhookSignature.verify_header(
            payload, sig_header, settings.STRIPE_WEBHOOK_SECRET, WEBHOOK_TOLERANCE
        )
    except stripe.SignatureVerificationError as error:
        raise translate(error) from error
    signed_at = _signed_at(sig_header)
    if signed_at is None or signed_at > time.time() + WEBHOOK_FUTURE_SKEW:
        raise StripeSignatureInvalid(
            f"Timestamp missing or too far in the future ({signed_at})"
        )
    data = jsonbody.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("A webhook's body is a JSON object (an event).")
    return data


def construct_event(payload: bytes, sig_header: str) -> Any:
    """`verify_webhook`, as a stripe.Event."""
    verify_webhook(payload, sig_header)
    return get_client().construct_event(
        payload, sig_header, settings.STRIPE_WEBHOOK_SECRET, WEBHOOK_TOLERANCE
    )


def advance_emulator_clock(at: datetime) -> float:
    """Move the Stripe emulator's clock forward to `at` (never back); returns the
    seconds moved. Only for the emulator: real Stripe has no clock to move (0)."""
    if not settings.STRIPE_EMULATOR:
        return 0.0
    if settings.STRIPE_EMULATOR_IN_PROCESS:
        from stripe_emulator.inprocess import get_inprocess_emulator  # see above

        emulator = get_inprocess_emulator()
        ahead = at.timestamp() - emulator.now()
        if ahead > 0:
            emulator.advance(ahead)
        return max(ahead, 0.0)
    base = settings.STRIPE_EMULATOR_URL
    secret = settings.STRIPE_EMULATOR_CONTROL_SECRET
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    state = httpx.get(f"{base}/_emulator/", headers=headers, timeout=10).json()
    ahead = at.timestamp() - float(state["now"])
    if ahead > 0:
        httpx.post(
            f"{base}/_emulator/advance",
            data={"seconds": ahead},
            headers=headers,
            timeout=120,
        )
    return max(ahead, 0.0)


def emulator_dashboard_url() -> str | None:
    """The emulator's dashboard (accounts, events, deliveries, time controls), or None
    when apimon talks to real Stripe."""
    return settings.STRIPE_EMULATOR_URL + "/" if settings.STRIPE_EMULATOR else None
