"""The platform dunning job: a platform plan left unpaid past its grace period
ends, and the organization goes back to the trial plan."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import F

from apimon import clock
from apimon.jobs import job_failures_resolve, job_item
from apimon.models import Organization
from apimon.payment_errors import PaymentProviderError
from apimon.services import trial_plan
from billing.models import (
    InvoiceKind,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    failed_unpaid_invoices,
)
from billing.services.invoices import CannotVoid, invoice_void
from billing.services.platform_plan import notify_owners_on_commit

log = logging.getLogger(__name__)

PLATFORM_DUNNING_JOB = "platform dunning"
PLATFORM_DOWNGRADE_NOTE = "The plan's payment failed and the grace period ended."


def platform_dunning_run(*, now: datetime | None = None) -> int:
    """End every past-due platform plan whose grace period is over: the organization
    goes back to the trial plan (no new monetization: no new paid subscriptions, no
    Enable, no Connect), the plan is CANCELLED (no more invoices) and its unpaid
    invoices are voided on Stripe, so nothing is collected for a plan that ended.
    Returns how many plans ended. Rows are claimed with skip_locked, so two runs
    never end one twice."""
    now = now or clock.now()
    ended = []
    with transaction.atomic():
        subs = list(
            PlatformSubscription.objects.select_for_update(skip_locked=True)
            .filter(
                status=PlatformSubscriptionStatus.ACTIVE,
                past_due_since__isnull=False,
                grace_until__lte=now,
            )
            .order_by("pk")
        )
        if subs:
            trial = trial_plan()
        for sub in subs:
            # One plan's failure is recorded and left for the next run
            # (apimon.jobs); the others end.
            with job_item(
                PLATFORM_DUNNING_JOB,
                ref=f"platform subscription {sub.pk}",
                organization_id=sub.organization_id,
            ) as item:
                _end_unpaid_plan(sub, trial, now=now)
            if not item.failed:
                ended.append(sub)
        job_failures_resolve(
            job=PLATFORM_DUNNING_JOB,
            refs=(f"platform subscription {sub.pk}" for sub in ended),
        )
    _void_unpaid_platform_invoices()
    return len(ended)


def _end_unpaid_plan(sub: PlatformSubscription, trial, *, now: datetime) -> None:
    sub.status = PlatformSubscriptionStatus.CANCELLED
    sub.next_invoice_at = None
    sub.downgraded_at = now
    sub.save(update_fields=["status", "next_invoice_at", "downgraded_at", "updated_at"])
    Organization.objects.filter(pk=sub.organization_id).update(plan=trial)
    log.info("%s: %s", sub, PLATFORM_DOWNGRADE_NOTE)
    notify_owners_on_commit(sub.pk, "downgraded")


def _void_unpaid_platform_invoices() -> int:
    """Void (here and on Stripe) the failed invoices of plans that ended unpaid. An
    invoice a run could not void (Stripe unreachable) is voided by a later run."""
    voided = 0
    owed = failed_unpaid_invoices(
        kind=InvoiceKind.PLATFORM,
        platform_subscription__downgraded_at__isnull=False,
        created_at__lt=F("platform_subscription__downgraded_at"),
    ).order_by("pk")
    for invoice in owed:
        with job_item(
            PLATFORM_DUNNING_JOB,
            ref=f"invoice {invoice.pk}",
            organization_id=invoice.organization_id,
        ):
            try:
                invoice_void(invoice=invoice)
            except CannotVoid as exc:  # paid on Stripe meanwhile: recorded as paid
                log.warning("platform invoice %s not voided: %s", invoice, exc)
            except PaymentProviderError as exc:
                log.warning("platform invoice %s not voided yet: %s", invoice, exc)
            else:
                voided += 1
    return voided
