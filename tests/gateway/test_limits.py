"""Burst rate limits, quotas (calendar windows and billing periods) and counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway import meter
from gateway.models import UsageRecord
from tests.gateway.conftest import T0, flush_all, usage_total

URL = "/gateway/acme/weather/v1/fast"


def ts(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def call(gateway, metering, url=URL):
    return gateway.get(url, key=metering.key)


def test_rate_limit_per_second_and_its_window_edge(metering, gateway):
    metering.set_tier(rate_limit=2, rate_unit="second")
    gateway.clock.now = T0 + 0.2
    assert [call(gateway, metering).status_code for _ in range(2)] == [200, 200]
    refused = call(gateway, metering)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "1"
    gateway.clock.now = T0 + 0.999
    assert call(gateway, metering).status_code == 429
    gateway.clock.now = T0 + 1.0  # the next window starts on the second
    assert call(gateway, metering).status_code == 200


def test_rate_limit_per_minute_says_when_to_retry(metering, gateway):
    metering.set_tier(rate_limit=1, rate_unit="minute")
    gateway.clock.now = T0 + 30
    assert call(gateway, metering).status_code == 200
    refused = call(gateway, metering)
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "30")
    gateway.clock.now = T0 + 59.5
    assert call(gateway, metering).headers["retry-after"] == "1"
    gateway.clock.now = T0 + 60
    assert call(gateway, metering).status_code == 200


def test_quota_hard_stop_refuses_with_an_upgrade_link(metering, gateway, settings):
    metering.set_tier(quota_limit=3, quota_unit="day", stop_on_quota_reach=True)
    gateway.clock.now = ts(2027, 1, 15, 23, 0)
    assert [call(gateway, metering).status_code for _ in range(3)] == [200] * 3
    refused = call(gateway, metering)
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "quota_exceeded"
    assert refused.headers["retry-after"] == "3600"  # midnight UTC
    upgrade = f"{settings.SITE_URL}/t/acme/store/apis/{metering.api.pk}/"
    assert body["upgrade_url"] == upgrade
    assert upgrade in refused.headers["link"]
    gateway.clock.now = ts(2027, 1, 16, 0, 0)
    assert call(gateway, metering).status_code == 200
    flush_all()
    assert usage_total(metering.subscription) == 4


def test_quota_with_overage_keeps_serving_and_counting(metering, gateway):
    metering.set_tier(quota_limit=3, quota_unit="day", stop_on_quota_reach=False)
    assert [call(gateway, metering).status_code for _ in range(5)] == [200] * 5
    flush_all()
    assert usage_total(metering.subscription) == 5


def test_minute_quota_window_edges(metering, gateway):
    metering.set_tier(quota_limit=1, quota_unit="minute")
    gateway.clock.now = T0 + 59.9
    assert call(gateway, metering).status_code == 200
    assert call(gateway, metering).status_code == 429
    gateway.clock.now = T0 + 60
    assert call(gateway, metering).status_code == 200


def test_only_successful_answers_count(metering, gateway):
    for code in (200, 204, 302, 400, 404, 500, 503):
        call(gateway, metering, f"/gateway/acme/weather/v1/status/{code}")
    flush_all()
    assert usage_total(metering.subscription) == 3


def test_a_tier_can_count_every_answer(metering, gateway):
    metering.set_tier(count_every_request=True)
    for code in (200, 404, 500):
        call(gateway, metering, f"/gateway/acme/weather/v1/status/{code}")
    flush_all()
    assert usage_total(metering.subscription) == 3


def test_failed_answers_give_their_quota_back(metering, gateway):
    metering.set_tier(quota_limit=2, quota_unit="day")
    for _ in range(3):
        assert (
            call(gateway, metering, URL.replace("fast", "status/500")).status_code
            == 500
        )
    assert [call(gateway, metering).status_code for _ in range(3)] == [200, 200, 429]


def test_the_period_quota_follows_the_subscriptions_own_period(metering, gateway):
    """Monthly subscription anchored on Jan 10 13:30: its quota window is
    [Jan 10 13:30, Feb 10 13:30), not the calendar month."""
    metering.subscription.started_at = datetime(2027, 1, 10, 13, 30, tzinfo=UTC)
    metering.subscription.save()
    metering.set_tier(quota_limit=2, quota_unit="period")
    gateway.clock.now = ts(2027, 2, 10, 13, 29)
    assert [call(gateway, metering).status_code for _ in range(3)] == [200, 200, 429]
    assert call(gateway, metering).headers["retry-after"] == "60"
    gateway.clock.now = ts(2027, 2, 10, 13, 30)
    assert call(gateway, metering).status_code == 200


def test_a_calendar_month_quota(metering, gateway):
    metering.set_tier(quota_limit=1, quota_unit="month")
    gateway.clock.now = ts(2027, 1, 31, 23, 59, 59)
    assert [call(gateway, metering).status_code for _ in range(2)] == [200, 429]
    gateway.clock.now = ts(2027, 2, 1)
    assert call(gateway, metering).status_code == 200


def test_a_missing_quota_counter_is_seeded_from_the_database(metering, gateway):
    """Redis lost the counter (or it is a new day): the flushed rows count."""
    metering.set_tier(quota_limit=5, quota_unit="day")
    UsageRecord.objects.create(
        organization=metering.org,
        subscription=metering.subscription,
        hour=datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
        count=4,
    )
    assert [call(gateway, metering).status_code for _ in range(2)] == [200, 429]


def test_usage_is_bucketed_by_the_subscriptions_hour(metering, gateway):
    """Buckets are hours aligned to the anchor (here :30), so billing periods that
    start at the anchor split exactly on usage rows."""
    metering.subscription.started_at = datetime(2027, 1, 10, 13, 30, 15, tzinfo=UTC)
    metering.subscription.save()
    gateway.clock.now = ts(2027, 1, 15, 10, 30, 14)
    call(gateway, metering)
    gateway.clock.now = ts(2027, 1, 15, 10, 30, 15)
    call(gateway, metering)
    call(gateway, metering)
    flush_all()
    rows = dict(
        UsageRecord.objects.filter(subscription=metering.subscription).values_list(
            "hour", "count"
        )
    )
    assert rows == {
        datetime(2027, 1, 15, 9, 30, 15, tzinfo=UTC): 1,
        datetime(2027, 1, 15, 10, 30, 15, tzinfo=UTC): 2,
    }


def test_crossing_80_and_100_percent_lists_the_subscription_for_alerts(
    metering, gateway, redis_db
):
    metering.set_tier(quota_limit=5, quota_unit="day", stop_on_quota_reach=False)
    for _ in range(3):
        call(gateway, metering)
    assert redis_db.smembers(meter.ALERTS) == set()
    call(gateway, metering)  # 4 of 5 = 80 %
    assert redis_db.smembers(meter.ALERTS) == {str(metering.subscription.pk).encode()}


def test_a_billing_period_gets_exactly_its_requests(metering, gateway):
    """An anchor with microseconds: a request at the very start of a period and one
    just before it land in different rows, and usage_for_period sees only its own."""
    from gateway.selectors import usage_for_period
    from pricing.periods import period_bounds

    anchor = datetime(2026, 12, 10, 13, 30, 15, 123457, tzinfo=UTC)
    metering.subscription.started_at = anchor
    metering.subscription.save()
    start, end = period_bounds(anchor, "month", 1)  # Jan 10 13:30:15.123457
    gateway.clock.now = (start - timedelta(microseconds=1)).timestamp()
    call(gateway, metering)
    gateway.clock.now = start.timestamp()
    call(gateway, metering)
    call(gateway, metering)
    flush_all()
    assert usage_for_period(metering.subscription, start, end) == 2
    before = period_bounds(anchor, "month", 0)
    assert usage_for_period(metering.subscription, *before) == 1
