"""Reads of metered usage shared by views, billing and the gateway.

Usage lives in three places: `UsageRecord` rows (what the flush job has applied),
Redis (counters the gateway counted in the last few seconds, not yet flushed) and
`PendingUsage` rows (ingested events' units the flush has not added yet, a few
seconds' worth). Billing reads the usage rows and the pending rows in one statement
(one snapshot: `usage_for_period`, `billing.engine.usage_for_ranges`), after
flushing; pages and quota alerts add the Redis part and the pending rows so a chart
is fresh within seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import Case, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.shortcuts import get_object_or_404

from apimon import clock
from gateway import meter
from gateway.models import PendingUsage, UsageRecord
from gateway.redis import get_redis
from pricing.dates import strftime
from pricing.periods import window_bounds
from publisher.meters import meters_of, scale_label
from publisher.models import REQUESTS_METER, Meter, MeterPrice
from store import page_cache
from store.models import Subscription

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)


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
    rows, events = sums_in_one_snapshot(
        UsageRecord.objects.filter(
            subscription=subscription, meter=meter_key, hour__gte=start, hour__lt=end
        ),
        PendingUsage.objects.filter(
            subscription=subscription, meter=meter_key, hour__gte=start, hour__lt=end
        ),
    )
    return rows + events


def sums_in_one_snapshot(*querysets) -> list[int]:
    """SUM(count) of each queryset (UsageRecord rows, PendingUsage rows), in one
    statement: the flush moves pending rows into usage rows in one transaction, so
    one snapshot counts each unit once, in one or the other."""
    parts, params = [], []
    for qs in querysets:
        sql, qs_params = qs.order_by().values("count").query.sql_with_params()
        # The ORM's own SQL and parameters: nothing from outside is formatted in.
        parts.append(f'COALESCE((SELECT SUM(x."count") FROM ({sql}) x), 0)')  # noqa: S608
        params += qs_params
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(parts)}", params)
        return [int(n) for n in cursor.fetchone()]


def pending_usage(
    subscription_id: int, meter_keys: Iterable[str]
) -> dict[str, dict[datetime, int]]:
    """{meter: {hour: units}} of one subscription's ingested events that the flush
    has not added to the usage rows yet (`PendingUsage`, a few seconds' worth)."""
    counts: dict[str, dict[datetime, int]] = {key: {} for key in meter_keys}
    for key, hour, n in (
        PendingUsage.objects.filter(
            subscription_id=subscription_id, meter__in=list(counts)
        )
        .order_by()
        .values("meter", "hour")
        .annotate(n=Sum("count"))
        .values_list("meter", "hour", "n")
    ):
        counts[key][hour] = counts[key].get(hour, 0) + int(n)
    return counts


def unflushed_counts(
    subscription_ids: Iterable[int] | None = None, *, meter_key: str = REQUESTS_METER
) -> dict:
    """{(subscription id, bucket start): requests} still in Redis (live and sealed);
    not the ingested events' units (`pending_usage`).

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
    events: bool = True,
) -> dict[datetime, int]:
    """Unflushed counts of one subscription's last `hours` buckets (the flush runs
    every few seconds, so older buckets are in UsageRecord): a few HMGETs; plus,
    with `events`, its ingested events' units not added yet (`pending_usage`), of
    any hour."""
    return recent_unflushed_meters(
        subscription, now=now, hours=hours, meter_keys=[meter_key], events=events
    )[meter_key]


def recent_unflushed_meters(
    subscription: Subscription,
    *,
    now: datetime,
    meter_keys: list[str],
    hours: int = 3,
    events: bool = True,
) -> dict[str, dict[datetime, int]]:
    """`recent_unflushed` of several meters at once: {meter: {bucket: units}}, in
    one pipeline whatever the number of meters (and, with `events`, one query of
    the pending ingested units)."""
    current = subscription_hour(subscription, now)
    buckets = [current - i * HOUR for i in range(hours)]
    wanted = [(key, b) for key in meter_keys for b in buckets]
    fields = [
        meter.usage_field(subscription.pk, meter.epoch_us(b), key) for key, b in wanted
    ]
    client = get_redis()
    hashes = [meter.LIVE] + [
        meter.batch_key(b.decode()) for b in client.zrange(meter.PENDING, 0, -1)
    ]
    pipe = client.pipeline(transaction=False)
    for key in hashes:
        pipe.hmget(key, fields)
    counts: dict[str, dict[datetime, int]] = {
        key: defaultdict(int) for key in meter_keys
    }
    for values in pipe.execute():
        for (key, bucket), value in zip(wanted, values, strict=True):
            if value is not None:
                counts[key][bucket] += int(value)
    if events:
        for key, per_hour in pending_usage(subscription.pk, meter_keys).items():
            for hour, n in per_hour.items():
                counts[key][hour] += n
    return {key: dict(c) for key, c in counts.items()}


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
    in_window = {"meter": meter_key, "hour__gt": first_bucket, "hour__lt": end}
    rows, events = sums_in_one_snapshot(
        UsageRecord.objects.filter(subscription_id=subscription_id, **in_window),
        PendingUsage.objects.filter(subscription_id=subscription_id, **in_window),
    )
    if subscription is not None:
        unflushed = recent_unflushed(
            subscription, now=now or clock.now(), meter_key=meter_key, events=False
        )
    else:
        unflushed = {
            at: n
            for (_s, at), n in unflushed_counts(
                [subscription_id], meter_key=meter_key
            ).items()
        }
    live = sum(n for at, n in unflushed.items() if first_bucket < at < end)
    return rows + events + live


def subscription_for_subscriber(request, subscription_id: int) -> Subscription:
    """A subscription the caller may see: their own in this organization; publishers
    and owners see every subscription of the organization. Anything else is a 404.
    With its API (without its documents), tier and application, and the tenant's
    organization (the page links to it)."""
    tenant = request.tenant
    subs = Subscription.objects.select_related("api", "tier", "application").defer(
        "api__openapi_spec", "api__documentation"
    )
    subs = subs.filter(organization=tenant.organization)
    if not tenant.can_publish:
        subs = subs.filter(subscriber=request.user)
    subscription = get_object_or_404(subs, pk=subscription_id)
    subscription.organization = tenant.organization
    return subscription


@dataclass(frozen=True)
class Series:
    labels: list[str]
    counts: list[int]


def _series_bounds(
    subscription: Subscription, now: datetime, hours: int, days: int
) -> tuple[datetime, date, datetime]:
    """(first hour, first day, first row to read) of the charts' ranges."""
    current = subscription_hour(subscription, now)
    first_hour = current - (hours - 1) * HOUR
    first_day = (now - timedelta(days=days - 1)).date()
    since = min(first_hour, datetime.combine(first_day, time.min, UTC) - HOUR)
    return first_hour, first_day, since


def _series(
    per_bucket: dict[datetime, int], first_hour: datetime, first_day: date, hours: int,
    days: int,
) -> dict:  # fmt: skip
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


def usage_series(
    subscription: Subscription, *, now: datetime, hours: int = 48, days: int = 30
) -> dict:
    """Per-hour (last `hours` subscription hours) and per-day (last `days` UTC days)
    usage of one subscription: flushed rows plus what Redis holds, zeros filled in."""
    first_hour, first_day, since = _series_bounds(subscription, now, hours, days)
    per_bucket: dict[datetime, int] = defaultdict(int)
    for hour, count in (
        UsageRecord.objects.filter(
            subscription=subscription, meter=REQUESTS_METER, hour__gte=since
        )
        .order_by()  # summed: no join for the model's ordering
        .values_list("hour", "count")
    ):
        per_bucket[hour] += count
    for at, n in recent_unflushed(subscription, now=now).items():
        per_bucket[at] += n
    return _series(per_bucket, first_hour, first_day, hours, days)


def meter_usage(
    subscription: Subscription, *, now: datetime, hours: int = 48, days: int = 30
) -> list[dict]:
    """The subscription's API's meters other than requests, each with its charts'
    series (as `usage_series`), its use this billing period and its quota window
    (as `quota_status`; None without a quota): flushed rows plus what Redis holds.
    At most four queries, whatever the number of meters and rows."""
    meters = [m for m in meters_of(subscription.api) if m.key != REQUESTS_METER]
    if not meters:
        return []
    keys = [m.key for m in meters]
    first_hour, first_day, since = _series_bounds(subscription, now, hours, days)
    anchor = subscription.started_at or subscription.created_at
    cycle = subscription.tier_version.billing_cycle
    quotas = {
        p.meter: p
        for p in MeterPrice.objects.filter(
            version_id=subscription.tier_version_id,
            meter__in=keys,
            quota_limit__isnull=False,
        )
    }
    # Each sum's hours (after, before): the quota window, its first hour counted
    # whole as `usage_in_window` does, and the current billing period so far.
    windows: dict[str, tuple[datetime, datetime]] = {}
    ranges: dict[str, tuple[datetime, datetime]] = {}
    for key, price in quotas.items():
        start, end = window_bounds(price.quota_unit, now, anchor=anchor, cycle=cycle)
        windows[key] = (start, end)
        ranges[f"quota:{key}"] = (start - HOUR, end)
    period_start = subscription.current_period_start
    period_end = subscription.current_period_end
    if period_start and period_end and now > period_start:
        for key in keys:
            # The period's bounds fall on subscription hours: no partial first hour.
            ranges[f"period:{key}"] = (period_start - MICROSECOND, min(now, period_end))
    rows = UsageRecord.objects.filter(subscription=subscription, meter__in=keys)
    sums = (
        rows.aggregate(
            **{
                name: Sum(
                    "count",
                    filter=Q(
                        meter=name.split(":", 1)[1],
                        hour__gt=after,
                        hour__lt=before,
                    ),
                )
                for name, (after, before) in ranges.items()
            }
        )
        if ranges
        else {}
    )
    per_meter: dict[str, dict[datetime, int]] = {k: defaultdict(int) for k in keys}
    for key, hour, count in (
        rows.filter(hour__gte=since).order_by().values_list("meter", "hour", "count")
    ):
        per_meter[key][hour] += count
    unflushed = recent_unflushed_meters(subscription, now=now, meter_keys=keys)

    def used(name: str) -> int:
        after, before = ranges[name]
        key = name.split(":", 1)[1]
        live = sum(n for at, n in unflushed[key].items() if after < at < before)
        return int(sums.get(name) or 0) + live

    result = []
    for m in meters:
        for at, n in unflushed[m.key].items():
            per_meter[m.key][at] += n
        series = _series(per_meter[m.key], first_hour, first_day, hours, days)
        quota = None
        price = quotas.get(m.key)
        if price is not None:
            start, end = windows[m.key]
            units = used(f"quota:{m.key}")
            quota = {
                "limit": price.quota_limit,
                "unit": price.quota_unit,
                "unit_label": price.get_quota_unit_display(),
                "start": start,
                "end": end,
                "used": units,
                "percent": min(100, round(units * 100 / price.quota_limit)),
                "stop": price.stop_on_quota_reach,
            }
        result.append(
            {
                "key": m.key,
                "name": m.display_name,
                "unit_label": m.unit_label,
                "scale": m.display_scale,
                "scale_label": scale_label(m.display_scale),
                "hourly": series["hourly"],
                "daily": series["daily"],
                "period": used(f"period:{m.key}") if f"period:{m.key}" in ranges else 0,
                "quota": quota,
            }
        )
    return result


def usage_so_far(subscription: Subscription, now: datetime) -> int:
    """Requests of the subscription's current period up to `now`, flushed or still
    in Redis (the store's tier-change preview and subscription page ask)."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None or now <= start:
        return 0
    return usage_in_window(
        subscription_id=subscription.pk, start=start, end=min(now, end)
    )


def meter_usage_so_far(
    subscription: Subscription, now: datetime, meter_keys: list[str]
) -> dict[str, int]:
    """Units of each of `meter_keys` in the subscription's current period up to
    `now`, flushed or still in Redis: one query and one Redis pipeline."""
    start, end = subscription.current_period_start, subscription.current_period_end
    if not meter_keys or start is None or end is None or now <= start:
        return dict.fromkeys(meter_keys, 0)
    stop = min(now, end)
    used = dict.fromkeys(meter_keys, 0)
    for key, total in (
        UsageRecord.objects.filter(
            subscription=subscription,
            meter__in=meter_keys,
            hour__gte=start,
            hour__lt=stop,
        )
        .order_by()
        .values("meter")
        .annotate(total=Sum("count"))
        .values_list("meter", "total")
    ):
        used[key] += int(total or 0)
    unflushed = recent_unflushed_meters(subscription, now=now, meter_keys=meter_keys)
    for key, counts in unflushed.items():
        used[key] += sum(n for at, n in counts.items() if start <= at < stop)
    return used


def requests_last_30_days(organization, *, now: datetime) -> dict:
    """The publisher dashboard's figure: requests counted in the last 30 UTC days
    (today included)."""
    tomorrow = (now + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    # One sum: no per-day grouping (each row's UTC day costs PostgreSQL more than
    # the sum) and no ordering (the model's joins the subscriptions).
    total = (
        UsageRecord.objects.filter(
            organization=organization,
            meter=REQUESTS_METER,
            hour__gte=tomorrow - timedelta(days=30),
            hour__lt=tomorrow,
        )
        .order_by()
        .aggregate(total=Sum("count"))["total"]
    )
    return {"requests_30_days": int(total or 0)}


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
    count: int  # units of `meter`
    meter: str = REQUESTS_METER


def publisher_usage_rows(
    organization, *, start: datetime, end: datetime, api_id: int | None = None
) -> Iterator[UsageRow]:
    """Flushed usage of an organization per day, API, tier, subscription and meter
    (requests first in each subscription's day)."""
    qs = UsageRecord.objects.filter(
        organization=organization, hour__gte=start, hour__lt=end
    )
    if api_id:
        qs = qs.filter(subscription__api_id=api_id)
    qs = (
        qs.annotate(day=TruncDate("hour", tzinfo=UTC))
        .values(
            "day",
            "subscription_id",
            "meter",
            "subscription__api__name",
            "subscription__api__version",
            "subscription__tier__name",
            "subscription__application__name",
            "subscription__subscriber__email",
        )
        .annotate(
            total=Sum("count"),
            other_meter=Case(
                When(meter=REQUESTS_METER, then=Value(0)), default=Value(1)
            ),
        )
        .order_by(
            "-day", "subscription__api__name", "subscription_id", "other_meter", "meter"
        )
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
            meter=row["meter"],
        )


@dataclass
class PublisherUsage:
    """What the publisher's usage page shows of a range (`publisher_usage`)."""

    # {"total", "by_api", "by_tier", "by_subscriber"}: requests, the groups most
    # used first (50 at most), each a dict of the group's names and its "total".
    totals: dict
    # [{"api", "meter", "name", "unit", "total"}]: units of each meter other than
    # requests per API in the meter's words, most used first (50 at most).
    meters: list[dict]


def usage_meters(organization, *, api_id: int | None = None) -> list[Meter]:
    """The meters of the organization's APIs (of the chosen API's), first-made
    first: what the usage page's tables and chart name them by, once for both
    (`publisher_usage`, `publisher_daily_by_meter`), from the page cache (per
    organization, retired by any catalog change; read only)."""

    def read() -> list[Meter]:
        defined = Meter.objects.filter(api__organization=organization)
        if api_id:
            defined = defined.filter(api_id=api_id)
        return list(defined.order_by("created_at", "pk"))

    return page_cache.cached(organization.pk, ("usage-meters", api_id or None), read)


def publisher_usage(
    organization,
    *,
    start: datetime,
    end: datetime,
    api_id: int | None = None,
    meters: list[Meter] | None = None,
) -> PublisherUsage:
    """The publisher's usage page's tables in three queries whatever the rows: the
    range's units per subscription and meter (the one that reads the usage rows),
    the subscriptions' names and the meters' words (none for these with `meters`,
    `usage_meters`' list). The totals per API, tier,
    subscriber and meter are added up here from the per-subscription sums (a tie
    is ordered by name)."""
    rows = UsageRecord.objects.filter(
        organization=organization, hour__gte=start, hour__lt=end
    )
    if api_id:
        rows = rows.filter(subscription__api_id=api_id)
    per_sub = list(
        rows.order_by()
        .values("subscription_id", "meter")
        .annotate(total=Sum("count"))
        .values_list("subscription_id", "meter", "total")
    )
    names = {
        row["pk"]: row
        for row in Subscription.objects.filter(
            organization=organization,
            pk__in={sub_id for sub_id, _meter, _total in per_sub},
        ).values(
            "pk",
            "api_id",
            "api__name",
            "api__version",
            "tier__name",
            "subscriber__email",
            "application__name",
        )
    }
    total = 0
    by_api: dict[tuple, int] = defaultdict(int)
    by_tier: dict[str, int] = defaultdict(int)
    by_subscriber: dict[tuple, int] = defaultdict(int)
    by_meter: dict[tuple, int] = defaultdict(int)
    for sub_id, meter_key, units in per_sub:
        sub = names[sub_id]
        if meter_key == REQUESTS_METER:
            total += units
            by_api[sub["api__name"], sub["api__version"]] += units
            by_tier[sub["tier__name"]] += units
            by_subscriber[sub["subscriber__email"], sub["application__name"]] += units
        else:
            by_meter[
                sub["api_id"], sub["api__name"], sub["api__version"], meter_key
            ] += units

    def most_first(groups: dict, fields: tuple[str, ...]) -> list[dict]:
        ranked = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[:50]
        return [
            {**dict(zip(fields, key, strict=True)), "total": n} for key, n in ranked
        ]

    totals = {
        "total": total,
        "by_api": most_first(
            by_api, ("subscription__api__name", "subscription__api__version")
        ),
        "by_tier": most_first(
            {(name,): n for name, n in by_tier.items()}, ("subscription__tier__name",)
        ),
        "by_subscriber": most_first(
            by_subscriber,
            ("subscription__subscriber__email", "subscription__application__name"),
        ),
    }
    ranked = sorted(by_meter.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][3]))
    meter_rows = [
        {
            "subscription__api_id": api,
            "subscription__api__name": name,
            "subscription__api__version": version,
            "meter": key,
            "total": n,
        }
        for (api, name, version, key), n in ranked[:50]
    ]
    return PublisherUsage(totals=totals, meters=_meter_words(meter_rows, meters))


def _meter_words(rows: list[dict], defined: list[Meter] | None) -> list[dict]:
    """Meter totals per API in the meters' words (a deleted meter: its key): no
    query with the meters `defined` (`usage_meters`), else one."""
    if not rows:
        return []
    if defined is None:
        defined = Meter.objects.filter(
            api_id__in={r["subscription__api_id"] for r in rows}
        )
    meters = {(m.api_id, m.key): m for m in defined}
    totals = []
    for row in rows:
        m = meters.get((row["subscription__api_id"], row["meter"]))
        name = m.display_name if m else row["meter"]  # a deleted meter: its key
        unit = m.unit_label if m else "unit"
        totals.append(
            {
                "api": f"{row['subscription__api__name']} "
                f"{row['subscription__api__version']}",
                "meter": row["meter"],
                "name": name,
                "unit": unit,
                "total": row["total"],
            }
        )
    return totals


def publisher_daily_by_meter(
    organization,
    *,
    start: datetime,
    end: datetime,
    api_id: int | None = None,
    meters: list[Meter] | None = None,
) -> dict:
    """Units per UTC day over the range for each meter, for the publisher's chart
    and its meter picker: {"labels": ["14 Jan", …], "meters": [{"key", "name",
    "unit", "plural", "scale", "scale_label", "counts", "total"}]}, `requests` first, then
    every meter of the organization's APIs (of the chosen API's) by name: a key
    that several APIs have is one meter, as a tier prices it, named after its
    first-made row; a deleted meter's rows are named by their key. Two queries
    (one with `meters`, `usage_meters`' list), whatever the number of meters, days
    and rows."""
    qs = UsageRecord.objects.filter(
        organization=organization, hour__gte=start, hour__lt=end
    )
    if api_id:
        qs = qs.filter(subscription__api_id=api_id)
    per_day: dict[str, dict[date, int]] = defaultdict(dict)
    for key, day, total in (
        qs.order_by()  # no join for the model's ordering (by subscription)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("meter", "day")
        .annotate(total=Sum("count"))
        .values_list("meter", "day", "total")
    ):
        per_day[key][day] = int(total)
    if meters is None:
        meters = usage_meters(organization, api_id=api_id)
    named: dict[str, Meter] = {}
    for m in meters:
        if m.key != REQUESTS_METER:
            named.setdefault(m.key, m)
    days = []
    day = start.date()
    while day < end.date():
        days.append(day)
        day += timedelta(days=1)

    def entry(key: str, name: str, unit: str, scale: int) -> dict:
        counts = [per_day.get(key, {}).get(d, 0) for d in days]
        return {
            "key": key,
            "name": name,
            "unit": unit,
            "plural": f"{unit}s",
            "scale": scale,
            "scale_label": scale_label(scale),
            "counts": counts,
            "total": sum(counts),
        }

    others = [
        entry(key, m.display_name, m.unit_label, m.display_scale)
        for key, m in named.items()
    ]
    others += [
        entry(key, key, "unit", 1)
        for key in per_day
        if key != REQUESTS_METER and key not in named
    ]
    return {
        "labels": [strftime(d, "%d %b") for d in days],
        "meters": [
            entry(REQUESTS_METER, "Requests", "request", 1),
            *sorted(others, key=lambda m: (m["name"].lower(), m["key"])),
        ],
    }
