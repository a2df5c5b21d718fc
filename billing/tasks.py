"""Celery tasks of the billing engine. Each takes ids (or nothing) and calls a
service; the periodic ones are in apimon.celery.BEAT_SCHEDULE."""

from __future__ import annotations

import logging

from celery import shared_task

from apimon import stripe_client as sc

log = logging.getLogger(__name__)


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
    }


@shared_task
def run_dunning() -> int:
    """Beat, every minute: block subscriptions whose grace period is over."""
    from billing.services import dunning_run

    return dunning_run()


@shared_task(
    autoretry_for=(sc.APIConnectionError, sc.APIError, sc.RateLimitError),
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
    autoretry_for=(sc.APIConnectionError, sc.APIError, sc.RateLimitError),
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
