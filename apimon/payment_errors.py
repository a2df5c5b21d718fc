"""apimon's words for what went wrong with the payment provider.

Stripe's errors (stripe-python's classes) are translated once, at the seam
(`apimon.stripe_client`); everything above it — services, tasks, views, the admin
— catches these and never imports `stripe`:

    PaymentProviderError           Stripe did not do what apimon asked
    ├── StripeUnavailable          not reachable, its own error (5xx), rate limited:
    │                              try again later (Celery tasks retry these)
    ├── StripeRefused              Stripe answered and said no
    │   ├── StripeInvalidRequest   a request it refuses (e.g. no such object: 404)
    │   ├── StripeCardDeclined     a payment the card's bank declined
    │   ├── StripeAccessDenied     the key or the connected account's access is gone
    │   └── StripeOAuthRefused     Connect's OAuth refused an exchange
    │       └── StripeGrantInvalid the authorization code is unknown, used or expired
    └── StripeSignatureInvalid     a webhook whose Stripe-Signature does not verify

Each keeps Stripe's `user_message` (safe to show), `http_status`, `code` and `param`, and the
original error as its `__cause__`.
"""

from __future__ import annotations


class PaymentProviderError(Exception):
    """Stripe did not do what apimon asked."""

    def __init__(
        self,
        message: str,
        *,
        user_message: str | None = None,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.user_message = user_message
        self.http_status = http_status
        self.code = code
        # The request parameter Stripe refused (its error's `param`), if it named one.
        self.param = param


class StripeUnavailable(PaymentProviderError):
    """Stripe could not be reached, failed itself (5xx) or rate-limited apimon."""


class StripeRefused(PaymentProviderError):
    """Stripe answered the request and refused it."""


class StripeInvalidRequest(StripeRefused):
    """A request Stripe refuses: bad parameters, or no such object (404)."""


class StripeCardDeclined(StripeRefused):
    """The card's bank declined a payment."""


class StripeAccessDenied(StripeRefused):
    """apimon's key, or its access to a connected account, is no longer accepted."""


class StripeOAuthRefused(StripeRefused):
    """Connect's OAuth endpoint refused an exchange or a deauthorization."""


class StripeGrantInvalid(StripeOAuthRefused):
    """The OAuth authorization code is unknown, already used or expired."""


class StripeSignatureInvalid(PaymentProviderError):
    """A webhook's Stripe-Signature header does not verify with the secret."""
