"""Reads of metered usage shared by views, billing and the gateway.

Usage lives in two places: `UsageRecord` rows (what the flush job has applied) and
Redis (counters the gateway counted in the last few seconds, not yet flushed). Billing
reads the rows only (`usage_for_period`), after flushing; pages add the Redis part so
a chart is fresh within seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.shortcuts import get_object_or_404

from apimon import clock
from gateway import meter
from gateway.models import UsageRecord
from gateway.redis import get_redis
from pricing.dates import strftime
from pricing.periods import window_bounds
from publisher.models import REQUESTS_METER
from store.models import Subscription

HOUR = timedelta(hours=1)


def usage_for_period(
    subscription: Subscription,
    start: datetime,
    end: datetime,
    *,
    meter_key: str = REQUESTS_METER,
) -> int:
    """Units of a meter (requests by default) counted for `subscription` in
    [start, end), from the flushed rows.

    Rows are subscription hours aligned to the subscription's anchor, so a billing
    period's bounds fall on row boundaries and the sum is exact. Run the flush
    (`gateway.services.usage_flush`) first to include the last seconds."""
    total = UsageRecord.objects.filter(
        subscription=subscription, meter=meter_key, hour__gte=start, hour__lt=end
    ).aggregate(total=Sum("count"))["total"]
    return int(total or 0)


def unflushed_counts(
    subscription_ids: Iterable[int] | None = None, *, meter_key: str = REQUESTS_METER
) -> dict:
    """{(subscription id, bucket start): requests} still in Redis (live and sealed).

    Scans every counter: for rare paths (seeding a quota counter, tests). Pages use
    `recent_unflushed`, which reads only the buckets a subscription can have unflushed.
    """
    return {
        (sub_id, at): n
        for (sub_id, at, key), n in unflushed_by_meter(subscription_ids).items()
        if key == meter_key
    }


def unflushed_by_meter(subscription_ids: Iterable[int] | None = None) -> dict:
    """{(subscription id, bucket start, meter key): units} still in Redis (live and
    sealed), every meter's; scans every counter, as `unflushed_counts`."""
    wanted = set(subscription_ids) if subscription_ids is not None else None
    client = get_redis()
    hashes = [meter.LIVE] + [
        meter.batch_key(b.decode()) for b in client.zrange(meter.PENDING, 0, -1)
    ]
    pipe = client.pipeline(transaction=False)
    for key in hashes:
        pipe.hgetall(key)
    counts: dict[tuple[int, datetime, str], int] = defaultdict(int)
    for data in pipe.execute():
        for field, value in data.items():
            sub_id, bucket_us, field_meter = meter.parse_usage_field(field)
            if wanted is not None and sub_id not in wanted:
                continue
            at = meter.from_epoch_us(bucket_us)
            counts[(sub_id, at, field_meter)] += int(value)
    return dict(counts)


def subscription_hour(subscription: Subscription, at: datetime) -> datetime:
    """Start of the subscription hour (aligned to its anchor) that contains `at`."""
    anchor = subscription.started_at or subscription.created_at
    return meter.from_epoch_us(
        meter.hour_start_us(meter.epoch_us(at), meter.epoch_us(anchor))
    )


def recent_unflushed(
    subscription: Subscription,
    *,
    now: datetime,
    hours: int = 3,
    meter_key: str = REQUESTS_METER,
) -> dict[datetime, int]:
    """Unflushed counts of one subscription's last `hours` buckets (the flush runs
    every few seconds, so older buckets are in UsageRecord): a few HMGETs."""
    current = subscription_hour(subscription, now)
    buckets = [current - i * HOUR for i in range(hours)]
    fields = [
        meter.usage_field(subscription.pk, meter.epoch_us(b), meter_key)
        for b in buckets
    ]
    client = get_redis()
    hashes = [meter.LIVE] + [
        meter.batch_key(b.decode()) for b in client.zrange(meter.PENDING, 0, -1)
    ]
    pipe = client.pipeline(transaction=False)
    for key in hashes:
        pipe.hmget(key, fields)
    counts: dict[datetime, int] = defaultdict(int)
    for values in pipe.execute():
        for bucket, value in zip(buckets, values, strict=True):
            if value is not None:
                counts[bucket] += int(value)
    return dict(counts)


def usage_in_window(
    *,
    subscription_id: int,
    start: datetime,
    end: datetime,
    subscription: Subscription | None = None,
    now: datetime | None = None,
    meter_key: str = REQUESTS_METER,
) -> int:
    """Units of a meter (requests by default) counted in a quota window, flushed or
    not. The window's start may fall
    inside a subscription hour (calendar windows): that hour counts whole, so the
    figure errs towards the subscriber's quota being used, never towards overuse.

    With `subscription` given, only its recent buckets are read from Redis (pages,
    alerts); without, every unflushed counter is scanned (seeding, a rare path)."""
    first_bucket = start - HOUR
    rows = UsageRecord.objects.filter(
        subscription_id=subscription_id,
        meter=meter_key,
        hour__gt=first_bucket,
        hour__lt=end,
    ).aggregate(total=Sum("count"))["total"]
    if subscription is not None:
        unflushed = recent_unflushed(
            subscription, now=now or clock.now(), meter_key=meter_key
        )
    else:
        unflushed = {
            at: n
            for (_s, at), n in unflushed_counts(
                [subscription_id], meter_key=meter_key
            ).items()
        }
    live = sum(n for at, n in unflushed.items() if first_bucket < at < end)
    return int(rows or 0) + live


def subscription_for_subscriber(request, subscription_id: int) -> Subscription:
    """A subscription the caller may see: their own in this organization; publishers
    and owners see every subscription of the organization. Anything else is a 404."""
    tenant = request.tenant
    subs = Subscription.objects.select_related("api", "tier", "application")
    subs = subs.filter(organization=tenant.organization)
    if not tenant.can_publish:
        subs = subs.filter(subscriber=request.user)
    return get_object_or_404(subs, pk=subscription_id)


@dataclass(frozen=True)
class Series:
    labels: list[str]
    counts: list[int]


def usage_series(
    subscription: Subscription, *, now: datetime, hours: int = 48, days: int = 30
) -> dict:
    """Per-hour (last `hours` subscription hours) and per-day (last `days` UTC days)
    usage of one subscription: flushed rows plus what Redis holds, zeros filled in."""
    current = subscription_hour(subscription, now)
    first_hour = current - (hours - 1) * HOUR
    first_day = (now - timedelta(days=days - 1)).date()
    since = min(first_hour, datetime.combine(first_day, time.min, UTC) - HOUR)

    per_bucket: dict[datetime, int] = defaultdict(int)
    for hour, count in UsageRecord.objects.filter(
        subscription=subscription, meter=REQUESTS_METER, hour__gte=since
    ).values_list("hour", "count"):
        per_bucket[hour] += count
    for at, n in recent_unflushed(subscription, now=now).items():
        per_bucket[at] += n

    hourly_at = [first_hour + i * HOUR for i in range(hours)]
    by_day = {first_day + timedelta(days=i): 0 for i in range(days)}
    for at, n in per_bucket.items():
        if at.date() in by_day:
            by_day[at.date()] += n
    return {
        "hourly": Series(
            labels=[strftime(at, "%d %b %H:%M") for at in hourly_at],
            counts=[per_bucket.get(at, 0) for at in hourly_at],
        ),
        "daily": Series(
            labels=[strftime(day, "%d %b") for day in by_day],
            counts=list(by_day.values()),
        ),
    }


def usage_so_far(subscription: Subscription, now: datetime) -> int:
    """Requests of the subscription's current period up to `now`, flushed or still
    in Redis (the store's tier-change preview and subscription page ask)."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None or now <= start:
        return 0
    return usage_in_window(
        subscription_id=subscription.pk, start=start, end=min(now, end)
    )


def requests_last_30_days(organization, *, now: datetime) -> dict:
    """The publisher dashboard's figure: requests counted in the last 30 UTC days
    (today included)."""
    tomorrow = (now + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    days = publisher_daily_totals(
        organization, start=tomorrow - timedelta(days=30), end=tomorrow
    )
    return {"requests_30_days": sum(days.counts)}


def quota_status(subscription: Subscription, *, now: datetime) -> dict | None:
    """The current quota window and its use, or None for an unlimited tier."""
    tier = subscription.tier
    if not tier.quota_limit:
        return None
    anchor = subscription.started_at or subscription.created_at
    start, end = window_bounds(
        tier.quota_unit,
        now,
        anchor=anchor,
        cycle=subscription.tier_version.billing_cycle,
    )
    used = usage_in_window(
        subscription_id=subscription.pk,
        start=start,
        end=end,
        subscription=subscription,
        now=now,
    )
    return {
        "limit": tier.quota_limit,
        "unit": tier.quota_unit,
        "unit_label": tier.get_quota_unit_display(),
        "start": start,
        "end": end,
        "used": used,
        "percent": min(100, round(used * 100 / tier.quota_limit)),
        "stop": tier.stop_on_quota_reach,
    }


@dataclass(frozen=True)
class UsageRow:
    day: str
    api: str
    tier: str
    application: str
    subscriber: str
    subscription_id: int
    count: int


def publisher_usage_rows(
    organization, *, start: datetime, end: datetime, api_id: int | None = None
) -> Iterator[UsageRow]:
    """Flushed usage of an organization per day, API, tier and subscription."""
    qs = UsageRecord.objects.filter(
        organization=organization, meter=REQUESTS_METER, hour__gte=start, hour__lt=end
    )
    if api_id:
        qs = qs.filter(subscription__api_id=api_id)
    qs = (
        qs.annotate(day=TruncDate("hour", tzinfo=UTC))
        .values(
            "day",
            "subscription_id",
            "subscription__api__name",
            "subscription__api__version",
            "subscription__tier__name",
            "subscription__application__name",
            "subscription__subscriber__email",
        )
        .annotate(total=Sum("count"))
        .order_by("-day", "subscription__api__name", "subscription_id")
    )
    for row in qs.iterator(chunk_size=2000):
        yield UsageRow(
            day=row["day"].isoformat(),
            api=f"{row['subscription__api__name']} {row['subscription__api__version']}",
            tier=row["subscription__tier__name"],
            application=row["subscription__application__name"],
            subscriber=row["subscription__subscriber__email"],
            subscription_id=row["subscription_id"],
            count=row["total"],
        )


def publisher_usage_totals(
    organization, *, start: datetime, end: datetime, api_id: int | None = None
) -> dict:
    """Totals per API, per tier and per subscriber for the publisher's usage page."""
    qs = UsageRecord.objects.filter(
        organization=organization, meter=REQUESTS_METER, hour__gte=start, hour__lt=end
    )
    if api_id:
        qs = qs.filter(subscription__api_id=api_id)

    def grouped(*fields):
        return list(
            qs.values(*fields).annotate(total=Sum("count")).order_by("-total")[:50]
        )

    return {
        "total": qs.aggregate(total=Sum("count"))["total"] or 0,
        "by_api": grouped("subscription__api__name", "subscription__api__version"),
        "by_tier": grouped("subscription__tier__name"),
        "by_subscriber": grouped(
            "subscription__subscriber__email", "subscription__application__name"
        ),
    }


def publisher_daily_totals(
    organization, *, start: datetime, end: datetime, api_id: int | None = None
) -> Series:
    """Requests per UTC day over the range, for the publisher's chart."""
    qs = UsageRecord.objects.filter(
        organization=organization, meter=REQUESTS_METER, hour__gte=start, hour__lt=end
    )
    if api_id:
        qs = qs.filter(subscription__api_id=api_id)
    per_day = dict(
        qs.annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("day")
        .annotate(total=Sum("count"))
        .values_list("day", "total")
    )
    days = []
    day = start.date()
    while day < end.date():
        days.append(day)
        day += timedelta(days=1)
    return Series(
        labels=[strftime(d, "%d %b") for d in days],
        counts=[int(per_day.get(d, 0)) for d in days],
    )
