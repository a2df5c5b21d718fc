"""Usage pages: the subscriber's chart and its data, the publisher's page and CSV."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.urls import reverse

from apimon.models import Membership, Role
from gateway import meter
from gateway.models import UsageRecord
from gateway.redis import get_redis
from publisher.models import Api, Meter, MeterPrice, MeterSource, Tier, TierVersion
from store.models import Application, Subscription, SubscriptionState
from tests.conftest import make_user

# The pages' clock: 15 Jan 2027, 10:20 UTC. The subscription started at 08:05, so its
# hours start at :05 and the current one is 10:05.
NOW = datetime(2027, 1, 15, 10, 20, tzinfo=UTC)
STARTED = datetime(2026, 12, 6, 8, 5, tzinfo=UTC)


def at(day: int, hour: int) -> datetime:
    """A subscription hour in January 2027."""
    return datetime(2027, 1, day, hour, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    """The usage pages and the publisher's date filter read `NOW` as the time."""
    clock = SimpleNamespace(now=lambda: NOW)
    monkeypatch.setattr("gateway.views.clock", clock)
    monkeypatch.setattr("gateway.forms.clock", clock)


def record(sub: Subscription, hour: datetime, count: int) -> None:
    UsageRecord.objects.create(
        organization=sub.organization, subscription=sub, hour=hour, count=count
    )


def count_live(sub: Subscription, hour: datetime, count: int) -> None:
    """Requests the gateway counted in Redis and the flush has not applied yet."""
    field = meter.usage_field(sub.pk, meter.epoch_us(hour))
    get_redis().hincrby(meter.LIVE, field, count)


@pytest.fixture
def usage(world, redis_db):
    """A subscription of acme's subscriber (quota 1,000 a day) with flushed and
    unflushed usage."""
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
    sub = Subscription.objects.create(
        organization=world.org, application=app, api=api, tier=tier,
        tier_version=version, subscriber=world.subscriber,
        state=SubscriptionState.ACTIVE, started_at=STARTED,
    )  # fmt: skip
    record(sub, at(10, 12), 1000)  # five days ago: the daily chart only
    record(sub, at(14, 22), 40)  # yesterday
    record(sub, at(14, 23), 5)  # the hour that runs over midnight
    record(sub, at(15, 8), 120)  # today
    count_live(sub, at(15, 10), 7)  # the current hour, still in Redis
    return sub


def usage_data(client, org, sub) -> dict:
    url = reverse("gateway:subscription-usage-data", args=[org.slug, sub.pk])
    response = client.get(url)
    assert response.status_code == 200
    return response.json()


def nonzero(series: dict) -> dict[str, int]:
    return {
        label: count
        for label, count in zip(series["labels"], series["counts"], strict=True)
        if count
    }


def test_a_subscriber_sees_the_chart_page(world, client_for, usage):
    url = reverse("gateway:subscription-usage", args=[world.org.slug, usage.pk])
    response = client_for(world.subscriber).get(url)
    assert response.status_code == 200
    assert b"Usage of Weather v1" in response.content
    assert b"chart-4.6.1.umd.min.js" in response.content
    assert b"usage.json" in response.content


def test_the_data_includes_unflushed_counts_and_the_quota(world, client_for, usage):
    data = usage_data(client_for(world.subscriber), world.org, usage)

    assert data["generated_at"] == NOW.isoformat()
    hourly = data["hourly"]
    assert len(hourly["counts"]) == 48
    assert hourly["labels"][0] == "13 Jan 11:05"  # 47 hours before the current one
    assert hourly["labels"][-1] == "15 Jan 10:05"
    assert nonzero(hourly) == {
        "14 Jan 22:05": 40,
        "14 Jan 23:05": 5,
        "15 Jan 08:05": 120,
        "15 Jan 10:05": 7,
    }
    daily = data["daily"]
    assert len(daily["counts"]) == 30 and daily["labels"][-1] == "15 Jan"
    assert nonzero(daily) == {"10 Jan": 1000, "14 Jan": 45, "15 Jan": 127}
    # Today (UTC): 120 + 7, and the hour that started before midnight counts whole.
    assert data["quota"] == {
        "limit": 1000,
        "unit": "day",
        "unit_label": "per day",
        "start": "2027-01-15T00:00:00+00:00",
        "end": "2027-01-16T00:00:00+00:00",
        "used": 132,
        "percent": 13,
        "stop": True,
    }


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
    other = make_user("other@acme.test")
    Membership.objects.create(user=other, organization=world.org, role=Role.SUBSCRIBER)
    theirs = Subscription.objects.create(
        organization=world.org,
        application=Application.objects.create(
            organization=world.org, owner=other, name="Other app"
        ),
        api=usage.api,
        tier=usage.tier,
        tier_version=usage.tier_version,
        subscriber=other,
        state=SubscriptionState.ACTIVE,
        started_at=STARTED,
    )
    record(theirs, at(15, 9), 300)
    count_live(theirs, at(15, 10), 2)
    # (client_for logs one test client in as each user in turn.)
    own = usage_data(client_for(world.subscriber), world.org, usage)
    their_own = usage_data(client_for(other), world.org, theirs)

    # The same figures as each subscriber sees for their own subscription.
    assert usage_data(client_for(world.publisher), world.org, usage) == own
    data = usage_data(client_for(world.publisher), world.org, theirs)
    assert data == their_own
    assert nonzero(data["hourly"]) == {"15 Jan 09:05": 300, "15 Jan 10:05": 2}
    assert (data["quota"]["used"], data["quota"]["percent"]) == (302, 30)


def test_publisher_usage_per_api_tier_and_subscriber(world, client_for, usage):
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    response = client_for(world.publisher).get(url)
    assert response.status_code == 200
    body = response.content.decode()
    # The last 30 days' flushed rows: 1,000 + 40 + 5 + 120.
    assert '<span class="badge info">1,165 requests</span>' in body
    assert '<td>Weather v1</td><td class="num">1,165</td>' in body
    assert '<td>Gold</td><td class="num">1,165</td>' in body
    assert (
        '<td>subscriber@acme.test</td><td>Dashboard</td><td class="num">1,165</td>'
        in body
    )
    assert "usage.csv?start=2026-12-17&amp;end=2027-01-15" in body


def test_publisher_usage_filters_by_date_and_shows_errors(world, client_for, usage):
    client = client_for(world.owner)
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    old = client.get(url, {"start": "2020-01-01", "end": "2020-01-31"})
    assert "No usage in this range" in old.content.decode()
    bad = client.get(url, {"start": "2020-02-01", "end": "2020-01-01"})
    assert "The end date is before the start date." in bad.content.decode()


def test_the_csv_export_streams_rows(world, client_for, usage):
    url = reverse("gateway:publisher-usage-csv", args=[world.org.slug])
    response = client_for(world.publisher).get(
        url, {"start": "2027-01-13", "end": "2027-01-15"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines == [
        "day,api,tier,application,subscriber,subscription_id,quantity,meter",
        f"2027-01-15,Weather v1,Gold,Dashboard,subscriber@acme.test,{usage.pk},120,"
        "requests",
        f"2027-01-14,Weather v1,Gold,Dashboard,subscriber@acme.test,{usage.pk},45,"
        "requests",
    ]


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

    assert usage_for_period(usage, at(15, 8), at(15, 9)) == 120
    assert usage_for_period(usage, at(14, 22), at(15, 9)) == 165
    assert usage_for_period(usage, at(15, 8) + timedelta(seconds=1), at(16, 0)) == 0
    assert usage_for_period(usage, datetime(2000, 1, 1, tzinfo=UTC), at(10, 12)) == 0


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


def count_live_units(sub: Subscription, hour: datetime, meter_key: str, n: int) -> None:
    field = meter.usage_field(sub.pk, meter.epoch_us(hour), meter_key)
    get_redis().hincrby(meter.LIVE, field, n)


@pytest.fixture
def tokens(usage):
    """The API sells tokens (shown per 1,000, 50,000 a day, hard) and weighs its
    operations in credits (no quota); the subscription's billing period started on
    6 Jan at 08:05."""
    Meter.objects.create(
        api=usage.api, key="tokens", display_name="Tokens", unit_label="token",
        display_scale=1000, source=MeterSource.RESPONSE,
    )  # fmt: skip
    Meter.objects.create(
        api=usage.api, key="credits", display_name="Credits", unit_label="credit",
        source=MeterSource.OPERATIONS,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),  # listed after tokens
    )  # fmt: skip
    MeterPrice.objects.create(
        version=usage.tier_version, meter="tokens", quota_limit=50_000,
        quota_unit="day",
    )  # fmt: skip
    usage.current_period_start = datetime(2027, 1, 6, 8, 5, tzinfo=UTC)
    usage.current_period_end = datetime(2027, 2, 6, 8, 5, tzinfo=UTC)
    usage.save()
    for hour, n in [
        (datetime(2027, 1, 6, 7, 5, tzinfo=UTC), 100),  # the period before
        (datetime(2027, 1, 6, 8, 5, tzinfo=UTC), 200),  # the period's first hour
        (at(10, 12), 9000),
        (at(14, 23), 2500),  # runs over midnight: today's quota counts it whole
        (at(15, 8), 12000),
    ]:
        UsageRecord.objects.create(
            organization=usage.organization, subscription=usage, hour=hour,
            meter="tokens", count=n,
        )  # fmt: skip
    count_live_units(usage, at(15, 10), "tokens", 1834)
    return usage


def test_the_data_has_each_meter_in_its_units_with_its_quota(world, client_for, tokens):
    data = usage_data(client_for(world.subscriber), world.org, tokens)

    # Requests are as before: the tokens rows are not requests.
    assert nonzero(data["daily"]) == {"10 Jan": 1000, "14 Jan": 45, "15 Jan": 127}
    assert data["quota"]["used"] == 132
    first, second = data["meters"]
    assert (first["key"], first["name"], first["unit_label"]) == (
        "tokens", "Tokens", "token"
    )  # fmt: skip
    assert (first["scale"], first["scale_label"]) == (1000, "1K")
    assert nonzero(first["hourly"]) == {
        "14 Jan 23:05": 2500,
        "15 Jan 08:05": 12000,
        "15 Jan 10:05": 1834,
    }
    assert nonzero(first["daily"]) == {
        "06 Jan": 300,
        "10 Jan": 9000,
        "14 Jan": 2500,
        "15 Jan": 13834,
    }
    # This period: from 6 Jan 08:05, the hour before it left out.
    assert first["period"] == 200 + 9000 + 2500 + 12000 + 1834
    assert first["quota"] == {
        "limit": 50_000,
        "unit": "day",
        "unit_label": "per day",
        "start": "2027-01-15T00:00:00+00:00",
        "end": "2027-01-16T00:00:00+00:00",
        "used": 2500 + 12000 + 1834,
        "percent": 33,
        "stop": True,
    }
    assert second["key"] == "credits" and second["quota"] is None
    assert second["period"] == 0 and not nonzero(second["daily"])


def test_an_api_with_requests_only_has_no_other_meter(world, client_for, usage):
    assert usage_data(client_for(world.subscriber), world.org, usage)["meters"] == []


def test_the_csv_has_a_row_per_meter_after_the_requests(world, client_for, tokens):
    url = reverse("gateway:publisher-usage-csv", args=[world.org.slug])
    response = client_for(world.publisher).get(
        url, {"start": "2027-01-14", "end": "2027-01-15"}
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    row = f"Weather v1,Gold,Dashboard,subscriber@acme.test,{tokens.pk}"
    # Flushed rows only: the 1,834 tokens still in Redis are not in it yet.
    assert lines[1:] == [
        f"2027-01-15,{row},120,requests",
        f"2027-01-15,{row},12000,tokens",
        f"2027-01-14,{row},45,requests",
        f"2027-01-14,{row},2500,tokens",
    ]


def test_the_publisher_page_totals_other_meters_apart(world, client_for, tokens):
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    body = client_for(world.publisher).get(url).content.decode()
    # Requests as before; tokens in their own table, the last 30 days' flushed rows.
    assert '<span class="badge info">1,165 requests</span>' in body
    assert (
        '<td>Weather v1</td><td>Tokens</td><td class="num">23,800 tokens</td>' in body
    )
    old = client_for(world.publisher).get(
        url, {"start": "2020-01-01", "end": "2020-01-31"}
    )
    assert "Other meters" not in old.content.decode()


def test_the_subscription_page_shows_each_priced_meters_use_this_period(
    world, client_for, tokens, monkeypatch
):
    monkeypatch.setattr("store.views.clock", SimpleNamespace(now=lambda: NOW))
    url = reverse("store:subscription-detail", args=[world.org.slug, tokens.pk])
    body = client_for(world.subscriber).get(url).content.decode()
    # "Usage this period" lists requests, then each meter the tier prices: tokens
    # flushed and still in Redis, from the period's first hour (6 Jan 08:05);
    # credits are not priced by the tier.
    used = body.split('<dd id="usage-so-far">', 1)[1].split("</dd>", 1)[0]
    lines = re.findall(r'<div data-meter-used="([a-z-]+)">([^<]*)</div>', used)
    assert [key for key, _text in lines] == ["requests", "tokens"]
    assert lines[1] == ("tokens", "25,534 tokens")
    assert "tokens this period" not in body  # said once, in the summary
    # Under the tier: the meter's price and quota.
    assert (
        '<dt>Tokens</dt><dd class="meter-price">Free<div class="small muted">'
        "Quota: 50,000 tokens per day (hard)</div></dd>" in body
    )


def test_the_publisher_picks_the_meter_of_the_daily_chart(world, client_for, tokens):
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    body = (
        client_for(world.publisher)
        .get(url, {"start": "2027-01-06", "end": "2027-01-15"})
        .content.decode()
    )
    # The picker: requests first (the default), then the API's meters by name.
    picker = body.split('<select id="usage-meter" class="w-auto">', 1)[1].split(
        "</select>", 1
    )[0]
    assert re.findall(r'<option value="([a-z-]+)">([^<]*)</option>', picker) == [
        ("requests", "Requests"),
        ("credits", "Credits"),
        ("tokens", "Tokens"),
    ]
    # Every meter's units per day, in the page for the chart (flushed rows).
    data = json.loads(
        body.split('<script id="usage-daily" type="application/json">', 1)[1].split(
            "</script>", 1
        )[0]
    )
    assert data["labels"][0] == "06 Jan" and data["labels"][-1] == "15 Jan"
    by_key = {m["key"]: {**m, "labels": data["labels"]} for m in data["meters"]}
    assert [m["key"] for m in data["meters"]] == ["requests", "credits", "tokens"]
    assert nonzero(by_key["requests"]) == {"10 Jan": 1000, "14 Jan": 45, "15 Jan": 120}
    assert nonzero(by_key["tokens"]) == {
        "06 Jan": 300,
        "10 Jan": 9000,
        "14 Jan": 2500,
        "15 Jan": 12000,
    }
    assert not nonzero(by_key["credits"])
    tokens_meter = by_key["tokens"]
    assert (tokens_meter["name"], tokens_meter["plural"], tokens_meter["total"]) == (
        "Tokens",
        "tokens",
        23_800,
    )
    assert (tokens_meter["scale"], tokens_meter["scale_label"]) == (1000, "1K")


def test_the_chart_of_one_api_lists_its_meters_only(world, client_for, tokens):
    other = Api.objects.create(
        organization=world.org, name="Maps", version="v1", context="maps",
        backend_url="http://127.0.0.1:1/", state="PUBLISHED",
    )  # fmt: skip
    Meter.objects.create(
        api=other, key="tiles", display_name="Tiles", unit_label="tile",
        source=MeterSource.INGEST,
    )  # fmt: skip
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    client = client_for(world.publisher)

    every = client.get(url).context["daily"]["meters"]
    maps = client.get(url, {"api": other.pk}).context["daily"]["meters"]

    assert [m["key"] for m in every] == ["requests", "credits", "tiles", "tokens"]
    assert [m["key"] for m in maps] == ["requests", "tiles"]
    assert not any(m["total"] for m in maps)  # no usage of Maps: nothing of Weather's


def api_options(body: str) -> list[tuple[str, bool]]:
    """(name, selected) of the filter's API choices."""
    select = body.split('<select name="api"', 1)[1].split("</select>", 1)[0]
    return [
        (name, bool(selected))
        for selected, name in re.findall(r"<option [^>]*?( selected)?>([^<]*)<", select)
    ]


def test_the_filter_shows_a_new_or_renamed_api_at_once(world, client_for, usage):
    """The filter's fields are kept per organization and values, retired with the
    catalog (gateway.views._filter_fields)."""
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    client = client_for(world.publisher)
    assert api_options(client.get(url).content.decode()) == [
        ("All APIs", True),
        ("Weather v1", False),
    ]
    maps = Api.objects.create(
        organization=world.org, name="Maps", version="v2", context="maps",
        backend_url="http://127.0.0.1:1/",
    )  # fmt: skip
    usage.api.name = "Weather+"
    usage.api.save()  # a catalog row's save retires what is kept
    chosen = client.get(url, {"api": maps.pk}).content.decode()
    assert sorted(api_options(chosen)) == [
        ("All APIs", False),
        ("Maps v2", True),
        ("Weather+ v1", False),
    ]
    assert "Weather v1" not in client.get(url).content.decode()


def test_the_filter_of_another_organization_is_its_own(world, client_for, usage):
    Membership.objects.create(
        organization=world.other_org, user=world.publisher, role=Role.PUBLISHER
    )
    Api.objects.create(
        organization=world.other_org, name="Payments", version="v1",
        context="payments", backend_url="http://127.0.0.1:1/",
    )  # fmt: skip
    client = client_for(world.publisher)
    for org, names in ((world.org, ["Weather v1"]), (world.other_org, ["Payments v1"])):
        body = client.get(reverse("gateway:publisher-usage", args=[org.slug]))
        options = api_options(body.content.decode())
        assert [name for name, _selected in options] == ["All APIs", *names]


def test_a_renamed_or_new_meter_shows_on_the_publisher_page_at_once(
    world, client_for, tokens
):
    """The meters' words come from the page cache, retired with the catalog."""
    url = reverse("gateway:publisher-usage", args=[world.org.slug])
    client = client_for(world.publisher)
    before = client.get(url)
    assert (
        '<td>Tokens</td><td class="num">23,800 tokens</td>' in before.content.decode()
    )
    meter_row = Meter.objects.get(api=tokens.api, key="tokens")
    meter_row.display_name = "Words"
    meter_row.unit_label = "word"
    meter_row.save()
    Meter.objects.create(
        api=tokens.api, key="images", display_name="Images", unit_label="image",
        source=MeterSource.INGEST,
    )  # fmt: skip
    after = client.get(url)
    assert '<td>Words</td><td class="num">23,800 words</td>' in after.content.decode()
    names = [m["name"] for m in after.context["daily"]["meters"]]
    assert names == ["Requests", "Credits", "Images", "Words"]
