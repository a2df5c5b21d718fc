"""Small helpers every app's views share: a form's POST data, a service's
ValidationError shown next to the form's fields, and what a page says when the
payment provider failed (`apimon.payment_errors.PaymentProviderError`)."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, QueryDict

from apimon.payment_errors import PaymentProviderError

log = logging.getLogger(__name__)

# What a subscriber is told when Stripe failed; nothing was changed.
PROVIDER_DOWN = "The payment provider is not reachable; try again."


def posted(request: HttpRequest) -> QueryDict | None:
    """The POST data of a POST (even an empty one), else None: an unbound form."""
    return request.POST if request.method == "POST" else None


def add_service_errors(form, exc: ValidationError) -> None:
    """Put a service's ValidationError next to the form's fields (the form-wide
    errors when it names no field of the form)."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def provider_down(exc: PaymentProviderError) -> str:
    """What a subscriber's page says when Stripe failed (logged with the cause)."""
    log.warning("payment provider: %s", exc)
    return PROVIDER_DOWN


def provider_failed(exc: PaymentProviderError) -> str:
    """What an owner's page says when Stripe failed: Stripe's own words, which
    the owner can act on in their Stripe account."""
    return (
        f"Stripe could not complete the request ({exc.user_message or exc}). "
        "Nothing was changed; try again."
    )
