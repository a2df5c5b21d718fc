"""The demo's usage (called from `apimon.demo.seed`): the hourly `UsageRecord` rows
the gateway's flush would have written for a subscription, drawn from a profile
with the shape of real traffic — busier in (European and American) working hours
than at night, quieter at weekends, growing over the weeks — and random noise.

Deterministic: the noise comes from a random generator seeded with the
subscription's name, so the same subscription started at the same time gets the
same rows on every run.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from gateway.models import UsageRecord
from publisher.models import REQUESTS_METER
from store.models import Subscription

HOUR = timedelta(hours=1)

# Relative traffic per UTC hour of the day (mean 1): low at night, peaks in the
# European afternoon as America wakes up.
_DAY = [0.35, 0.3, 0.28, 0.28, 0.3, 0.4, 0.6, 0.85, 1.1, 1.3, 1.4, 1.45,
        1.5, 1.6, 1.7, 1.7, 1.6, 1.45, 1.3, 1.1, 0.9, 0.7, 0.55, 0.42]  # fmt: skip
DAY_SHAPE = [x * 24 / sum(_DAY) for x in _DAY]
# Monday … Sunday (mean 1).
_WEEK = [1.1, 1.15, 1.15, 1.1, 1.05, 0.8, 0.65]
WEEK_SHAPE = [x * 7 / sum(_WEEK) for x in _WEEK]


def usage_rows(
    subscription: Subscription,
    *,
    until: datetime,
    per_day: int,
    growth: float,
    story_start: datetime,
    story_end: datetime,
    seed: str,
    meter_key: str = REQUESTS_METER,
) -> list[UsageRecord]:
    """Rows of a meter (requests by default) for every whole subscription hour from
    its start up to `until`, with `per_day` units a day on average, growing by
    `growth` from `story_start` to `story_end`."""
    rng = random.Random(seed)  # noqa: S311 - demo traffic, not a secret
    span = (story_end - story_start).total_seconds() or 1.0
    rows = []
    hour = subscription.started_at
    while hour + HOUR <= until:
        trend = 1 + growth * (hour - story_start).total_seconds() / span
        mean = per_day / 24 * DAY_SHAPE[hour.hour] * WEEK_SHAPE[hour.weekday()]
        count = round(mean * trend * rng.lognormvariate(0, 0.25))
        if count > 0:
            rows.append(
                UsageRecord(
                    organization_id=subscription.organization_id,
                    subscription=subscription,
                    hour=hour,
                    meter=meter_key,
                    count=count,
                )
            )
        hour += HOUR
    return rows


def usage_write(rows: list[UsageRecord]) -> int:
    UsageRecord.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
