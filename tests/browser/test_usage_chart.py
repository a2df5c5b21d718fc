"""The usage pages in a real browser: the subscriber's chart fills from live counters
(not yet flushed) and refreshes; the publisher sees the per-API/tier/subscriber view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apimon.models import Membership, PlatformPlan, Role
from apimon.services import organization_create
from gateway import meter
from gateway.models import UsageRecord
from gateway.redis import get_redis, reset_clients
from publisher.models import Api, Tier, TierVersion
from store.models import Application, Subscription
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def subscription(settings):
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
    now = timezone.now()
    sub = Subscription.objects.create(
        organization=org, application=app, api=api, tier=tier, tier_version=version,
        subscriber=subscriber, state="ACTIVE",
        started_at=(now - timedelta(days=20)).replace(minute=0, second=0, microsecond=0),
    )  # fmt: skip
    hour = now.replace(minute=0, second=0, microsecond=0)
    for h, count in ((30, 210), (26, 180), (5, 95), (3, 140), (1, 60)):
        UsageRecord.objects.create(
            organization=org, subscription=sub, hour=hour - timedelta(hours=h),
            count=count,
        )  # fmt: skip
    live = meter.usage_field(sub.pk, meter.epoch_us(hour))
    get_redis().hincrby(meter.LIVE, live, 42)
    yield sub
    reset_clients()


def test_a_subscriber_watches_usage_against_the_quota(page, subscription):
    log_in(page, "subscriber@acme.test", PASSWORD)
    page.goto(f"/t/acme/store/subscriptions/{subscription.pk}/usage/")
    quota = page.locator("[data-usage-quota]")
    quota.get_by_text("requests per day used").wait_for()
    # Numbers read like the rest of the page (5,000, not 5000); times are UTC.
    assert "of 5,000 requests per day used" in quota.inner_text()
    fresh = page.locator("[data-usage-fresh]").inner_text()
    assert fresh.startswith("Updated") and fresh.endswith(" UTC")
    # A request counted by the gateway shows up at the next poll (every 5 s).
    live = meter.usage_field(
        subscription.pk,
        int(
            timezone.now().replace(minute=0, second=0, microsecond=0).timestamp() * 1e6
        ),
    )
    before = quota.inner_text()
    get_redis().hincrby(meter.LIVE, live, 100)
    page.wait_for_function(
        "(t) => document.querySelector('[data-usage-quota]').innerText !== t",
        arg=before,
        timeout=12_000,
    )
    screenshot(page, "usage-subscriber")


def test_a_publisher_sees_usage_per_api_tier_and_subscriber(page, subscription):
    log_in(page, "owner@acme.test", PASSWORD)
    page.goto("/t/acme/publisher/usage/")
    assert page.get_by_role("heading", name="Per subscriber").is_visible()
    assert page.get_by_text("subscriber@acme.test").is_visible()
    screenshot(page, "usage-publisher")
