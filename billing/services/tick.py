"""The job beat runs every minute: close due periods, invoice platform plans, push
what waits, process webhook events whose task was lost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from apimon import clock
from billing import engine
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    StripeConnection,
)
from billing.webhooks import enqueue_each, webhook_sweep


@dataclass(frozen=True)
class TickResult:
    run: engine.RunResult
    pushed: int
    webhooks: int = 0


def billing_tick(*, now: datetime | None = None) -> TickResult:
    """What beat runs every minute: close due periods and write their invoices,
    invoice the platform plans that are due, push invoices that are waiting (a
    lost task, a reconnected account), and process webhook events whose task was
    lost."""
    now = now or clock.now()
    result = engine.billing_run(now=now)
    result.add(engine.platform_billing_run(now=now))
    pushed = push_sweep(now=now)
    return TickResult(run=result, pushed=pushed, webhooks=webhook_sweep(now=now))


def push_sweep(*, now: datetime, stale: timedelta = timedelta(minutes=5)) -> int:
    """Enqueue the push of invoices written a while ago and still not on Stripe
    (the task was lost), and of those waiting for an account that can take payments
    again."""
    from billing import tasks

    ready_orgs = StripeConnection.objects.filter(
        disconnected_at__isnull=True, billing_paused=False
    ).values("organization_id")
    ids = list(
        Invoice.objects.filter(
            Q(status=InvoiceStatus.DRAFT, created_at__lte=now - stale)
            | Q(status=InvoiceStatus.WAITING, organization_id__in=ready_orgs)
            | Q(status=InvoiceStatus.WAITING, kind=InvoiceKind.PLATFORM)
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in ids:
        enqueue_each(tasks.push_invoice, pk)
    return len(ids)
