"""Reads the monetization pages share; and (below "Invoices") those of the billing
pages: a subscriber's invoices, the next-invoice preview, the publisher's revenue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Prefetch, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from django.urls import reverse

from apimon.models import Organization
from billing import engine
from billing.catalog import versions_stripe_cannot_charge
from billing.models import (
    CatalogDrift,
    CatalogKind,
    CatalogObject,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    StripeConnection,
    failed_unpaid_invoices,
)
from gateway.selectors import unflushed_by_meter
from pricing.currencies import format_money
from pricing.rating import total_minor
from publisher.models import REQUESTS_METER, TierVersion
from store.models import Subscription, SubscriptionEvent, SubscriptionState


@dataclass
class Overview:
    """Where an organization stands: plan, Stripe connection, monetization, drift."""

    organization: Organization
    subscription: PlatformSubscription | None
    connection: StripeConnection | None  # the connected account, if any
    last_connection: StripeConnection | None  # a disconnected one, to explain why
    products: int
    prices: int
    open_drift: list[CatalogDrift]
    open_drift_count: int
    # Priced tier versions for sale or in use that Stripe cannot charge (IQD, LYD).
    not_chargeable: list[TierVersion] = field(default_factory=list)

    @property
    def plan(self):
        return self.organization.plan

    @property
    def on_paid_plan(self) -> bool:
        return bool(self.plan.allows_monetization)

    @property
    def monetizing(self) -> bool:
        return bool(self.connection and self.connection.can_take_payments)

    @property
    def step(self) -> int:
        """1 upgrade, 2 connect, 3 enable, 4 done."""
        if not self.on_paid_plan:
            return 1
        if self.connection is None:
            return 2
        if not self.connection.monetization_enabled:
            return 3
        return 4


def monetization_overview(organization: Organization) -> Overview:
    connection = StripeConnection.objects.filter(organization=organization).first()
    live = connection if connection and connection.is_connected else None
    subscription = (
        PlatformSubscription.objects.select_related("plan", "pending_plan")
        .filter(organization=organization)
        .first()
    )
    objects = catalog_objects(organization, live)
    drift = open_drift(organization)
    return Overview(
        organization=organization,
        subscription=subscription,
        connection=live,
        last_connection=None if live else connection,
        products=objects.filter(kind=CatalogKind.PRODUCT).count(),
        prices=objects.filter(kind=CatalogKind.PRICE).count(),
        open_drift=list(drift[:5]),
        open_drift_count=drift.count(),
        not_chargeable=versions_stripe_cannot_charge(organization),
    )


# --- The platform plan's own payments --------------------------------------------------


@dataclass(frozen=True)
class PlatformPaymentNotice:
    """What an owner is told about the organization's platform plan payments: a
    payment failed and is unpaid (past due), or the plan ended because it stayed
    unpaid (`downgraded`)."""

    subscription: PlatformSubscription
    # Past due: the failed, unpaid platform invoices, the newest failure first.
    invoices: list[Invoice]
    downgraded: bool

    @property
    def organization(self) -> Organization:
        return self.subscription.organization

    @property
    def latest(self) -> Invoice | None:
        return self.invoices[0] if self.invoices else None

    @property
    def amount(self) -> str:
        """The unpaid amount, e.g. "$99.00" (platform invoices share one currency)."""
        if not self.invoices:
            return ""
        currency = self.invoices[0].currency
        due = sum(i.total_minor for i in self.invoices if i.currency == currency)
        return format_money(due, currency)

    @property
    def failed_at(self) -> datetime | None:
        return self.latest.payment_failed_at if self.latest else None

    @property
    def plan_offered(self) -> bool:
        plan = self.subscription.plan
        return bool(
            plan and plan.is_active and plan.allows_monetization and not plan.is_trial
        )

    @property
    def fix_url(self) -> str:
        """Past due: the plan's upgrade page, which saves a new card through Checkout
        and then pays the failed invoices with it. Ended: the plans."""
        slug = self.organization.slug
        if not self.downgraded and self.plan_offered:
            return reverse(
                "monetization:upgrade", args=[slug, self.subscription.plan.slug]
            )
        return reverse("monetization:plans", args=[slug])


def platform_payment_notice_of(
    sub: PlatformSubscription | None,
) -> PlatformPaymentNotice | None:
    """The notice for this plan, if any (no query unless past due or ended)."""
    if sub is None:
        return None
    if sub.status == PlatformSubscriptionStatus.ACTIVE and sub.is_past_due:
        invoices = list(
            failed_unpaid_invoices(platform_subscription_id=sub.pk).order_by(
                "-payment_failed_at", "-pk"
            )
        )
        if invoices:
            return PlatformPaymentNotice(sub, invoices, downgraded=False)
        return None
    if (
        sub.status == PlatformSubscriptionStatus.CANCELLED
        and sub.downgraded_at is not None
        and not sub.organization.plan.allows_monetization
    ):
        return PlatformPaymentNotice(sub, [], downgraded=True)
    return None


def platform_payment_notice(
    organization: Organization,
) -> PlatformPaymentNotice | None:
    """The notice the organization's owners see, if any (one query when none)."""
    past_due_or_ended = Q(past_due_since__isnull=False) | Q(downgraded_at__isnull=False)
    return platform_payment_notice_of(
        _notice_subscriptions()
        .filter(past_due_or_ended, organization=organization)
        .first()
    )


def platform_payment_notice_for(
    platform_subscription_id: int,
) -> PlatformPaymentNotice | None:
    return platform_payment_notice_of(
        _notice_subscriptions().filter(pk=platform_subscription_id).first()
    )


def _notice_subscriptions() -> QuerySet[PlatformSubscription]:
    return PlatformSubscription.objects.select_related("plan", "organization__plan")


def catalog_objects(
    organization: Organization, connection: StripeConnection | None
) -> QuerySet[CatalogObject]:
    """The live catalog on the organization's connected account."""
    if connection is None:
        return CatalogObject.objects.none()
    return (
        CatalogObject.objects.filter(
            organization=organization,
            account_id=connection.account_id,
            retired_at__isnull=True,
        )
        .select_related("api", "tier_version", "tier_version__tier")
        .order_by("api__name", "-kind", "pk")  # each product, then its prices
    )


def open_drift(organization: Organization) -> QuerySet[CatalogDrift]:
    return (
        CatalogDrift.objects.filter(organization=organization, resolved_at=None)
        .select_related("catalog_object", "catalog_object__api")
        .order_by("-detected_at")
    )


def recent_resolved_drift(organization: Organization) -> QuerySet[CatalogDrift]:
    return (
        CatalogDrift.objects.filter(
            organization=organization, resolved_at__isnull=False
        )
        .select_related("catalog_object")
        .order_by("-resolved_at")
    )


def get_drift_for_owner(organization: Organization, drift_id: int) -> CatalogDrift:
    """A drift of this organization, or 404."""
    return get_object_or_404(
        CatalogDrift.objects.select_related("catalog_object", "organization"),
        pk=drift_id,
        organization=organization,
    )


# --- Invoices (the billing engine) --------------------------------------------


def _with_lines(qs: QuerySet[Invoice]) -> QuerySet[Invoice]:
    return qs.select_related(
        "subscription__api", "subscription__application", "tier_version__tier"
    ).prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.order_by("position"))
    )


def invoices_for_subscriber(request) -> QuerySet[Invoice]:
    """The caller's invoices in this organization (their own subscriptions)."""
    return _with_lines(
        Invoice.objects.filter(
            organization=request.tenant.organization,
            subscription__subscriber=request.user,
        ).exclude(kind=InvoiceKind.PLATFORM)
    )


def invoice_for_subscriber(request, invoice_id: int) -> Invoice:
    """One of the caller's invoices; another's (or another tenant's) is a 404."""
    return get_object_or_404(invoices_for_subscriber(request), pk=invoice_id)


def subscription_invoices(subscription: Subscription) -> list[Invoice]:
    """The subscription's invoices with their lines, newest first; each invoice's
    `subscription` is the one given (not read again)."""
    invoices = list(
        subscription.invoices.prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.order_by("position"))
        )
    )
    for invoice in invoices:
        invoice.subscription = subscription
    return invoices


@dataclass
class Preview:
    """The next invoice as it stands now: the lines the billing engine would write
    if the period closed with the usage counted so far."""

    at: datetime | None
    lines: list[Any] = field(default_factory=list)  # pricing.rating.Line
    currency: str = ""
    # Requests of the current period rated on this invoice so far; None when the
    # invoice rates no usage (a first period's in-advance fee, a trial's end).
    usage: int | None = None
    note: str = ""

    @property
    def total_minor(self) -> int:
        return total_minor(self.lines) if self.lines else 0

    @property
    def totals(self) -> list[tuple[str, int]]:
        """(currency, total minor) per currency, usually one."""
        sums: dict[str, int] = defaultdict(int)
        for line in self.lines:
            sums[line.currency] += line.amount_minor
        return sorted(sums.items())


def next_invoice_preview(
    subscription: Subscription,
    now: datetime,
    *,
    pending_upgrade: SubscriptionEvent | None = None,
) -> Preview | None:
    """What the subscription's next invoice holds so far, computed by the engine
    itself (a dry run of its next step, with the usage counted until `now`, flushed
    or still in Redis), so the preview and the invoice cannot disagree: a first
    period's in-advance fee; at a trial's end, the first paid period's fee (nothing
    if the subscription is cancelled at period end: it ends with the trial); at a
    period's end, the usage split at upgrades, their prorations, late usage of the
    period before, and the next period's fee on its version (a scheduled downgrade,
    the publisher's "move existing subscribers"), unless it ends or is blocked.
    None when no invoice is coming (free tier, pending payment, cancelled).

    The store's tier-change preview passes a subscription changed in memory (never
    saved) and, for an upgrade, its unsaved `tier_upgraded` event: the dry run then
    bills the period as it would after the change."""
    sub = subscription
    if sub.state in (SubscriptionState.PENDING_PAYMENT, SubscriptionState.CANCELLED):
        return None
    if sub.current_period_start is None or sub.started_at is None:
        return None
    if sub.next_invoice_at is None:
        return None
    ctx = engine.Context([sub], now)
    if pending_upgrade is not None:
        ctx.upgrades[sub.pk].append(pending_upgrade)
    planner = engine.Planner(sub, ctx)
    if planner.kind not in ("start", "trial_end", "close"):
        return None
    ranges = set(planner.ranges())
    if ranges:
        counters = unflushed_by_meter([sub.pk])
        # Meters' units still in Redis, up to now (a meter's rows are read per
        # segment, by the engine).
        ctx.live_meters = {k: n for k, n in counters.items() if n and k[1] < now}
        unflushed = {
            at: n
            for (_sub, at, key), n in counters.items()
            if n and key == REQUESTS_METER
        }
        rows = engine.usage_for_ranges(
            [(sub_id, start, min(end, now)) for sub_id, start, end in ranges]
        )
        for sub_id, start, end in ranges:
            stop = min(end, now)
            live = sum(n for at, n in unflushed.items() if start <= at < stop)
            ctx.usage[(sub_id, start, end)] = rows[(sub_id, start, stop)] + live
    step = planner.step()
    lines = [d.line for draft in step.drafts for d in draft.lines]
    at = sub.current_period_end if planner.kind == "close" else sub.next_invoice_at
    preview = Preview(at=at, lines=lines)
    preview.currency = lines[0].currency if lines else sub.tier_version.currency
    if planner.kind == "close":
        preview.usage = ctx.used(
            sub.pk, sub.current_period_start, sub.current_period_end
        )
    if planner.kind == "trial_end":
        if sub.cancel_at_period_end:
            preview.note = "The subscription ends with the trial: nothing is charged."
        elif lines:
            preview.note = (
                "Nothing is charged for the trial: this is the fee of your first "
                "paid period, invoiced when the trial ends."
            )
        else:
            preview.note = "Nothing is charged for the trial."
    elif planner.kind == "start":
        preview.note = "The fee of your first period, invoiced as it starts."
    elif sub.cancel_at_period_end:
        preview.note = "The subscription ends at the end of this period."
    elif sub.state == SubscriptionState.BLOCKED:
        preview.note = "No fee is charged while the subscription is blocked."
    return preview


@dataclass
class RevenueRow:
    month: str  # "2027-03"
    api: str
    tier: str
    currency: str
    invoices: int
    gross_minor: int
    fee_minor: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.fee_minor


@dataclass
class Revenue:
    rows: list[RevenueRow]
    # Per currency: months, and gross / fee / net per month (for the chart).
    series: dict[str, dict[str, list]]
    totals: dict[str, dict[str, int]]


def _revenue_invoices(organization) -> QuerySet:
    return Invoice.objects.filter(
        organization=organization, status=InvoiceStatus.PAID
    ).exclude(kind=InvoiceKind.PLATFORM)


def latest_payment(organization) -> datetime | None:
    """When the organization's newest paid subscription invoice was paid."""
    return (
        _revenue_invoices(organization)
        .order_by("-paid_at")
        .values_list("paid_at", flat=True)
        .first()
    )


def net_revenue(
    organization, *, start: datetime, end: datetime
) -> list[tuple[str, int]]:
    """(currency, net) of the paid subscription invoices of `revenue`'s range,
    by currency: what `revenue(...).totals` says of net, summed by the database
    in one read (no row per invoice)."""
    return [
        (row["currency"], row["gross"] - row["fee"])
        for row in _revenue_invoices(organization)
        .filter(paid_at__gte=start, paid_at__lt=end)
        .order_by("currency")
        .values("currency")
        .annotate(gross=Sum("total_minor"), fee=Sum("application_fee_minor"))
    ]


def revenue(organization, *, start: datetime, end: datetime) -> Revenue:
    """Paid subscription invoices of the organization, by month paid (UTC), API and
    tier (the tier version the invoice was written for): gross, the platform's fee,
    net. Amounts in each invoice's own currency, never converted."""
    invoices = (
        _revenue_invoices(organization)
        .filter(paid_at__gte=start, paid_at__lt=end)
        .values_list(
            "paid_at",
            "api__name",
            "api__version",
            "tier_version__tier__name",
            "currency",
            "total_minor",
            "application_fee_minor",
        )
    )
    grouped: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for paid_at, api, version, tier, currency, total, fee in invoices.iterator():
        month = paid_at.astimezone(UTC).strftime("%Y-%m")
        key = (month, f"{api} {version}" if api else "—", tier or "—", currency)
        grouped[key][0] += 1
        grouped[key][1] += total
        grouped[key][2] += fee
    rows = [
        RevenueRow(month, api, tier, currency, n, gross, fee)
        for (month, api, tier, currency), (n, gross, fee) in sorted(
            grouped.items(), key=lambda item: (item[0][0], item[0][1], item[0][2])
        )
    ]
    months = _months(start, end)
    series: dict[str, dict[str, list]] = {}
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        data = series.setdefault(
            row.currency,
            {"months": months, "gross": [0] * len(months), "fee": [0] * len(months)},
        )
        i = months.index(row.month)
        data["gross"][i] += row.gross_minor
        data["fee"][i] += row.fee_minor
        total = totals.setdefault(row.currency, {"gross": 0, "fee": 0, "net": 0})
        total["gross"] += row.gross_minor
        total["fee"] += row.fee_minor
        total["net"] += row.net_minor
    for data in series.values():
        data["net"] = [g - f for g, f in zip(data["gross"], data["fee"], strict=True)]
    return Revenue(
        rows=sorted(rows, key=lambda r: r.month, reverse=True),
        series=series,
        totals=totals,
    )


def _months(start: datetime, end: datetime) -> list[str]:
    months = []
    year, month = start.year, start.month
    while (year, month) < (end.year, end.month) or (
        (year, month) == (end.year, end.month) and end.day > 1
    ):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def failed_payments_owed(subscription: Subscription) -> dict[str, int]:
    """What `subscription`'s failed, still unpaid invoices owe, per currency (minor
    units): what saving a new card pays at once."""
    owed: dict[str, int] = {}
    for invoice in failed_unpaid_invoices(subscription_id=subscription.pk):
        due = invoice.total_minor - invoice.amount_paid_minor
        owed[invoice.currency] = owed.get(invoice.currency, 0) + due
    return owed
