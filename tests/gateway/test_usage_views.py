"""Usage pages: the subscriber's chart and its data, the publisher's page and CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apimon.models import Membership, Role
from gateway import meter
from gateway.models import UsageRecord
from gateway.redis import get_redis
from publisher.models import Api, Tier, TierVersion
from store.models import Application, Subscription, SubscriptionState
from tests.conftest import make_user


@pytest.fixture
def usage(world, redis_db):
    """A subscription of acme's subscriber with flushed and unflushed usage."""
    api = Api.objects.create(
        organization=world.org, name="Weather", version="v1", context="weather",
        backend_url="http://127.0.0.1:1/", state="PUBLISHED",
    )  # fmt: skip
    tier = Tier.objects.create(
        organization=world.org, name="Gold", quota_limit=1000, quota_unit="day"
    )
    version = TierVersion.objects.create(tier=tier, number=1)
    app = Application.objects.create(
        organization=world.org, owner=world.subscriber, name="Dashboard"
    )
    now = timezone.now()
    sub = Subscription.objects.create(
        organization=world.org, application=app, api=api, tier=tier,
        tier_version=version, subscriber=world.subscriber,
        state=SubscriptionState.ACTIVE, started_at=now - timedelta(days=40),
    )  # fmt: skip
    anchor = sub.started_at
    hour = now.replace(minute=anchor.minute, second=anchor.second,
                       microsecond=anchor.microsecond)  # fmt: skip
    if hour > now:
        hour -= timedelta(hours=1)
    UsageRecord.objects.create(
        organization=world.org, subscription=sub, hour=hour - timedelta(hours=2),
        count=120,
    )  # fmt: skip
    bucket_us = meter.epoch_us(hour)
    get_redis().hincrby(meter.LIVE, meter.usage_field(sub.pk, bucket_us), 7)
    return sub


def test_a_subscriber_sees_the_chart_page(world, client_for, usage):
    url = reverse("gateway:subscription-usage", args=[world.org.slug, usage.pk])
    response = client_for(world.subscriber).get(url)
    assert response.status_code == 200
    assert b"Usage of Weather v1" in response.content
    assert b"chart-4.6.1.umd.min.js" in response.content
    assert b"usage.json" in response.content


def test_the_data_includes_unflushed_counts_and_the_quota(world, client_for, usage):
    url = reverse("gateway:subscription-usage-data", args=[world.org.slug, usage.pk])
    data = client_for(world.subscriber).get(url).json()
    assert sum(data["hourly"]["counts"]) == 127
    assert len(data["hourly"]["counts"]) == 48
    assert data["hourly"]["counts"][-1] == 7  # the current hour, still in Redis
    assert sum(data["daily"]["counts"]) == 127
    assert data["quota"]["limit"] == 1000
    assert data["quota"]["unit"] == "day"
    assert data["quota"]["used"] <= 127


def test_another_subscriber_gets_404(world, client_for, usage):
    other = make_user("other@acme.test")
    Membership.objects.create(user=other, organization=world.org, role=Role.SUBSCRIBER)
    for name in ("gateway:subscription-usage", "gateway:subscription-usage-data"):
        url = reverse(name, args=[world.org.slug, usage.pk])
        assert client_for(other).get(url).status_code == 404


def test_an_outsider_gets_404_even_with_the_right_id(world, client_for, usage):
    client = client_for(world.outsider)
    for slug in (world.org.slug, world.other_org.slug):
        url = reverse("gateway:subscription-usage-data", args=[slug, usage.pk])
        assert client.get(url).status_code == 404


def test_the_publisher_sees_every_subscription_of_the_org(world, client_for, usage):
    url = reverse("gateway:subscription-usage-data", args=[world.org.slug, usage.pk])
    assert client_for(world.publisher).get(url).status_code == 200


def test_publisher_usage_per_api_tier_and_subscriber(world, client_for, usage):
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    response = client_for(world.publisher).get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Weather v1" in body and "Gold" in body and "subscriber@acme.test" in body
    assert "120" in body
    assert "usage.csv?start=" in body


def test_publisher_usage_filters_by_date_and_shows_errors(world, client_for, usage):
    client = client_for(world.owner)
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    old = client.get(url, {"start": "2020-01-01", "end": "2020-01-31"})
    assert "No usage in this range" in old.content.decode()
    bad = client.get(url, {"start": "2020-02-01", "end": "2020-01-01"})
    assert "The end date is before the start date." in bad.content.decode()


def test_the_csv_export_streams_rows(world, client_for, usage):
    url = reverse("gateway:publisher-usage-csv", args=[world.org.slug])
    today = timezone.now().date()
    response = client_for(world.publisher).get(
        url, {"start": str(today - timedelta(days=2)), "end": str(today)}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "day,api,tier,application,subscriber,subscription_id,requests"
    assert lines[1].endswith(
        f",Weather v1,Gold,Dashboard,subscriber@acme.test,{usage.pk},120"
    )


def test_the_csv_of_another_org_has_none_of_this_orgs_rows(world, client_for, usage):
    url = reverse("gateway:publisher-usage-csv", args=[world.other_org.slug])
    response = client_for(world.outsider).get(url)
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines == [lines[0]]


def test_a_subscriber_may_not_see_the_publisher_usage(world, client_for, usage):
    for name in ("gateway:publisher-usage", "gateway:publisher-usage-csv"):
        url = reverse(name, args=[world.org.slug])
        assert client_for(world.subscriber).get(url).status_code == 403


def test_usage_for_period_counts_rows_in_the_period(world, usage):
    from gateway.selectors import usage_for_period

    row_hour = UsageRecord.objects.get(subscription=usage).hour
    assert usage_for_period(usage, row_hour, row_hour + timedelta(hours=1)) == 120
    assert (
        usage_for_period(
            usage, row_hour + timedelta(seconds=1), row_hour + timedelta(days=1)
        )
        == 0
    )
    assert usage_for_period(usage, datetime(2000, 1, 1, tzinfo=UTC), row_hour) == 0


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("0001-01-01", "0001-01-31", "start"),
        ("9999-12-01", "9999-12-31", "start"),
        ("9998-12-01", "9999-12-31", "end"),
    ],
)
def test_dates_outside_the_calendar_are_a_form_error_not_a_500(
    world, client_for, usage, start, end, field
):
    client = client_for(world.publisher)
    page = reverse("gateway:publisher-usage", args=[world.org.slug])
    response = client.get(page, {"start": start, "end": end})

    assert response.status_code == 200
    assert "totals" not in response.context
    assert response.context["form"].errors[field] == [
        "Pick a date from 1970-01-01 to 9998-12-31."
    ]
    csv_url = reverse("gateway:publisher-usage-csv", args=[world.org.slug])
    csv_response = client.get(csv_url, {"start": start, "end": end})
    assert csv_response.status_code == 400
    assert b"Pick a date from 1970-01-01 to 9998-12-31." in csv_response.content
