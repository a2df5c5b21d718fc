"""What billing does when the catalog or the store announce a change
(`publisher.hooks`, `store.hooks`), and what it answers when they ask: connected
and provided in `BillingConfig.ready()`."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from apimon.models import Organization
from billing import selectors, services, tasks
from billing.catalog import connected_account, schedule_sync
from billing.models import monetization_enabled
from pricing.currencies import format_money
from publisher import hooks as catalog_hooks
from store import hooks as store_hooks
from store.models import SubscriptionEventKind


def subscriptions_changed(sender, *, changes, **kwargs) -> None:
    """A subscriber saved a new card: pay the subscription's failed invoices with it
    once that is committed (a task, retried on network errors); paid, the
    subscription is ACTIVE again."""
    for change in changes:
        if change.kind == SubscriptionEventKind.CARD_UPDATED:
            pk = change.subscription.pk
            transaction.on_commit(lambda pk=pk: tasks.retry_payment.delay(pk))


def api_changed(sender, *, api, **kwargs) -> None:
    schedule_sync(api.organization_id)  # e.g. a renamed API renames its product


def tier_changed(sender, *, tier, **kwargs) -> None:
    schedule_sync(tier.organization_id)  # e.g. a new price, an archived tier


def payment_account(organization: Organization) -> str | None:
    connection = connected_account(organization)
    return connection.account_id if connection is not None else None


def dashboard_figures(organization: Organization, now: datetime) -> dict:
    """The publisher dashboard's figure: net revenue of this calendar month (UTC),
    per currency."""
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "net_this_month": [
            format_money(net, currency)
            for currency, net in selectors.net_revenue(
                organization, start=month_start, end=now
            )
        ]
    }


def connect() -> None:
    uid = "billing.receivers"
    store_hooks.subscriptions_changed.connect(subscriptions_changed, dispatch_uid=uid)
    catalog_hooks.api_changed.connect(api_changed, dispatch_uid=uid)
    catalog_hooks.tier_changed.connect(tier_changed, dispatch_uid=uid)
    store_hooks.takes_payments.provide(monetization_enabled)
    store_hooks.payment_account.provide(payment_account)
    store_hooks.next_invoice_preview.provide(selectors.next_invoice_preview)
    store_hooks.failed_payments_owed.provide(selectors.failed_payments_owed)
    store_hooks.pay_failed_invoices.provide(
        lambda subscription: services.subscription_retry_payment(
            subscription=subscription
        )
    )
    catalog_hooks.dashboard_figures.register(dashboard_figures)
