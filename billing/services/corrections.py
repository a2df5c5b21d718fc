"""Corrections: rating a closed period again and writing the difference as a new
invoice (the invoices already written are never edited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from apimon import clock
from billing import engine
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceStatus,
)
from pricing.currencies import from_minor
from pricing.rating import USAGE_KINDS, Line, LineKind, usage_lines
from pricing.stripe_money import chargeable_lines
from publisher.models import TierVersion
from store.models import Subscription


@dataclass(frozen=True)
class Rerate:
    invoice: Invoice | None
    message: str


def subscription_rerate(
    *, subscription: Subscription, now: datetime | None = None
) -> Rerate:
    """Rate the subscription's last closed period again from today's usage rows and,
    if the amount differs from what was billed, write a CORRECTION invoice: a
    reversal of the usage billed for that period and the usage rated now. The
    invoices already written are never edited."""
    now = now or clock.now()
    latest = (
        Invoice.objects.filter(
            subscription=subscription,
            kind__in=[InvoiceKind.RENEWAL, InvoiceKind.FINAL, InvoiceKind.CORRECTION],
            superseded_by__isnull=True,
        )
        .exclude(status=InvoiceStatus.VOID)
        .exclude(rating={})
        .order_by("-period_start", "-pk")
        .first()
    )
    if latest is None:
        return Rerate(None, "No closed period to re-rate.")
    segments = latest.rating.get("segments") or []
    if not segments:
        return Rerate(None, "That invoice billed no usage.")
    period_start, period_end = latest.period_start, latest.period_end
    billed = sum(
        line.amount_minor
        for invoice in subscription.invoices.exclude(status=InvoiceStatus.VOID)
        for line in invoice.lines.all()
        if line.kind in USAGE_KINDS
        and line.period_start is not None
        and period_start <= line.period_start < period_end
    )
    # Today's usage, split as before (same segments and versions).
    ranges = [
        (
            subscription.pk,
            datetime.fromisoformat(s["start"]),
            datetime.fromisoformat(s["end"]),
        )
        for s in segments
    ]
    versions = {
        v.pk: v
        for v in TierVersion.objects.filter(
            pk__in={s["tier_version"] for s in segments}
        ).prefetch_related("meter_prices__bands")
    }
    whole = (subscription.pk, ranges[0][1], ranges[-1][2])
    total_now = engine.usage_for_ranges([whole])[whole]
    new_lines: list[engine.DraftLine] = []
    new_segments = []
    for seg, rng in zip(segments, ranges, strict=True):
        # Before an upgrade: what was split off then (the store's snapshot); the
        # rest of the period's count goes to the last version.
        quantity = seg["quantity"]
        if seg is segments[-1]:
            quantity = max(0, total_now - sum(s["quantity"] for s in segments[:-1]))
        rated = usage_lines(
            versions[seg["tier_version"]].pricing(),
            quantity,
            period_start=rng[1],
            period_end=rng[2],
        )
        new_lines += [
            engine.DraftLine(x, seg["tier_version"]) for x in chargeable_lines(rated)
        ]
        new_segments.append({**seg, "quantity": quantity})
    new_total = sum(d.line.amount_minor for d in new_lines)
    if new_total == billed:
        return Rerate(None, f"{latest} is right: nothing to correct.")
    currency = latest.currency
    reversal = Line(
        kind=LineKind.REVERSAL,
        description=f"Reversal of the usage billed for this period ({latest.number})",
        quantity=1,
        unit_price=from_minor(-billed, currency),
        amount_minor=-billed,
        currency=currency,
        period_start=period_start,
        period_end=period_end,
    )
    draft = engine.Draft(
        kind=InvoiceKind.CORRECTION,
        period_start=period_start,
        period_end=period_end,
        lines=[engine.DraftLine(reversal, latest.tier_version_id), *new_lines],
        tier_version_id=latest.tier_version_id,
        rating={
            "segments": new_segments,
            "quantity": sum(s["quantity"] for s in new_segments),
        },
        supersedes_id=latest.pk,
    )
    with transaction.atomic():
        try:
            with transaction.atomic():
                ids = engine.write_single(subscription, [draft], now=now)
        except IntegrityError:
            return Rerate(None, f"{latest} was corrected meanwhile.")
    invoice = Invoice.objects.get(pk=ids[0])
    return Rerate(invoice, f"{invoice} corrects {latest}.")
