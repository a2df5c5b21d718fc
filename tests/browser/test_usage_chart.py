"""The usage pages in a real browser: the subscriber's chart fills from live counters
(not yet flushed) and refreshes; the publisher sees the per-API/tier/subscriber view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from apimon.models import Membership, PlatformPlan, Role
from apimon.services import organization_create
from gateway import meter
from gateway.models import UsageRecord
from gateway.redis import get_redis, reset_clients
from publisher.models import Api, Meter, MeterPrice, MeterSource, Tier, TierVersion
from store.models import Application, Subscription
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The pages' clock (the live server runs in this process): 15 Jan 2027, 10:20 UTC,
# in the subscription hour that started at 10:00.
NOW = datetime(2027, 1, 15, 10, 20, tzinfo=UTC)
HOUR = datetime(2027, 1, 15, 10, tzinfo=UTC)


@pytest.fixture
def subscription(settings, monkeypatch):
    clock = SimpleNamespace(now=lambda: NOW)
    monkeypatch.setattr("gateway.views.clock", clock)
    monkeypatch.setattr("gateway.forms.clock", clock)
    reset_clients()
    get_redis().flushdb()
    PlatformPlan.objects.get_or_create(
        slug="trial", defaults={"name": "Trial", "is_trial": True}
    )
    owner = make_user("owner@acme.test")
    org = organization_create(user=owner, name="Acme")
    subscriber = make_user("subscriber@acme.test")
    Membership.objects.create(user=subscriber, organization=org, role=Role.SUBSCRIBER)
    api = Api.objects.create(
        organization=org, name="Weather", version="v1", context="weather",
        backend_url="http://127.0.0.1:1/", state="PUBLISHED",
    )  # fmt: skip
    tier = Tier.objects.create(
        organization=org, name="Bronze", quota_limit=5000, quota_unit="day"
    )
    version = TierVersion.objects.create(tier=tier, number=1)
    app = Application.objects.create(organization=org, owner=subscriber, name="Web app")
    sub = Subscription.objects.create(
        organization=org, application=app, api=api, tier=tier, tier_version=version,
        subscriber=subscriber, state="ACTIVE", started_at=HOUR - timedelta(days=20),
    )  # fmt: skip
    # Yesterday 210 and 180; today (UTC) 95, 140 and 60.
    for h, count in ((30, 210), (26, 180), (5, 95), (3, 140), (1, 60)):
        UsageRecord.objects.create(
            organization=org, subscription=sub, hour=HOUR - timedelta(hours=h),
            count=count,
        )  # fmt: skip
    count_live(sub, 42)  # this hour, not flushed yet
    yield sub
    reset_clients()


def count_live(sub: Subscription, requests: int) -> None:
    """What the gateway does for each request it admits: count it in Redis."""
    field = meter.usage_field(sub.pk, meter.epoch_us(HOUR))
    get_redis().hincrby(meter.LIVE, field, requests)


def chart_counts(page, canvas: str) -> list[int]:
    return page.evaluate(
        "(sel) => Chart.getChart(document.querySelector(sel)).data.datasets[0].data",
        canvas,
    )


def test_a_subscriber_watches_usage_against_the_quota(page, subscription):
    log_in(page, "subscriber@acme.test", PASSWORD)
    page.goto(f"/t/acme/store/subscriptions/{subscription.pk}/usage/")
    quota = page.locator("[data-usage-quota]")
    quota.get_by_text("requests per day used").wait_for()
    # Today: 95 + 140 + 60 flushed and 42 still in Redis. Numbers read like the rest
    # of the page (5,000, not 5000); times are UTC.
    assert quota.inner_text() == (
        "337 of 5,000 requests per day used (7 %). "
        "The window ends 2027-01-16 00:00 UTC."
    )
    assert page.locator("[data-usage-fresh]").inner_text() == "Updated 10:20:00 UTC"
    hourly = chart_counts(page, "[data-usage-hourly]")
    assert len(hourly) == 48 and hourly[-6:] == [95, 0, 140, 0, 60, 42]
    assert hourly[-31] == 210 and sum(hourly) == 727
    assert chart_counts(page, "[data-usage-daily]")[-2:] == [390, 337]

    # A hundred calls counted by the gateway show up at the next poll (every 5 s).
    count_live(subscription, 100)
    quota.get_by_text("437 of 5,000 requests per day used (9 %).").wait_for(
        timeout=12_000
    )
    assert chart_counts(page, "[data-usage-hourly]")[-1] == 142
    assert chart_counts(page, "[data-usage-daily]")[-1] == 437
    bar = quota.get_by_role("progressbar")
    assert bar.get_attribute("aria-valuenow") == "9"
    screenshot(page, "usage-subscriber")


def test_a_publisher_sees_usage_per_api_tier_and_subscriber(page, subscription):
    log_in(page, "owner@acme.test", PASSWORD)
    page.goto("/t/acme/publisher/usage/")
    assert page.get_by_role("heading", name="Per subscriber").is_visible()
    # The last 30 days' flushed requests: 210 + 180 + 95 + 140 + 60.
    assert page.locator(".badge.info").text_content() == "685 requests"
    row = page.locator("tr", has_text="subscriber@acme.test")
    assert row.locator("td").all_inner_texts() == [
        "subscriber@acme.test",
        "Web app",
        "685",
    ]
    screenshot(page, "usage-publisher")


def test_a_subscriber_watches_tokens_in_thousands_against_their_quota(
    page, subscription
):
    Meter.objects.create(
        api=subscription.api, key="tokens", display_name="Tokens",
        unit_label="token", display_scale=1000, source=MeterSource.RESPONSE,
    )  # fmt: skip
    MeterPrice.objects.create(
        version=subscription.tier_version, meter="tokens", quota_limit=200_000,
        quota_unit="hour", stop_on_quota_reach=False,
    )  # fmt: skip
    UsageRecord.objects.create(
        organization=subscription.organization, subscription=subscription,
        hour=HOUR - timedelta(hours=1), meter="tokens", count=12_500,
    )  # fmt: skip
    field = meter.usage_field(subscription.pk, meter.epoch_us(HOUR), "tokens")
    get_redis().hincrby(meter.LIVE, field, 1834)

    log_in(page, "subscriber@acme.test", PASSWORD)
    page.goto(f"/t/acme/store/subscriptions/{subscription.pk}/usage/")
    block = page.locator("[data-meter=tokens]")
    block.get_by_text("tokens per hour used").wait_for()
    assert block.locator("h3").inner_text() == "Tokens"
    assert block.locator("[data-meter-quota]").inner_text() == (
        "1,834 of 200,000 tokens per hour used (1 %). "
        "The window ends 2027-01-15 11:00 UTC. Overage is allowed."
    )
    # Plotted in thousands of tokens, the hourly quota drawn as a line at 200K.
    hourly = chart_counts(page, "[data-meter-hourly]")
    assert hourly[-2:] == [12.5, 1.834]
    quota_line = page.evaluate(
        "() => Chart.getChart(document.querySelector('[data-meter-hourly]'))"
        ".data.datasets[1].data.slice(-1)"
    )
    assert quota_line == [200]
    assert chart_counts(page, "[data-meter-daily]")[-1] == 14.334
    # Requests are unchanged.
    assert chart_counts(page, "[data-usage-hourly]")[-1] == 42
