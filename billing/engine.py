"""The billing engine: closes subscription periods, rates them and writes invoices.

docs/billing.md tells the whole story (what an invoice holds, when the jobs run);
in short:

- A subscription is **due** when `next_invoice_at` has passed by the settle delay
  (`BILLING_USAGE_SETTLE_SECONDS`). The job first flushes the gateway's counters,
  then claims due subscriptions in batches (`select_for_update(skip_locked=True)`,
  ordered by organization), and for each one takes **one step**:

  - START: the in-advance fixed fee of the current period (a new subscription);
  - TRIAL END: the trial is over; the subscription is re-anchored at the trial's end
    (as Stripe moves the billing cycle anchor) and its first paid period starts,
    with that period's fee;
  - CLOSE: the period is over: its arrears usage (split at tier upgrades: usage
    before a change rated on the old version, after it on the new), the upgrades'
    prorations (credit for the unused old fee, charge for the rest of the new one,
    to the second; on this invoice, as Stripe's default `create_prorations`), late
    usage of the period before (if any arrived after it was closed), and, unless the
    subscription cancels at period end, the next period's fixed fee on the next
    period's tier version (a scheduled downgrade, or the publisher's "move existing
    subscribers"). A BLOCKED subscription is charged no new fee while blocked;
  - FINAL: cancelled now (or its API retired): usage to the cancellation and the
    period's prorations, no new fee and no refund of the fee paid in advance.

  A subscription due for several steps (the job was down, or `run_billing --at` jumps
  ahead) takes them one batch after another.
- Usage for a whole batch is read with one query (a VALUES list of (subscription,
  start, end) ranges, each summed from the covering index); prices, events and
  earlier invoices with one query each: the number of queries grows per batch, not
  per subscription.
- Invoices are ledger rows. The unique constraints on `Invoice` make a second run,
  or a concurrent one that read the same due subscriptions, fail to write a
  duplicate: the batch is rolled back and redone one subscription at a time from
  fresh rows, and a subscription another run already advanced is skipped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from apimon import clock
from apimon.jobs import job_failure_record, job_failures_resolve
from apimon.models import Organization
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceSequence,
    InvoiceStatus,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    StripeConnection,
)
from billing.platform_billing import platform_period_end
from gateway.models import PendingUsage, UsageRecord
from gateway.services import usage_flush
from pricing.currencies import from_minor
from pricing.dates import day_month_year
from pricing.periods import add_cycles, period_bounds, period_containing
from pricing.rating import (
    Line,
    LineKind,
    Pricing,
    PricingModel,
    fixed_fee_lines,
    proration_lines,
    total_minor,
    usage_lines,
)
from pricing.stripe_money import application_fee, chargeable_lines
from publisher.meters import meter_line
from publisher.models import REQUESTS_METER, Meter, TierVersion
from publisher.services import tier_version_for_next_period
from store import lifecycle
from store.models import Subscription, SubscriptionEvent, SubscriptionState
from store.models import SubscriptionEventKind as Kind

log = logging.getLogger(__name__)

BILLING_JOB = "billing"

Range = tuple[int, datetime, datetime]  # (subscription id, start, end)


# --- What a step produces ---------------------------------------------------------


@dataclass
class DraftLine:
    line: Line
    tier_version_id: int | None
    # The meter a usage line rates (its line group); "" for fees and prorations.
    meter: str = ""


@dataclass
class Draft:
    """An invoice to write: kind, period, lines, and what was rated."""

    kind: str
    period_start: datetime
    period_end: datetime
    lines: list[DraftLine]
    tier_version_id: int | None
    rating: dict = field(default_factory=dict)
    source_event_id: int | None = None
    supersedes_id: int | None = None


@dataclass
class Step:
    """One subscription's step: invoices, and the lifecycle changes (moves and
    bookkeeping) that `store.lifecycle` writes."""

    subscription: Subscription
    drafts: list[Draft] = field(default_factory=list)
    changes: list[lifecycle.Change] = field(default_factory=list)

    def get(self, name: str, default: Any) -> Any:
        """A field's value as this step leaves it so far."""
        for change in reversed(self.changes):
            if name in change.fields:
                return change.fields[name]
        return default

    def keep(self, change: lifecycle.Change) -> None:
        self.changes.append(change)

    def book(self, **fields: Any) -> None:
        self.changes.append(lifecycle.bookkeeping(self.subscription, **fields))


@dataclass
class RunResult:
    steps: int = 0
    invoices: int = 0
    skipped: int = 0
    failed: int = 0
    batches: int = 0
    invoice_ids: list[int] = field(default_factory=list)

    def add(self, other: RunResult) -> None:
        self.steps += other.steps
        self.invoices += other.invoices
        self.skipped += other.skipped
        self.failed += other.failed
        self.batches += other.batches
        self.invoice_ids += other.invoice_ids


# --- The job --------------------------------------------------------------------


def settle_delay() -> timedelta:
    return timedelta(seconds=settings.BILLING_USAGE_SETTLE_SECONDS)


def due_subscriptions(
    *, now: datetime, organization: Organization | None = None, ids=None
):
    qs = Subscription.objects.filter(next_invoice_at__lte=now - settle_delay())
    if organization is not None:
        qs = qs.filter(organization=organization)
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    return qs


def billing_run(
    *,
    now: datetime | None = None,
    organization: Organization | None = None,
    subscription_ids: Iterable[int] | None = None,
    flush: bool = True,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    enqueue_push: bool = True,
) -> RunResult:
    """Take every due step of every due subscription (of one organization, or of
    the given ids), in batches; return what was done. Safe to run twice at once.

    `now` simulates the time (`run_billing --at`). `flush` runs the usage flush
    first, so the counters of the closing periods are in the database; if it fails
    (Redis down), nothing is closed.
    """
    now = now or clock.now()
    if flush:
        usage_flush()
    ids = list(subscription_ids) if subscription_ids is not None else None
    return run_in_batches(
        Batches(
            name="subscriptions",
            due=lambda: due_subscriptions(now=now, organization=organization, ids=ids),
            order=("organization_id", "next_invoice_at", "pk"),
            related=("customer",),
            invoice=lambda subs, failed: _invoice_batch(subs, now=now, failed=failed),
        ),
        size=batch_size or settings.BILLING_BATCH_SIZE,
        enqueue_push=enqueue_push,
        progress=progress,
    )


# --- Batches ----------------------------------------------------------------------


@dataclass(frozen=True)
class Batches:
    """What a job invoices in batches (subscriptions, platform plans): the rows due
    now, the order they are claimed in, and the function that writes a batch's
    invoices (adding the ids of rows it could not rate to `failed`)."""

    name: str
    due: Callable[[], Any]  # a QuerySet of the due rows
    order: tuple[str, ...]
    related: tuple[str, ...]
    invoice: Callable[[list, set[int]], RunResult]


def run_in_batches(
    batches: Batches,
    *,
    size: int,
    enqueue_push: bool,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Claim due rows `size` at a time (`select_for_update(skip_locked=True)`, so
    two runs never take the same row) and invoice each batch in one transaction.

    The invoices' unique constraints make a second run, or a concurrent one that
    read the same rows, fail to write a duplicate: the batch is rolled back and
    redone one row at a time from fresh rows, and a row another run advanced
    meanwhile is skipped. Rows that could not be rated (logged) and those another
    run invoiced are not claimed again in this run. The written invoices are pushed
    to Stripe by tasks enqueued once each batch commits."""
    result = RunResult()
    failed: set[int] = set()
    collided: set[int] = set()
    while True:
        with transaction.atomic():
            rows = list(
                batches.due()
                .exclude(pk__in=failed | collided)
                .order_by(*batches.order)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related(*batches.related)[:size]
            )
            if not rows:
                break
            try:
                with transaction.atomic():
                    done = batches.invoice(rows, failed)
            except Exception as exc:
                # Another run wrote some of these invoices after we read the rows
                # (possible where skip_locked cannot lock, e.g. SQLite), or one
                # row's data broke the batch's writes: redo them one by one from
                # fresh rows, so a bad row fails alone (apimon.jobs).
                log.info(
                    "%s batch failed (%s); redoing one by one",
                    batches.name,
                    type(exc).__name__,
                )
                done = RunResult(batches=1)
                for row in rows:
                    done.add(_redo_one(batches, row, failed, collided))
            job_failures_resolve(
                job=BILLING_JOB,
                refs=(_ref(row) for row in rows if row.pk not in failed),
            )
            if enqueue_push and done.invoice_ids:
                _enqueue_push_on_commit(done.invoice_ids)
        result.add(done)
        if progress:
            progress(done.steps + done.skipped)
    result.failed = len(failed)
    return result


def _redo_one(batches: Batches, row, failed: set[int], collided: set[int]) -> RunResult:
    pk = row.pk
    try:
        with transaction.atomic():
            fresh = list(
                batches.due()
                .filter(pk=pk)
                .select_for_update(of=("self",))
                .select_related(*batches.related)
            )
            if not fresh:
                return RunResult(skipped=1)
            return batches.invoice(fresh, failed)
    except IntegrityError:
        log.info("%s %s was invoiced by another run", batches.name, pk)
        collided.add(pk)
        return RunResult(skipped=1)
    except Exception as exc:
        _item_failed(row, exc, failed)
        return RunResult()


def _ref(row) -> str:
    """ "subscription 42", "platform subscription 7": the item a JobFailure names."""
    return f"{row._meta.verbose_name} {row.pk}"


def _item_failed(row, exc: Exception, failed: set[int]) -> None:
    """One row could not be invoiced: record it; the next run tries it again."""
    failed.add(row.pk)
    job_failure_record(
        job=BILLING_JOB, ref=_ref(row), organization_id=row.organization_id, error=exc
    )


def _enqueue_push_on_commit(invoice_ids: list[int]) -> None:
    from billing import tasks

    ids = list(invoice_ids)

    def enqueue() -> None:
        for pk in ids:
            tasks.push_invoice.delay(pk)

    transaction.on_commit(enqueue)


# --- A batch ----------------------------------------------------------------------


class Context:
    """What a batch reads in bulk: prices, upgrade events, earlier closing invoices,
    newer tier versions, and usage per range."""

    def __init__(self, subs: list[Subscription], now: datetime) -> None:
        self.now = now
        ids = [s.pk for s in subs]
        earliest = min(
            (s.current_period_start for s in subs if s.current_period_start),
            default=now,
        )
        self.upgrades: dict[int, list[SubscriptionEvent]] = defaultdict(list)
        for event in SubscriptionEvent.objects.filter(
            subscription_id__in=ids, kind=Kind.TIER_UPGRADED, at__gte=earliest
        ).order_by("at", "pk"):
            self.upgrades[event.subscription_id].append(event)
        # The invoice that billed each subscription's previous period (for late
        # usage): a renewal, or the newest correction of it.
        self.previous: dict[tuple[int, datetime], Invoice] = {}
        for invoice in Invoice.objects.filter(
            subscription_id__in=ids,
            kind__in=[InvoiceKind.RENEWAL, InvoiceKind.CORRECTION],
            period_end__in={s.current_period_start for s in subs},
        ).order_by("pk"):
            self.previous[(invoice.subscription_id, invoice.period_end)] = invoice
        # Tiers with a "move existing subscribers" version: only their
        # subscriptions ask publisher.services.tier_version_for_next_period.
        self.migrating: dict[int, int] = {}
        for tier_id, number in TierVersion.objects.filter(
            tier_id__in={s.tier_id for s in subs}, migrate_existing=True
        ).values_list("tier_id", "number"):
            self.migrating[tier_id] = max(number, self.migrating.get(tier_id, 0))
        version_ids = {s.tier_version_id for s in subs}
        version_ids |= {s.scheduled_tier_version_id for s in subs}
        for events in self.upgrades.values():
            version_ids |= {e.from_tier_version_id for e in events}
            version_ids |= {e.to_tier_version_id for e in events}
        for invoice in self.previous.values():
            version_ids |= {
                seg["tier_version"] for seg in invoice.rating.get("segments", [])
            }
        self._versions: dict[int, TierVersion] = {}
        self._pricing: dict[int, Pricing] = {}
        self._meter_pricing: dict[int, list[tuple[str, Pricing]]] = {}
        self._meters: dict[int, dict[str, Meter]] = {}
        self._meter_usage: dict[Range, dict[str, int]] = {}
        # Units of meters not yet flushed, (subscription, bucket start, meter) → n:
        # set by the next-invoice preview, never by a billing run.
        self.live_meters: dict[tuple[int, datetime, str], int] = {}
        self.load_versions(version_ids)
        self.usage: dict[Range, int] = {}
        self._org_ids = {s.organization_id for s in subs}

    # Read only when invoices are written (a preview's dry run never needs them).
    @cached_property
    def connections(self) -> dict[int, StripeConnection]:
        return {
            c.organization_id: c
            for c in StripeConnection.objects.filter(organization_id__in=self._org_ids)
        }

    @cached_property
    def commissions(self) -> dict[int, Decimal]:
        return dict(
            Organization.objects.filter(pk__in=self._org_ids).values_list(
                "pk", "plan__commission_percent"
            )
        )

    def load_versions(self, ids: Iterable[int | None]) -> None:
        wanted = {pk for pk in ids if pk and pk not in self._versions}
        if wanted:
            for version in (
                TierVersion.objects.filter(pk__in=wanted)
                .select_related("tier")
                .prefetch_related("meter_prices__bands")
            ):
                self._versions[version.pk] = version

    def version(self, pk: int) -> TierVersion:
        if pk not in self._versions:
            self.load_versions([pk])
        return self._versions[pk]

    def pricing(self, pk: int) -> Pricing:
        if pk not in self._pricing:
            self._pricing[pk] = self.version(pk).pricing()
        return self._pricing[pk]

    def meter_pricing(self, pk: int) -> list[tuple[str, Pricing]]:
        """The meters other than requests that version `pk` prices, by key."""
        if pk not in self._meter_pricing:
            version = self.version(pk)
            self._meter_pricing[pk] = [
                (p.meter, p.pricing(version.currency))
                for p in (
                    version.other_meter_prices() if version.charges_meters else ()
                )
                if p.pricing_model != PricingModel.FREE
            ]
        return self._meter_pricing[pk]

    def meters(self, api_id: int) -> dict[str, Meter]:
        """An API's meters by key (names, units and scales for the lines)."""
        if api_id not in self._meters:
            self._meters[api_id] = {
                m.key: m for m in Meter.objects.filter(api_id=api_id)
            }
        return self._meters[api_id]

    def meter_used(self, sub_id: int, start: datetime, end: datetime) -> dict:
        """Units per meter (not requests) counted in [start, end). Read only for
        subscriptions whose versions price a meter, one query per range."""
        key = (sub_id, start, end)
        if key not in self._meter_usage:
            used = meter_usage_for_range(key)
            for (sub, at, meter), n in self.live_meters.items():
                if sub == sub_id and start <= at < end and meter != REQUESTS_METER:
                    used[meter] = used.get(meter, 0) + n
            self._meter_usage[key] = used
        return self._meter_usage[key]

    def read_usage(self, ranges: Iterable[Range]) -> None:
        wanted = [r for r in set(ranges) if r not in self.usage]
        self.usage.update(usage_for_ranges(wanted))

    def used(self, sub_id: int, start: datetime, end: datetime) -> int:
        return self.usage[(sub_id, start, end)]


def usage_for_ranges(ranges: list[Range]) -> dict[Range, int]:
    """Requests counted per (subscription, start, end) range, from the flushed rows
    and the ingested units the flush has not added yet (`PendingUsage`), in one
    query per 500 ranges (a VALUES list of the ranges, each summed by two
    subqueries: one snapshot, so units the flush moves meanwhile count once)."""
    result = {r: 0 for r in ranges}
    table = UsageRecord._meta.db_table
    pending = PendingUsage._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    for offset in range(0, len(ranges), 500):
        chunk = ranges[offset : offset + 500]
        if connection.vendor == "postgresql":
            row = "(%s, %s, %s::timestamptz, %s::timestamptz)"
        else:
            row = "(%s, %s, %s, %s)"
        values = ", ".join([row] * len(chunk))
        params: list[Any] = []
        for i, (sub_id, start, end) in enumerate(chunk):
            params += [i, sub_id, adapt(start), adapt(end)]
        # One range scan of the (subscription, hour) INCLUDE (count) index per range:
        # an index-only scan on PostgreSQL, no join to plan, no sort. A join of the
        # ranges with the table made PostgreSQL misjudge how few rows they need
        # (scanning the whole table, or all of the batch's rows then sorting them).
        sql = (
            f"WITH r (k, sub_id, start_at, end_at) AS (VALUES {values}) "  # noqa: S608
            f"SELECT r.k, (SELECT SUM(u.count) FROM {table} u "
            "WHERE u.subscription_id = r.sub_id AND u.meter = 'requests' "
            "AND u.hour >= r.start_at "
            "AND u.hour < r.end_at), "
            # Ingested units not yet flushed (a few seconds' worth).
            f"(SELECT SUM(p.count) FROM {pending} p "
            "WHERE p.subscription_id = r.sub_id AND p.meter = 'requests' "
            "AND p.hour >= r.start_at AND p.hour < r.end_at) FROM r"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for k, total, unflushed in cursor.fetchall():
                result[chunk[k]] = int(total or 0) + int(unflushed or 0)
    return result


def meter_usage_for_range(key: Range) -> dict[str, int]:
    """{meter key: units} counted for a subscription in [start, end), every meter
    but requests (which `usage_for_ranges` reads in bulk): the flushed rows and the
    ingested units not yet flushed (`PendingUsage`), in one statement (one
    snapshot)."""
    sub_id, start, end = key
    parts, params = [], []
    for model in (UsageRecord, PendingUsage):
        sql, qs_params = (
            model.objects.filter(subscription_id=sub_id, hour__gte=start, hour__lt=end)
            .exclude(meter=REQUESTS_METER)
            .order_by()
            .values_list("meter", "count")
            .query.sql_with_params()
        )
        parts.append(sql)
        params += qs_params
    # The ORM's own SQL and parameters, in one statement.
    sql = (
        f'SELECT x."meter", SUM(x."count") FROM ({parts[0]} UNION ALL {parts[1]}) x '  # noqa: S608
        'GROUP BY x."meter"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {meter: int(total or 0) for meter, total in cursor.fetchall()}


def _invoice_batch(
    subs: list[Subscription], *, now: datetime, failed: set[int]
) -> RunResult:
    ctx = Context(subs, now)
    planners = []
    for sub in subs:
        try:
            planner = Planner(sub, ctx)
            planners.append(planner)
        except Exception as exc:
            _item_failed(sub, exc, failed)
    ctx.read_usage(r for p in planners for r in p.ranges())
    steps = []
    for planner in planners:
        try:
            steps.append(planner.step())
        except Exception as exc:
            _item_failed(planner.sub, exc, failed)
    invoice_ids = write_steps(steps, ctx=ctx, now=now)
    return RunResult(
        steps=len(steps), invoices=len(invoice_ids), batches=1, invoice_ids=invoice_ids
    )


# --- One subscription's step ------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Part of a period whose usage is billed: [start, end) within period
    [period_start, period_end)."""

    period_start: datetime
    period_end: datetime
    start: datetime
    end: datetime


class Planner:
    """Decides and computes one step of one subscription (no writes)."""

    def __init__(self, sub: Subscription, ctx: Context) -> None:
        self.sub = sub
        self.ctx = ctx
        self.kind = self._classify()

    # What kind of step, from the subscription's fields alone.
    def _classify(self) -> str:
        sub = self.sub
        if sub.state == SubscriptionState.PENDING_PAYMENT or sub.started_at is None:
            return "none"
        if sub.current_period_start is None or sub.current_period_end is None:
            return "none"
        if sub.state == SubscriptionState.CANCELLED:
            return "final" if sub.cancelled_at else "none"
        if sub.state == SubscriptionState.TRIALING:
            return "trial_end" if sub.trial_end else "none"
        if sub.next_invoice_at < sub.current_period_end:
            return "start"
        return "close"

    # The usage ranges this step reads, so a batch reads them in one query.
    def ranges(self) -> list[Range]:
        ranges = []
        for window in self._windows():
            ranges.append((self.sub.pk, window.start, window.end))
            for event in self._upgrades_in(window):
                if "usage_before" not in (event.data or {}):
                    ranges.append((self.sub.pk, window.period_start, event.at))
        previous = self._previous_invoice()
        if previous is not None:
            ranges.append((self.sub.pk, previous.period_start, previous.period_end))
        return ranges

    def _windows(self) -> list[Window]:
        sub = self.sub
        if self.kind == "close":
            start, end = sub.current_period_start, sub.current_period_end
            return [Window(start, end, start, end)]
        if self.kind != "final":
            return []
        # Cancelled: every period from the current one to the cancellation.
        cycle = self.ctx.version(sub.tier_version_id).billing_cycle
        free_until = sub.trial_end or sub.current_period_start
        windows = []
        start, end = sub.current_period_start, sub.current_period_end
        while start < sub.cancelled_at:
            window_start = max(start, free_until)
            window_end = min(end, sub.cancelled_at)
            if window_start < window_end:
                windows.append(Window(start, end, window_start, window_end))
            start, end = end, add_cycles(end, cycle, 1)
        return windows

    def _upgrades_in(self, window: Window) -> list[SubscriptionEvent]:
        return [
            e
            for e in self.ctx.upgrades.get(self.sub.pk, [])
            if window.period_start <= e.at < window.end
        ]

    def _previous_invoice(self) -> Invoice | None:
        if self.kind not in ("close", "final"):
            return None
        return self.ctx.previous.get((self.sub.pk, self.sub.current_period_start))

    # The step itself.
    def step(self) -> Step:
        step = Step(self.sub)
        match self.kind:
            case "none":
                step.book(next_invoice_at=None)
            case "start":
                self._start(step)
            case "trial_end":
                self._trial_end(step)
            case "close":
                self._close(step)
            case "final":
                self._final(step)
        return step

    def _start(self, step: Step) -> None:
        sub = self.sub
        start, end = sub.current_period_start, sub.current_period_end
        # The version in force when the period started (an upgrade may have come
        # before this step ran; its proration covers the rest).
        events = self._upgrades_in(Window(start, end, start, end))
        version_id = events[0].from_tier_version_id if events else sub.tier_version_id
        lines = self._fee_lines(version_id, start, end)
        if lines:
            step.drafts.append(
                Draft(InvoiceKind.START, start, end, lines, tier_version_id=version_id)
            )
        step.book(next_invoice_at=self._next_invoice_at(version_id, end))

    def _trial_end(self, step: Step) -> None:
        sub = self.sub
        at = sub.trial_end
        if sub.cancel_at_period_end:
            # Subscription.ends_at: what the store shows as the end date.
            step.keep(lifecycle.end_at_period_end(sub, at=sub.ends_at))
            return
        version_id = self._next_version(step, at=at)
        cycle = self.ctx.version(version_id).billing_cycle
        start, end = period_bounds(at, cycle, 0)
        step.keep(lifecycle.end_trial(sub, at=at, period=(start, end)))
        lines = self._fee_lines(version_id, start, end)
        if lines:
            step.drafts.append(
                Draft(InvoiceKind.START, start, end, lines, tier_version_id=version_id)
            )
        step.book(next_invoice_at=self._next_invoice_at(version_id, end))

    def _close(self, step: Step) -> None:
        sub = self.sub
        start, end = sub.current_period_start, sub.current_period_end
        lines, rating = self._usage(self._windows())
        lines += self._late_usage_lines() + self._late_meter_lines()
        if sub.cancel_at_period_end:
            if lines:
                step.drafts.append(
                    Draft(
                        InvoiceKind.FINAL,
                        start,
                        end,
                        lines,
                        tier_version_id=sub.tier_version_id,
                        rating=rating,
                    )
                )
            step.keep(lifecycle.end_at_period_end(sub, at=sub.ends_at))
            return
        version_id = self._next_version(step, at=end)
        version = self.ctx.version(version_id)
        anchor = step.get("started_at", sub.started_at)
        if version.billing_cycle != self.ctx.version(sub.tier_version_id).billing_cycle:
            # A new cycle restarts the anchor at the boundary (same time of day, so
            # usage hours still fall on period bounds).
            anchor = end
            step.book(started_at=end)
        _index, next_start, next_end = period_containing(
            anchor, version.billing_cycle, end
        )
        if next_start != end:
            log.warning("subscription %s: period bounds off its anchor", sub.pk)
            next_start = end
        fee = []
        if sub.state != SubscriptionState.BLOCKED:
            fee = self._fee_lines(version_id, next_start, next_end)
        # A scheduled change to a tier in another currency: an invoice has one
        # currency, so the new period's fee is then an invoice of its own.
        own_fee = bool(fee and lines) and fee[0].line.currency != lines[0].line.currency
        if not own_fee:
            lines, fee = lines + fee, []
        if lines:
            step.drafts.append(
                Draft(
                    InvoiceKind.RENEWAL,
                    start,
                    end,
                    lines,
                    tier_version_id=sub.tier_version_id,
                    rating=rating,
                )
            )
        if fee:
            step.drafts.append(
                Draft(
                    InvoiceKind.RENEWAL_FEE,
                    next_start,
                    next_end,
                    fee,
                    tier_version_id=version_id,
                )
            )
        step.book(
            current_period_start=next_start,
            current_period_end=next_end,
            next_invoice_at=self._next_invoice_at(version_id, next_end),
        )

    def _final(self, step: Step) -> None:
        sub = self.sub
        windows = self._windows()
        lines, rating = self._usage(windows)
        lines += self._late_usage_lines() + self._late_meter_lines()
        if lines:
            step.drafts.append(
                Draft(
                    InvoiceKind.FINAL,
                    sub.current_period_start,
                    max(sub.cancelled_at, sub.current_period_start),
                    lines,
                    tier_version_id=sub.tier_version_id,
                    rating=rating,
                )
            )
        step.book(next_invoice_at=None)

    # Helpers.
    def _next_version(self, step: Step, *, at: datetime) -> int:
        """The version of the period starting at `at`: a scheduled downgrade, else
        the publisher's rule (publisher.services.tier_version_for_next_period)."""
        sub = self.sub
        if sub.scheduled_tier_version_id:
            new = sub.scheduled_tier_version_id
            step.keep(lifecycle.apply_scheduled_tier(sub, at=at))
            self.ctx.load_versions([new])
            return new
        own = self.ctx.version(sub.tier_version_id)
        newest = self.ctx.migrating.get(sub.tier_id, 0)
        if own.tier_id == sub.tier_id and newest <= own.number:
            return sub.tier_version_id
        new = tier_version_for_next_period(tier_id=sub.tier_id, version=own).pk
        if new != sub.tier_version_id:
            step.keep(lifecycle.migrate_tier_version(sub, version_id=new, at=at))
            self.ctx.load_versions([new])
        return new

    def _next_invoice_at(self, version_id: int, period_end: datetime):
        pricing = self.ctx.pricing(version_id)
        charges = self.ctx.version(version_id).charges_meters
        return (
            None if pricing.model == PricingModel.FREE and not charges else period_end
        )

    def _fee_lines(self, version_id: int, start, end) -> list[DraftLine]:
        lines = fixed_fee_lines(
            self.ctx.pricing(version_id), period_start=start, period_end=end
        )
        return [DraftLine(line, version_id) for line in chargeable_lines(lines)]

    def _usage(self, windows: list[Window]) -> tuple[list[DraftLine], dict]:
        """Arrears lines of the windows, each split at the upgrades in it: usage
        before a change is rated on the old version, after it on the new one, each
        with its full allowance and bands; then the upgrades' prorations (a credit
        for the unused old fee, a charge for the rest of the new one)."""
        lines: list[DraftLine] = []
        prorations: list[DraftLine] = []
        by_meter: dict[str, list[DraftLine]] = defaultdict(list)
        segments = []
        for window in windows:
            total = self.ctx.used(self.sub.pk, window.start, window.end)
            events = self._upgrades_in(window)
            bounds = [window.start] + [max(e.at, window.start) for e in events]
            bounds.append(window.end)
            versions = [e.from_tier_version_id for e in events]
            versions.append(self.sub.tier_version_id)
            before = [self._usage_before(e, window) for e in events]
            cumulative = [0] + [min(max(b, 0), total) for b in before] + [total]
            for i, version_id in enumerate(versions):
                seg_start, seg_end = bounds[i], bounds[i + 1]
                if seg_start >= seg_end and events:
                    continue  # an upgrade at the very start of the window
                quantity = max(0, cumulative[i + 1] - max(cumulative[: i + 1]))
                rated = usage_lines(
                    self.ctx.pricing(version_id),
                    quantity,
                    period_start=seg_start,
                    period_end=seg_end,
                )
                lines += [
                    DraftLine(x, version_id, REQUESTS_METER)
                    for x in chargeable_lines(rated)
                ]
                segment = {
                    "tier_version": version_id,
                    "start": seg_start.isoformat(),
                    "end": seg_end.isoformat(),
                    "quantity": quantity,
                }
                if metered := self._meter_lines(version_id, seg_start, seg_end):
                    segment["meters"] = {}
                    for key, quantity_of_meter, drafts in metered:
                        segment["meters"][key] = quantity_of_meter
                        by_meter[key] += drafts
                segments.append(segment)
            for event in events:
                prorations += self._proration(event, window)
        for key in sorted(by_meter):  # one line group per meter, after requests
            lines += by_meter[key]
        lines += prorations
        rating = {"segments": segments}
        if windows:
            rating["quantity"] = sum(s["quantity"] for s in segments)
        return lines, rating

    def _meter_lines(
        self, version_id: int, start: datetime, end: datetime
    ) -> list[tuple[str, int, list[DraftLine]]]:
        """The meters version `version_id` prices, rated over [start, end) with
        `pricing.rating.usage_lines` (its rules unchanged), described per meter:
        (key, quantity, lines) per meter. A meter's hour rows fall in the segment
        their hour starts in (a tier change inside an hour leaves that hour's units
        to the version before it)."""
        priced = self.ctx.meter_pricing(version_id)
        if not priced:
            return []
        used = self.ctx.meter_used(self.sub.pk, start, end)
        known = self.ctx.meters(self.sub.api_id)
        result = []
        for key, pricing in priced:
            quantity = used.get(key, 0)
            rated = usage_lines(pricing, quantity, period_start=start, period_end=end)
            meter = known.get(key)
            described = [
                meter_line(x, meter) if meter else x for x in chargeable_lines(rated)
            ]
            result.append(
                (key, quantity, [DraftLine(x, version_id, key) for x in described])
            )
        return result

    def _proration(self, event: SubscriptionEvent, window: Window) -> list[DraftLine]:
        """An upgrade's fixed fee, prorated by the exact time left in the period, on
        the invoice that closes the period (as Stripe prorates by default). Not in a
        trial (the store records `prorated: false`)."""
        if not (event.data or {}).get("prorated", True):
            return []
        if not window.period_start <= event.at < window.period_end:
            return []
        old = self.ctx.version(event.from_tier_version_id)
        new = self.ctx.version(event.to_tier_version_id)
        lines = proration_lines(
            old=self.ctx.pricing(old.pk),
            new=self.ctx.pricing(new.pk),
            period_start=window.period_start,
            period_end=window.period_end,
            changed_at=event.at,
            old_name=old.tier.name,
            new_name=new.tier.name,
        )
        return [
            DraftLine(line, old.pk if line.amount_minor < 0 else new.pk)
            for line in chargeable_lines(lines)
        ]

    def _usage_before(self, event: SubscriptionEvent, window: Window) -> int:
        data = event.data or {}
        if "usage_before" in data:
            return int(data["usage_before"])
        return self.ctx.used(self.sub.pk, window.period_start, event.at)

    def _late_usage_lines(self) -> list[DraftLine]:
        """Requests of the previous period counted after it was invoiced (the flush
        or an ingest came late): the difference its rating makes now, on the
        version its last segment was rated with, as one adjustment line."""
        previous = self._previous_invoice()
        if previous is None or not previous.rating.get("segments"):
            return []
        counted = self.ctx.used(self.sub.pk, previous.period_start, previous.period_end)
        billed = previous.rating.get("quantity", 0)
        late = counted - billed
        if late <= 0:
            return []
        last = previous.rating["segments"][-1]
        pricing = self.ctx.pricing(last["tier_version"])
        quantity = last["quantity"]
        amount = total_minor(usage_lines(pricing, quantity + late)) - total_minor(
            usage_lines(pricing, quantity)
        )
        line = Line(
            kind=LineKind.LATE_USAGE,
            description=(
                f"Late usage: {late:,} request{'s' if late != 1 else ''} of the "
                f"period of invoice {previous.number}, counted after it was issued"
            ),
            quantity=1,
            unit_price=from_minor(amount, pricing.currency),
            amount_minor=amount,
            currency=pricing.currency,
            period_start=previous.period_start,
            period_end=previous.period_end,
        )
        if not amount:
            return []
        return [DraftLine(x, last["tier_version"]) for x in chargeable_lines([line])]

    def _late_meter_lines(self) -> list[DraftLine]:
        """Units of a meter counted after the previous period was invoiced: per
        segment that priced the meter, the units its hours hold now beyond what the
        invoice rated, and the difference their rating makes on that segment's
        version; one adjustment line per meter, after requests'."""
        previous = self._previous_invoice()
        if previous is None:
            return []
        late: dict[str, int] = defaultdict(int)
        amounts: dict[str, int] = defaultdict(int)
        version_of: dict[str, int] = {}
        currency = ""
        for segment in previous.rating.get("segments", []):
            billed = segment.get("meters") or {}
            if not billed:
                continue
            start = datetime.fromisoformat(segment["start"])
            end = datetime.fromisoformat(segment["end"])
            counted = self.ctx.meter_used(self.sub.pk, start, end)
            for key, pricing in self.ctx.meter_pricing(segment["tier_version"]):
                if key not in billed:
                    continue
                more = counted.get(key, 0) - billed[key]
                if more <= 0:
                    continue
                late[key] += more
                amounts[key] += total_minor(
                    usage_lines(pricing, billed[key] + more)
                ) - total_minor(usage_lines(pricing, billed[key]))
                version_of[key] = segment["tier_version"]
                currency = pricing.currency
        known = self.ctx.meters(self.sub.api_id)
        drafts = []
        for key in sorted(late):
            meter = known.get(key)
            units = (
                f"{meter.unit_label}{'s' if late[key] != 1 else ''}"
                if meter
                else f"{key} units"
            )
            name = meter.display_name if meter else key
            line = Line(
                kind=LineKind.LATE_USAGE,
                description=(
                    f"{name}: late usage: {late[key]:,} {units} of the period of "
                    f"invoice {previous.number}, counted after it was issued"
                ),
                quantity=1,
                unit_price=from_minor(amounts[key], currency),
                amount_minor=amounts[key],
                currency=currency,
                period_start=previous.period_start,
                period_end=previous.period_end,
            )
            if amounts[key]:
                drafts += [
                    DraftLine(x, version_of[key], key) for x in chargeable_lines([line])
                ]
        return drafts


# --- Writing ----------------------------------------------------------------------


def write_steps(steps: list[Step], *, ctx: Context, now: datetime) -> list[int]:
    """Write the steps' invoices, lines, events and subscription changes in bulk;
    return the ids of the invoices to push."""
    invoices: list[Invoice] = []
    drafts: list[Draft] = []
    for step in steps:
        sub = step.subscription
        for draft in step.drafts:
            invoices.append(
                build_invoice(
                    sub,
                    draft,
                    ctx.connections,
                    commission=ctx.commissions[sub.organization_id],
                    now=now,
                )
            )
            drafts.append(draft)
    _number(invoices)
    Invoice.objects.bulk_create(invoices)
    InvoiceLine.objects.bulk_create(
        line for invoice, draft in zip(invoices, drafts, strict=True)
        for line in build_lines(invoice, draft)
    )  # fmt: skip
    lifecycle.save_all([c for step in steps for c in step.changes], now=now)
    return [i.pk for i in invoices if i.status == InvoiceStatus.DRAFT]


def build_invoice(
    sub: Subscription,
    draft: Draft,
    connections: dict,
    *,
    commission: Decimal,
    now: datetime,
) -> Invoice:
    currency = draft.lines[0].line.currency
    total = total_minor(d.line for d in draft.lines)
    percent = commission
    connection_ = connections.get(sub.organization_id)
    account = connection_.account_id if connection_ and connection_.is_connected else ""
    invoice = Invoice(
        organization_id=sub.organization_id,
        subscription=sub,
        kind=draft.kind,
        period_start=draft.period_start,
        period_end=draft.period_end,
        currency=currency,
        total_minor=total,
        commission_percent=percent,
        application_fee_minor=application_fee(total, percent, currency),
        api_id=sub.api_id,
        tier_version_id=draft.tier_version_id,
        source_event_id=draft.source_event_id,
        supersedes_id=draft.supersedes_id,
        rating=draft.rating,
        stripe_account_id=account,
        stripe_customer_id=sub.customer.stripe_customer_id if sub.customer else "",
        created_at=now,
    )
    if total == 0 and all(d.line.amount_minor == 0 for d in draft.lines):
        # Nothing to collect (e.g. a free first band): the invoice documents the
        # usage, and Stripe is not asked to charge 0.
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
    return invoice


def build_lines(invoice: Invoice, draft: Draft) -> list[InvoiceLine]:
    return [
        InvoiceLine(
            invoice=invoice,
            position=position,
            kind=str(d.line.kind),
            description=d.line.description[:500],
            quantity=d.line.quantity,
            unit_price=d.line.unit_price,
            amount_minor=d.line.amount_minor,
            period_start=d.line.period_start,
            period_end=d.line.period_end,
            tier_version_id=d.tier_version_id,
            meter=d.meter,
        )
        for position, d in enumerate(draft.lines, start=1)
    ]


def _number(invoices: list[Invoice]) -> None:
    """Give each invoice the next number of its organization: ACME-000042."""
    groups: dict[tuple[int, bool], list[Invoice]] = defaultdict(list)
    for invoice in invoices:
        platform = invoice.kind == InvoiceKind.PLATFORM
        groups[(invoice.organization_id, platform)].append(invoice)
    if not groups:
        return
    slugs = dict(
        Organization.objects.filter(pk__in={org for org, _ in groups}).values_list(
            "pk", "slug"
        )
    )
    for (org_id, platform), batch in sorted(groups.items()):
        scope = "platform" if platform else "org"
        last = reserve_numbers(f"{scope}:{org_id}", len(batch))
        # Platform invoices (the platform sells to the organization) are told apart
        # by a "P": ACME-P000003. The whole slug (unique) keeps numbers unique on
        # each Stripe account: a connected account another organization used before,
        # and the platform's own account, where every organization's plan is billed.
        prefix = slugs[org_id].upper() + ("-P" if platform else "-")
        for n, invoice in enumerate(batch, start=last - len(batch) + 1):
            invoice.number = f"{prefix}{n:06d}"


def reserve_numbers(key: str, count: int) -> int:
    """Reserve `count` numbers of a sequence; returns the last one reserved. One
    atomic upsert, so two writers never get the same numbers (and a rolled-back
    transaction gives its numbers back)."""
    quote = connection.ops.quote_name
    table, key_column = quote(InvoiceSequence._meta.db_table), quote("key")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({key_column}, last_number) "  # noqa: S608
            f"VALUES (%s, %s) ON CONFLICT ({key_column}) DO UPDATE SET "
            f"last_number = {table}.last_number + excluded.last_number "
            "RETURNING last_number",
            [key, count],
        )
        return int(cursor.fetchone()[0])


# --- Platform plans ------------------------------------------------------------------


def platform_billing_run(
    *,
    now: datetime | None = None,
    organization: Organization | None = None,
    enqueue_push: bool = True,
) -> RunResult:
    """Invoice organizations' paid platform plans, monthly and in advance, on the
    platform's own Stripe account: each ACTIVE PlatformSubscription whose
    `next_invoice_at` has passed gets the plan's monthly price for the month that
    starts then (anchored at `started_at`, month-end clamped). Claimed in batches
    like the subscriptions (`run_in_batches`); one invoice per organization and
    period (a constraint)."""
    now = now or clock.now()

    def due():
        rows = PlatformSubscription.objects.filter(next_invoice_at__lte=now)
        if organization is not None:
            rows = rows.filter(organization=organization)
        return rows

    def invoice(subs: list, failed: set[int]) -> RunResult:
        ids = _platform_invoices(subs, now=now)
        return RunResult(steps=len(subs), invoices=len(ids), batches=1, invoice_ids=ids)

    return run_in_batches(
        Batches(
            name="platform plans",
            due=due,
            order=("pk",),
            related=("plan", "scheduled_plan"),
            invoice=invoice,
        ),
        size=settings.BILLING_BATCH_SIZE,
        enqueue_push=enqueue_push,
    )


def _platform_invoices(subs: list, *, now: datetime) -> list[int]:
    invoices, lines = [], []
    for sub in subs:
        if (
            sub.status != PlatformSubscriptionStatus.ACTIVE
            or sub.plan is None
            or sub.started_at is None
        ):
            sub.next_invoice_at = None
            continue
        # A month ends: the owner's scheduled downgrade or cancellation applies.
        if sub.next_invoice_at > sub.started_at and not platform_period_end(
            sub, at=sub.next_invoice_at
        ):
            continue
        plan = sub.plan
        _i, start, end = period_containing(sub.started_at, "month", sub.next_invoice_at)
        sub.next_invoice_at = end
        if plan.monthly_price_minor <= 0:
            continue
        currency = plan.currency.lower()
        invoice = Invoice(
            organization_id=sub.organization_id,
            platform_subscription=sub,
            kind=InvoiceKind.PLATFORM,
            period_start=start,
            period_end=end,
            currency=currency,
            total_minor=plan.monthly_price_minor,
            stripe_customer_id=sub.customer_id,
            created_at=now,
            rating={"plan": plan.slug},
        )
        invoices.append(invoice)
        lines.append(
            InvoiceLine(
                invoice=invoice,
                position=1,
                kind=LineKind.PLATFORM_FEE,
                description=(
                    f"apimon {plan.name} plan, {day_month_year(start)} – "
                    f"{day_month_year(end)}"
                ),
                quantity=1,
                unit_price=from_minor(plan.monthly_price_minor, currency),
                amount_minor=plan.monthly_price_minor,
                period_start=start,
                period_end=end,
            )
        )
    _number(invoices)
    Invoice.objects.bulk_create(invoices)
    InvoiceLine.objects.bulk_create(lines)
    for sub in subs:
        sub.updated_at = now
    PlatformSubscription.objects.bulk_update(subs, ["next_invoice_at", "updated_at"])
    return [i.pk for i in invoices]


# Kept for callers outside a batch (services): write one step now.
def write_single(sub: Subscription, drafts: list[Draft], *, now: datetime) -> list[int]:
    ctx_connections = {
        c.organization_id: c
        for c in StripeConnection.objects.filter(organization_id=sub.organization_id)
    }
    commission = sub.organization.plan.commission_percent
    invoices = [
        build_invoice(sub, d, ctx_connections, commission=commission, now=now)
        for d in drafts
    ]
    _number(invoices)
    Invoice.objects.bulk_create(invoices)
    InvoiceLine.objects.bulk_create(
        line for invoice, draft in zip(invoices, drafts, strict=True)
        for line in build_lines(invoice, draft)
    )  # fmt: skip
    ids = [i.pk for i in invoices if i.status == InvoiceStatus.DRAFT]
    if ids:
        _enqueue_push_on_commit(ids)
    return [i.pk for i in invoices]
