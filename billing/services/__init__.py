"""Writes of billing, one module per part: the platform plan (`platform_plan`,
`platform_dunning`), Connect with Stripe (`connect`), Enable/Disable Monetization
(`monetization`), a subscriber's failed payments (`dunning`), invoices after they
are written (`invoices`, `corrections`) and the minute job (`tick`). The period job
itself is `billing.engine`.

Views, webhook handlers, tasks and the admin call these; none of them holds the
rules. Everything Stripe goes through `apimon.stripe_client`; writes carry
idempotency keys derived from the local row, so a retried request never does a
thing twice. Callers import from `billing.services`: every public name is here.
"""

from billing.catalog import connected_account
from billing.services.connect import (
    OAUTH_STATE_LIFETIME,
    ConnectFailed,
    connect_redirect_uri,
    stripe_account_deauthorized,
    stripe_account_updated,
    stripe_connect_complete,
    stripe_connect_start,
    stripe_disconnect,
)
from billing.services.corrections import Rerate, subscription_rerate
from billing.services.dunning import (
    DUNNING_NOTE,
    dunning_run,
    subscription_payment_failed,
    subscription_payment_recovered,
    subscription_retry_payment,
)
from billing.services.invoices import (
    CannotVoid,
    invoice_finalized,
    invoice_marked_uncollectible,
    invoice_paid,
    invoice_payment_failed,
    invoice_payment_failed_apply,
    invoice_repush,
    invoice_settled,
    invoice_void,
    invoice_voided,
)
from billing.services.monetization import monetization_disable, monetization_enable
from billing.services.platform_dunning import (
    PLATFORM_DOWNGRADE_NOTE,
    platform_dunning_run,
)
from billing.services.platform_plan import (
    PLATFORM_PLAN_PURPOSE,
    BillingDetails,
    CheckoutNotComplete,
    paid_plans,
    platform_checkout_complete,
    platform_checkout_start,
    platform_payment_failed,
    platform_payment_recovered,
    platform_retry_payment,
)
from billing.services.tick import TickResult, billing_tick, push_sweep

__all__ = [
    "DUNNING_NOTE",
    "OAUTH_STATE_LIFETIME",
    "PLATFORM_DOWNGRADE_NOTE",
    "PLATFORM_PLAN_PURPOSE",
    "BillingDetails",
    "CannotVoid",
    "CheckoutNotComplete",
    "ConnectFailed",
    "Rerate",
    "TickResult",
    "billing_tick",
    "connect_redirect_uri",
    "connected_account",
    "dunning_run",
    "invoice_finalized",
    "invoice_marked_uncollectible",
    "invoice_paid",
    "invoice_payment_failed",
    "invoice_payment_failed_apply",
    "invoice_repush",
    "invoice_settled",
    "invoice_void",
    "invoice_voided",
    "monetization_disable",
    "monetization_enable",
    "paid_plans",
    "platform_checkout_complete",
    "platform_checkout_start",
    "platform_dunning_run",
    "platform_payment_failed",
    "platform_payment_recovered",
    "platform_retry_payment",
    "push_sweep",
    "stripe_account_deauthorized",
    "stripe_account_updated",
    "stripe_connect_complete",
    "stripe_connect_start",
    "stripe_disconnect",
    "subscription_payment_failed",
    "subscription_payment_recovered",
    "subscription_rerate",
    "subscription_retry_payment",
]
