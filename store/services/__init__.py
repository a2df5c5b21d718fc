"""Writes of the store: what a subscriber holds and how it pays, one module per
part — applications (`applications`), API keys (`api_keys`), Stripe customers and
Checkout (`checkout`, `checkout_completion`), subscribing, cancelling and
blocking (`subscriptions`) and tier changes (`tier_changes`).

Views, the admin and the Stripe webhook call these. Every service validates its
input again and raises `ValidationError` (a dict keyed by form field where a field
is at fault); Stripe's failure raises `apimon.payment_errors.PaymentProviderError` (from
the seam) and the transaction writes nothing. A subscription's state, tier, billing bookkeeping and history change only
through `store.lifecycle`, which announces each change to the layers above
(`store.hooks`). Callers import from `store.services`: every public name is here.
"""

from store.services.api_keys import (
    KEY_ROTATION_GRACE,
    MAX_ACTIVE_KEYS,
    MAX_KEY_ROTATION_GRACE,
    IssuedKey,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
)
from store.services.applications import (
    application_create,
    application_delete,
    application_update,
)
from store.services.checkout import (
    CHECKOUT_PURPOSE,
    CHECKOUT_SESSION_LIFETIME,
    CheckoutAction,
    expire_checkout_sessions,
    stripe_customer_for,
    subscription_checkout,
)
from store.services.checkout_completion import (
    CheckoutOutcome,
    checkout_session_completed,
    subscription_confirm_checkout,
)
from store.services.subscriptions import (
    SubscribeResult,
    subscription_block,
    subscription_cancel,
    subscription_create,
    subscription_resume,
    subscription_unblock,
)
from store.services.tier_changes import (
    ChangeResult,
    subscription_change_tier,
    subscription_unschedule_change,
)

__all__ = [
    "CHECKOUT_PURPOSE",
    "CHECKOUT_SESSION_LIFETIME",
    "KEY_ROTATION_GRACE",
    "MAX_ACTIVE_KEYS",
    "MAX_KEY_ROTATION_GRACE",
    "ChangeResult",
    "CheckoutAction",
    "CheckoutOutcome",
    "IssuedKey",
    "SubscribeResult",
    "api_key_create",
    "api_key_revoke",
    "api_key_rotate",
    "application_create",
    "application_delete",
    "application_update",
    "checkout_session_completed",
    "expire_checkout_sessions",
    "stripe_customer_for",
    "subscription_block",
    "subscription_cancel",
    "subscription_change_tier",
    "subscription_checkout",
    "subscription_confirm_checkout",
    "subscription_create",
    "subscription_resume",
    "subscription_unblock",
    "subscription_unschedule_change",
]
