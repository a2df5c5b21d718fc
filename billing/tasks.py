"""Celery tasks of the monetization part of billing. Each takes ids, loads rows and
calls a service; retries with exponential backoff live here.

Below "Invoices", the billing engine's: the periodic ones (billing, dunning) are in
apimon.celery.BEAT_SCHEDULE.
"""

from __future__ import annotations

import logging

from celery import shared_task

from apimon import stripe_client as sc
from apimon.models import Organization
from billing.webhooks import HandlerFailed, webhook_event_process

log = logging.getLogger(__name__)


# Stripe errors worth retrying: the network, Stripe's own 5xx, rate limits.
TRANSIENT = (sc.APIConnectionError, sc.APIError, sc.RateLimitError)


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=8,
)
def sync_catalog(organization_id: int) -> str:
    """Sync one organization's catalog to its connected account (if monetized)."""
    from billing.catalog import catalog_sync, sync_wanted

    if not sync_wanted(organization_id):
        return "skipped: monetization is off"
    organization = Organization.objects.get(pk=organization_id)
    result = catalog_sync(organization=organization)
    summary = (
        f"{len(result.created)} created, {len(result.reactivated)} re-activated, "
        f"{len(result.updated)} updated, {len(result.archived)} archived"
    )
    if result.not_chargeable:
        log.warning("catalog of %s: %s", organization, result.not_chargeable_note)
        summary += f". {result.not_chargeable_note}"
    return summary


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=5,
)
def reconcile_organization(organization_id: int) -> str:
    from billing.reconcile import catalog_reconcile

    organization = Organization.objects.get(pk=organization_id)
    result = catalog_reconcile(organization=organization)
    return f"{result.checked} checked, {result.open_drift} open drift"


@shared_task
def reconcile_catalogs() -> int:
    """Beat (hourly): reconcile every connected organization, each in its own task
    so that one failing account does not stop the others."""
    from billing.reconcile import organizations_to_reconcile

    ids = organizations_to_reconcile()
    for organization_id in ids:
        reconcile_organization.delay(organization_id)
    return len(ids)


@shared_task(
    autoretry_for=(HandlerFailed,),
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=8,
)
def process_webhook_event(event_pk: int) -> str:
    """Process one stored Stripe event; a failing handler is retried with backoff
    (the event keeps its `last_error` and can be replayed from the admin)."""
    return webhook_event_process(event_pk)


# --- Invoices (issue 8: the billing engine) -----------------------------------


@shared_task
def run_billing() -> dict:
    """Beat, every minute: close due periods and write invoices, push invoices that
    wait (billing.services.billing_tick)."""
    from billing.services import billing_tick

    result = billing_tick()
    return {
        "steps": result.run.steps,
        "invoices": result.run.invoices,
        "pushed": result.pushed,
        "webhooks": result.webhooks,
    }


@shared_task
def run_dunning() -> int:
    """Beat, every minute: block subscriptions whose grace period is over."""
    from billing.services import dunning_run

    return dunning_run()


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
)
def push_invoice(invoice_id: int) -> str:
    """Push one invoice to Stripe and pay it (billing.push). Network errors, Stripe
    5xx and rate limits are retried with backoff; the push is idempotent."""
    from billing.push import invoice_push

    return invoice_push(invoice_id=invoice_id).status


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    max_retries=5,
)
def retry_payment(subscription_id: int) -> int:
    """The store's "update card": pay the subscription's failed invoices again."""
    from billing.services import subscription_retry_payment
    from store.models import Subscription

    subscription = Subscription.objects.select_related("customer").get(
        pk=subscription_id
    )
    return subscription_retry_payment(subscription=subscription)


@shared_task
def run_platform_dunning() -> int:
    """Beat, every minute: end the platform plans that stayed unpaid past their grace
    period (the organization goes back to the trial plan)."""
    from billing.services import platform_dunning_run

    return platform_dunning_run()


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    max_retries=5,
)
def retry_platform_payment(platform_subscription_id: int) -> int:
    """A new card for a past-due platform plan: pay its failed invoices again."""
    from billing.models import PlatformSubscription
    from billing.services import platform_retry_payment

    subscription = PlatformSubscription.objects.get(pk=platform_subscription_id)
    return platform_retry_payment(platform_subscription=subscription)
