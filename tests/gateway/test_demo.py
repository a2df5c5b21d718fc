"""The demo's usage rows (`gateway.demo`): hourly rows with the shape of real
traffic, the same on every run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.demo import usage_rows
from store.models import Subscription

START = datetime(2026, 3, 2, 10, 17, tzinfo=UTC)  # a Monday
END = START + timedelta(days=28)


def rows(seed: str = "acme/App/weather", growth: float = 0.0):
    subscription = Subscription(organization_id=1, started_at=START)
    return usage_rows(
        subscription,
        until=END,
        per_day=2_400,
        growth=growth,
        story_start=START,
        story_end=END,
        seed=seed,
    )


def test_one_row_per_subscription_hour_aligned_to_the_anchor():
    drawn = rows()
    assert len(drawn) == 28 * 24
    assert drawn[0].hour == START and drawn[-1].hour == END - timedelta(hours=1)
    assert {row.hour.minute for row in drawn} == {17}


def test_the_same_subscription_gets_the_same_rows_and_another_other_rows():
    first = [(row.hour, row.count) for row in rows()]
    assert first == [(row.hour, row.count) for row in rows()]
    assert first != [(row.hour, row.count) for row in rows(seed="globex/App/fx")]


def test_the_traffic_has_a_daily_and_a_weekly_shape_and_grows():
    drawn = rows(growth=0.5)
    total = sum(row.count for row in drawn)
    assert total == pytest.approx(28 * 2_400 * 1.25, rel=0.1)

    def mean(keep):
        counts = [row.count for row in drawn if keep(row.hour)]
        return sum(counts) / len(counts)

    assert mean(lambda h: 12 <= h.hour < 17) > 3 * mean(lambda h: h.hour < 5)
    assert mean(lambda h: h.weekday() < 5) > 1.3 * mean(lambda h: h.weekday() >= 5)
    assert mean(lambda h: h >= END - timedelta(days=7)) > 1.2 * mean(
        lambda h: h < START + timedelta(days=7)
    )
