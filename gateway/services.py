"""Writes of the metering side: the usage flush and quota alerts (both run by Celery
beat, by hand with a management command, and by the web process itself when there is
no Redis server; see docs/metering.md)."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apimon import clock
from apimon.emails import email_send
from apimon.jobs import job_failures_resolve, job_item
from gateway import meter
from gateway.models import FlushBatch, PendingUsage, QuotaAlert, UsageRecord
from gateway.redis import get_redis
from gateway.selectors import usage_in_window
from pricing.periods import window_bounds
from publisher.meters import meters_of
from publisher.models import REQUESTS_METER, MeterSource
from store.models import ApiKey, Subscription

log = logging.getLogger(__name__)

QUOTA_ALERTS_JOB = "quota alerts"

# Hook points of usage_flush, in order. A test (or a debugger) passes `hook`, which is
# called with each name; raising there is a crash at that point.
FLUSH_STEPS = ("sealed", "listed", "locked", "applied", "aggregated", "committed",
               "forgot", "done")  # fmt: skip
FLUSH_LEDGER_DAYS = 30
# PendingUsage rows (ingested events' units) a flush transaction adds at most (a
# flush that finds more goes on in further transactions).
PENDING_PER_TRANSACTION = 100_000
_FLUSH_LOCK_ID = 7_207_001  # PostgreSQL advisory lock of the flush


@dataclass(frozen=True)
class FlushResult:
    batches: int
    rows: int
    requests: int
    pending: int = 0  # PendingUsage rows (ingested events' units) added


def usage_flush(*, hook: Callable[[str], None] | None = None) -> FlushResult:
    """Move the gateway's Redis counters and the ingested events into UsageRecord,
    exactly once.

    1. seal: atomically rename the live hash to ``batch:<new id>`` and register the id
       in the pending set (a Lua script; new requests count in a new live hash);
    2. list every pending batch, oldest first (earlier crashed flushes included);
    3. in one transaction, holding the flush lock: skip the batches the FlushBatch
       ledger already has, insert a FlushBatch row per new batch and add the batches'
       counts to UsageRecord (an upsert ``count = count + excluded.count``); then
       take the ingested events' units (`PendingUsage` rows committed before this
       statement), delete them and add them to UsageRecord per (subscription,
       meter, hour), in one statement; commit;
    4. forget the applied batches in Redis (delete the hash and the pending entry,
       atomically per batch).

    A crash before 3 commits leaves the batches and the PendingUsage rows pending:
    the next flush applies them. A crash after the commit and before 4
    leaves batches that the ledger has: the next flush only forgets them. Two
    flushers serialize on the lock (PostgreSQL advisory lock; SQLite write
    transactions are serial) and the unique batch id backs it up; a PendingUsage row
    is deleted in the transaction that adds it, so it is added once. An ingest batch that
    commits while a flush runs is not seen by it and is added by the next one. More
    than `PENDING_PER_TRANSACTION` PendingUsage rows are added in further
    transactions.
    """
    step = hook or (lambda name: None)
    client = get_redis()
    batch_id = uuid.uuid4().hex
    client.eval(
        meter.SEAL, 3, meter.LIVE, meter.PENDING, meter.SEQ, batch_id,
        meter.batch_key(batch_id),
    )  # fmt: skip
    step("sealed")
    pending = [b.decode() for b in client.zrange(meter.PENDING, 0, -1)]
    step("listed")
    batches = rows = requests = 0
    with transaction.atomic():
        _take_flush_lock()
        step("locked")
        if pending:
            applied = set(
                FlushBatch.objects.filter(batch_id__in=pending).values_list(
                    "batch_id", flat=True
                )
            )
            totals: dict[tuple[int, int, str], int] = defaultdict(int)
            ledger = []
            for bid in pending:
                if bid in applied:
                    continue
                data = client.hgetall(meter.batch_key(bid))
                batch_requests = 0
                for field, value in data.items():
                    totals[meter.parse_usage_field(field)] += int(value)
                    batch_requests += int(value)
                ledger.append(
                    FlushBatch(batch_id=bid, rows=len(data), requests=batch_requests)
                )
            FlushBatch.objects.bulk_create(ledger)
            rows = add_usage({k: n for k, n in totals.items() if n})
            batches, requests = len(ledger), sum(b.requests for b in ledger)
        step("applied")
        taken = pending_rows = add_pending_usage(limit=PENDING_PER_TRANSACTION)
        step("aggregated")
    step("committed")
    while taken == PENDING_PER_TRANSACTION:
        with transaction.atomic():
            _take_flush_lock()
            taken = add_pending_usage(limit=PENDING_PER_TRANSACTION)
            pending_rows += taken
    for bid in pending:
        client.eval(meter.FORGET, 2, meter.batch_key(bid), meter.PENDING, bid)
        step("forgot")
    _record_last_used(client)
    FlushBatch.objects.filter(
        applied_at__lt=timezone.now() - timedelta(days=FLUSH_LEDGER_DAYS)
    ).delete()
    step("done")
    return FlushResult(
        batches=batches, rows=rows, requests=requests, pending=pending_rows
    )


def add_pending_usage(*, limit: int) -> int:
    """Add up to `limit` PendingUsage rows (ingested events' units) to UsageRecord
    and delete them; the number taken. Run inside the flush's transaction, holding
    the flush lock (so no other transaction takes the same rows). The rows of a
    subscription deleted meanwhile are dropped."""
    if connection.vendor == "postgresql":
        # One statement: take (delete) the rows, add their sums per usage row.
        with connection.cursor() as cursor:
            cursor.execute(_AGGREGATE_PENDING, [limit])
            return cursor.fetchone()[0]
    taken = list(
        PendingUsage.objects.order_by("pk").values_list(
            "pk", "organization_id", "subscription_id", "meter", "hour", "count"
        )[:limit]
    )
    if not taken:
        return 0
    totals: dict[tuple[int, int, str], int] = defaultdict(int)
    for _pk, _org_id, sub_id, meter_key, hour, count in taken:
        totals[(sub_id, meter.epoch_us(hour), meter_key)] += count
    add_usage(dict(totals))
    ids = [row[0] for row in taken]
    for start in range(0, len(ids), 500):
        PendingUsage.objects.filter(pk__in=ids[start : start + 500]).delete()
    return len(taken)


_PENDING = PendingUsage._meta.db_table
_RECORDS = UsageRecord._meta.db_table
_SUBSCRIPTIONS = Subscription._meta.db_table
_AGGREGATE_PENDING = f"""
WITH taken AS (
    DELETE FROM {_PENDING}
    WHERE id IN (SELECT id FROM {_PENDING} LIMIT %s)
    RETURNING organization_id, subscription_id, meter, hour, count
), added AS (
    INSERT INTO {_RECORDS} (organization_id, subscription_id, meter, hour, count)
    SELECT t.organization_id, t.subscription_id, t.meter, t.hour, SUM(t.count)
    FROM taken t
    WHERE EXISTS (SELECT 1 FROM {_SUBSCRIPTIONS} s WHERE s.id = t.subscription_id)
    GROUP BY t.organization_id, t.subscription_id, t.meter, t.hour
    ON CONFLICT (subscription_id, meter, hour)
    DO UPDATE SET count = {_RECORDS}.count + excluded.count
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM taken), (SELECT COUNT(*) FROM added)
"""  # noqa: S608 (table names only)


def _take_flush_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_FLUSH_LOCK_ID])


def add_usage(
    totals: dict[tuple[int, int, str], int],
    *,
    organizations: dict[int, int] | None = None,
) -> int:
    """UsageRecord.count += n for each (subscription, bucket, meter), in bulk
    upserts. `organizations` (subscription id → organization id) spares the read of
    the subscriptions when the caller has them."""
    if not totals:
        return 0
    orgs = organizations
    if orgs is None:
        orgs = dict(
            Subscription.objects.filter(pk__in={key[0] for key in totals}).values_list(
                "pk", "organization_id"
            )
        )
    table = UsageRecord._meta.db_table
    ops = connection.ops
    values = []
    for (sub_id, bucket_us, meter_key), count in sorted(totals.items()):
        if sub_id not in orgs:
            log.warning(
                "dropping %s requests of deleted subscription %s", count, sub_id
            )
            continue
        hour = meter.from_epoch_us(bucket_us)
        if count < 0:
            # A take-back whose +1 an earlier batch applied (batches are applied in
            # sealing order, so the row exists). CHECK constraints see an upsert's
            # proposed row before the conflict, hence a plain UPDATE.
            updated = UsageRecord.objects.filter(
                subscription_id=sub_id, meter=meter_key, hour=hour
            )
            if not updated.update(count=F("count") + count):
                log.error("take-back of %s for %s @ %s has no row", count, sub_id, hour)
            continue
        values.append(
            (
                orgs[sub_id],
                sub_id,
                meter_key,
                ops.adapt_datetimefield_value(hour),
                count,
            )
        )
    upsert = (
        f"INSERT INTO {table} "
        "(organization_id, subscription_id, meter, hour, count) {rows} "
        "ON CONFLICT (subscription_id, meter, hour) "
        f"DO UPDATE SET count = {table}.count + excluded.count"
    )
    if connection.vendor == "postgresql" and values:
        # One statement whatever the number of rows: five arrays, unnested (PostgreSQL
        # plans a VALUES list of hundreds of rows slower than it runs it).
        with connection.cursor() as cursor:
            cursor.execute(
                upsert.format(
                    rows="SELECT * FROM unnest(%s::bigint[], %s::bigint[], "
                    "%s::varchar[], %s::timestamptz[], %s::bigint[])"
                ),
                [list(column) for column in zip(*values, strict=True)],
            )
        return len(totals)
    # SQLite (3.24+): the same upsert from a VALUES list.
    for chunk_start in range(0, len(values), 500):
        chunk = values[chunk_start : chunk_start + 500]
        placeholders = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
        params = [p for row in chunk for p in row]
        with connection.cursor() as cursor:
            cursor.execute(upsert.format(rows=f"VALUES {placeholders}"), params)
    return len(totals)


def _record_last_used(client) -> None:
    """ApiKey.last_used_at from the gateway's hash; advisory, so no ledger."""
    flat = client.eval(meter.TAKE_LAST_USED, 1, meter.LAST_USED)
    pairs = dict(zip(flat[::2], flat[1::2], strict=True))
    for key_hash, epoch in pairs.items():
        at = datetime.fromtimestamp(int(epoch), UTC)
        ApiKey.objects.filter(key_hash=key_hash.decode()).exclude(
            last_used_at__gte=at
        ).update(last_used_at=at)


# ---- quota alerts -----------------------------------------------------------------


@dataclass(frozen=True)
class AlertResult:
    checked: int
    sent: int


def quota_alerts_send(*, now: datetime | None = None) -> AlertResult:
    """Email subscribers whose quota window reached 80 % or 100 %, once per window,
    for requests and for each meter the tier version gives a quota.

    The gateway's ADMIT and REPORT scripts list a subscription in the ``alerts`` set
    when a quota counter crosses a threshold (the ingest API lists every subscription
    it adds usage to); this job takes the list, measures the window's
    use (flushed rows plus Redis), and records a QuotaAlert per threshold reached. The
    unique constraint makes a second job running at once send nothing."""
    now = now or clock.now()
    client = get_redis()
    # Taken atomically, so a crossing that happens while this job runs is listed
    # again for the next run; what this run fails to handle is put back.
    candidates = [int(m) for m in client.eval(meter.TAKE_SET, 1, meter.ALERTS)]
    sent = 0
    subs = list(
        Subscription.objects.filter(pk__in=candidates)
        .select_related(
            "tier", "tier_version", "subscriber", "api", "application", "organization"
        )
        .prefetch_related("tier_version__meter_prices", "api__meters")
    )
    todo = {sub.pk for sub in subs}
    failed = set()
    try:
        for sub in subs:
            # One subscription's bad data fails it alone (apimon.jobs): it is put
            # back for the next run and the others are alerted.
            with job_item(
                QUOTA_ALERTS_JOB,
                ref=f"subscription {sub.pk}",
                organization_id=sub.organization_id,
            ) as item:
                if _alert_if_reached(sub, now):
                    sent += 1
            if item.failed:
                failed.add(sub.pk)
            todo.discard(sub.pk)
        job_failures_resolve(
            job=QUOTA_ALERTS_JOB,
            refs=(f"subscription {s.pk}" for s in subs if s.pk not in failed),
        )
    finally:
        if todo | failed:
            client.sadd(meter.ALERTS, *(todo | failed))
    return AlertResult(checked=len(candidates), sent=sent)


@dataclass(frozen=True)
class _Quota:
    """One quota of a subscription: requests' (the tier's) or a meter's."""

    meter: str  # the meter's key
    units: str  # "requests", "tokens"
    limit: int
    unit: str  # the window: QuotaUnit
    unit_text: str  # "per day"
    hard_stop: bool


def _quotas_of(sub) -> list[_Quota]:
    """The subscription's quotas: the tier's on requests, then each meter's that its
    tier version gives one, for the meters its API has."""
    tier = sub.tier
    quotas = []
    if tier.quota_limit:
        quotas.append(
            _Quota(
                meter=REQUESTS_METER,
                units="requests",
                limit=tier.quota_limit,
                unit=tier.quota_unit,
                unit_text=tier.get_quota_unit_display(),
                hard_stop=tier.stop_on_quota_reach,
            )
        )
    prices = [
        p for p in sub.tier_version.meter_prices.all() if p.quota_limit
    ]  # prefetched by the job
    if prices:
        meters = {m.key: m for m in meters_of(sub.api)}
        for price in prices:
            m = meters.get(price.meter)
            if m is None or m.key == REQUESTS_METER:
                continue
            quotas.append(
                _Quota(
                    meter=m.key,
                    units=f"{m.unit_label}s",
                    limit=price.quota_limit,
                    unit=price.quota_unit,
                    unit_text=price.get_quota_unit_display(),
                    # The gateway does not refuse calls on an ingest-only meter.
                    hard_stop=price.stop_on_quota_reach
                    and m.source != MeterSource.INGEST,
                )
            )
    return quotas


def _alert_if_reached(sub, now: datetime) -> bool:
    """Alert each quota of `sub` that reached a threshold; True if an email was
    sent."""
    sent = False
    for quota in _quotas_of(sub):
        start, end = window_bounds(
            quota.unit,
            now,
            anchor=sub.started_at or sub.created_at,
            cycle=sub.tier_version.billing_cycle,
        )
        used = usage_in_window(
            subscription_id=sub.pk,
            start=start,
            end=end,
            subscription=sub,
            now=now,
            meter_key=quota.meter,
        )
        reached = [t for t in (80, 100) if used * 100 >= t * quota.limit]
        if reached and _alert(sub, quota, start, end, reached, used):
            sent = True
    return sent


def _alert(
    sub, quota: _Quota, start: datetime, end: datetime, reached: list[int], used: int
) -> bool:
    """Record the thresholds reached and email the highest new one. True if sent."""
    try:
        with transaction.atomic():
            new = []
            for threshold in reached:
                _alert_row, created = QuotaAlert.objects.get_or_create(
                    subscription=sub,
                    meter=quota.meter,
                    window_unit=quota.unit,
                    window_start=start,
                    threshold=threshold,
                    defaults={
                        "organization_id": sub.organization_id,
                        "window_end": end,
                        "quota_limit": quota.limit,
                        "used": used,
                    },
                )
                if created:
                    new.append(threshold)
            if not new:
                return False
            context = {
                "subscription": sub,
                "organization": sub.organization,
                "threshold": max(new),
                "used": used,
                "limit": quota.limit,
                "units": quota.units,
                "meter": quota.meter != REQUESTS_METER,
                "unit": quota.unit_text,
                "window_start": start,
                "window_end": end,
                "hard_stop": quota.hard_stop,
                "usage_url": (
                    f"{settings.SITE_URL}/t/{sub.organization.slug}/store/"
                    f"subscriptions/{sub.pk}/usage/"
                ),
                "upgrade_url": (
                    f"{settings.SITE_URL}/t/{sub.organization.slug}/store/apis/"
                    f"{sub.api_id}/"
                ),
            }
            # Sent inside the transaction: if sending fails, no alert is recorded
            # and the next run tries again.
            email_send(
                template="quota_alert",
                context=context,
                recipients=[sub.subscriber.email],
            )
    except IntegrityError:  # another job recorded it first
        return False
    return True
