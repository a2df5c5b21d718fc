"""Celery tasks of the monetization part of billing. Each takes ids, loads rows and
calls a service; retries with exponential backoff live here.

Below "Invoices", the billing engine's: the periodic ones (billing, dunning) are in
apimon.celery.BEAT_SCHEDULE.
"""

from __future__ import annotations

import logging

from celery import shared_task

from apimon.jobs import job_failure_record, job_failures_resolve
from apimon.models import Organization
from apimon.payment_errors import StripeUnavailable
from billing import catalog, push, reconcile, services
from billing.models import Invoice, PlatformSubscription
from billing.webhooks import HandlerFailed, enqueue_each, webhook_event_process
from store.models import Subscription

log = logging.getLogger(__name__)


# Stripe errors worth retrying: the network, Stripe's own 5xx, rate limits.
TRANSIENT = (StripeUnavailable,)

RECONCILE_JOB = "reconcile"
PUSH_JOB = "invoice push"


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=8,
)
def sync_catalog(organization_id: int) -> str:
    """Sync one organization's catalog to its connected account (if monetized)."""
    if not catalog.sync_wanted(organization_id):
        return "skipped: monetization is off"
    organization = Organization.objects.get(pk=organization_id)
    result = catalog.catalog_sync(organization=organization)
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
    ref = f"organization {organization_id}"
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return "skipped: the organization was deleted"
    try:
        result = reconcile.catalog_reconcile(organization=organization)
    except TRANSIENT:
        raise
    except Exception as exc:  # this account's data: recorded, tried again next hour
        job_failure_record(
            job=RECONCILE_JOB, ref=ref, organization_id=organization_id, error=exc
        )
        return "failed"
    job_failures_resolve(job=RECONCILE_JOB, refs=[ref])
    return f"{result.checked} checked, {result.open_drift} open drift"


@shared_task
def reconcile_catalogs() -> int:
    """Beat (hourly): reconcile every connected organization, each in its own task
    so that one failing account does not stop the others."""
    ids = reconcile.organizations_to_reconcile()
    for organization_id in ids:
        enqueue_each(reconcile_organization, organization_id)
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


# --- Invoices (the billing engine) --------------------------------------------


@shared_task
def run_billing() -> dict:
    """Beat, every minute: close due periods and write invoices, push invoices that
    wait (billing.services.billing_tick)."""
    result = services.billing_tick()
    return {
        "steps": result.run.steps,
        "invoices": result.run.invoices,
        "pushed": result.pushed,
        "webhooks": result.webhooks,
    }


@shared_task
def run_dunning() -> int:
    """Beat, every minute: block subscriptions whose grace period is over."""
    return services.dunning_run()


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=10,
)
def push_invoice(invoice_id: int) -> str:
    """Push one invoice to Stripe and pay it (billing.push). Network errors, Stripe
    5xx and rate limits are retried with backoff; the push is idempotent. Any other
    failure is recorded (apimon.jobs); the invoice stays a draft, which the billing
    job's push sweep enqueues again."""
    ref = f"invoice {invoice_id}"
    try:
        status = push.invoice_push(invoice_id=invoice_id).status
    except TRANSIENT:
        raise
    except Exception as exc:
        organization_id = (
            Invoice.objects.filter(pk=invoice_id)
            .values_list("organization_id", flat=True)
            .first()
        )
        job_failure_record(
            job=PUSH_JOB, ref=ref, organization_id=organization_id, error=exc
        )
        return "failed"
    job_failures_resolve(job=PUSH_JOB, refs=[ref])
    return status


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    max_retries=5,
)
def retry_payment(subscription_id: int) -> int:
    """The store's "update card": pay the subscription's failed invoices again."""

    subscription = Subscription.objects.select_related("customer").get(
        pk=subscription_id
    )
    return services.subscription_retry_payment(subscription=subscription)


@shared_task
def run_platform_dunning() -> int:
    """Beat, every minute: end the platform plans that stayed unpaid past their grace
    period (the organization goes back to the trial plan)."""
    return services.platform_dunning_run()


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    max_retries=5,
)
def retry_platform_payment(platform_subscription_id: int) -> int:
    """A new card for a past-due platform plan: pay its failed invoices again."""
    subscription = PlatformSubscription.objects.get(pk=platform_subscription_id)
    return services.platform_retry_payment(platform_subscription=subscription)
