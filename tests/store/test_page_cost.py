"""The pages cost the same number of queries whatever the number of APIs, tiers and
subscriptions; what the store caches of a catalog is retired by any change, and is
never shown to another organization or to a visitor who may not see it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apimon.models import Membership, RestrictedAccess
from gateway.models import UsageRecord
from publisher import meters
from publisher import services as publisher_services
from publisher.models import LifecycleAction, MeterPrice, MeterSource, Visibility
from store import page_cache, selectors
from store.models import Subscription
from tests.publisher.helpers import graduated, make_api, make_tier, subscribe
from tests.store.conftest import enable_monetization, flat, store_url

pytestmark = pytest.mark.django_db


def grow(world, shop, n: int) -> None:
    """`n` more published APIs, each on a tier of its own (a graduated one every
    other time) and the shop's free tier, each with a subscription of the
    subscriber's and of another application of theirs."""
    start = shop.org.apis.count()
    for i in range(start, start + n):
        price = graduated() if i % 2 else flat(f"{i}.00")
        tier = make_tier(shop.org, f"Tier {i}", price=price, quota_limit=1000 + i)
        api = make_api(
            shop.org,
            name=f"API {i}",
            context=f"api-{i}",
            tiers=[tier, shop.free],
            publish=True,
            tags=[f"tag-{i}", "weather"],
            documentation=f"# API {i}",
        )
        subscribe(api, tier, world.subscriber, app_name=f"App {i}")
        subscribe(api, shop.free, world.subscriber, app_name=f"Other {i}")


def page_urls(world, shop, sub: Subscription) -> dict[str, tuple[str, object]]:
    """(url, who) of each page whose cost must not grow with the data."""
    slug = shop.org.slug
    return {
        "landing": ("/", None),
        "store catalog": (store_url(shop.org), None),
        "API page": (store_url(shop.org, f"apis/{shop.api.pk}/"), None),
        "API page, subscriber": (
            store_url(shop.org, f"apis/{shop.api.pk}/"),
            world.subscriber,
        ),
        "subscription page": (
            store_url(shop.org, f"subscriptions/{sub.pk}/"),
            world.subscriber,
        ),
        "usage page": (
            reverse("gateway:subscription-usage", args=[slug, sub.pk]),
            world.subscriber,
        ),
        "usage data, every meter": (
            reverse("gateway:subscription-usage-data", args=[slug, sub.pk]),
            world.subscriber,
        ),
        "publisher dashboard": (
            reverse("publisher:dashboard", args=[slug]),
            world.publisher,
        ),
        "publisher usage page": (
            reverse("gateway:publisher-usage", args=[slug]),
            world.publisher,
        ),
    }


def page_queries(queries: CaptureQueriesContext) -> int:
    """The queries a page made, without the demo clock's read: a process reads the
    clock at most once a second, on whichever request comes then."""
    return sum("democlock" not in q["sql"].lower() for q in queries.captured_queries)


def query_counts(client, world, shop, sub) -> dict[str, tuple[int, int]]:
    """Per page: the queries of a first visit (the cache cold) and of the next."""
    counts = {}
    for name, (url, who) in page_urls(world, shop, sub).items():
        client.logout()
        if who is not None:
            client.force_login(who)
        visits = []
        for _ in range(2):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            assert response.status_code == 200, (name, response.status_code)
            visits.append(page_queries(queries))
        counts[name] = tuple(visits)
    return counts


def use(sub: Subscription, hours: range) -> None:
    """Usage rows of requests and tokens, `hours` hours ago."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for key in ("requests", "tokens"):
        UsageRecord.objects.bulk_create(
            UsageRecord(
                organization=sub.organization, subscription=sub, meter=key,
                hour=now - timedelta(hours=h), count=10,
            )
            for h in hours
        )  # fmt: skip


def test_every_page_makes_as_many_queries_with_ten_times_the_rows(world, shop, client):
    meters.meter_create(
        api=shop.api, actor=None, key="tokens", display_name="Tokens",
        unit_label="token", display_scale=1000, source=MeterSource.RESPONSE,
    )  # fmt: skip
    sub = subscribe(shop.api, shop.free, world.subscriber, app_name="Main")
    MeterPrice.objects.create(version=sub.tier_version, meter="tokens", quota_limit=9)
    grow(world, shop, 2)
    use(sub, range(1, 3))
    small = query_counts(client, world, shop, sub)
    grow(world, shop, 20)
    use(sub, range(3, 23))
    large = query_counts(client, world, shop, sub)
    assert large == small


def test_the_catalog_and_api_page_come_from_the_cache_on_the_next_visit(shop, client):
    client.get(store_url(shop.org))
    client.get(store_url(shop.org, f"apis/{shop.api.pk}/"))
    for url, most in [
        (store_url(shop.org), 1),  # the organization
        (store_url(shop.org, f"apis/{shop.api.pk}/"), 2),  # + payments
    ]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        assert page_queries(queries) <= most, [q["sql"] for q in queries]


def catalog(client, org) -> str:
    return client.get(store_url(org)).content.decode()


def api_page(client, api) -> str:
    return client.get(store_url(api.organization, f"apis/{api.pk}/")).content.decode()


def test_a_change_to_an_api_shows_at_once(shop, client):
    assert "Forecasts for any city." in catalog(client, shop.org)
    assert "forecast" in api_page(client, shop.api)
    publisher_services.api_update(
        api=shop.api,
        actor=None,
        name="Weather Pro",
        version=shop.api.version,
        context=shop.api.context,
        backend_url=shop.api.backend_url,
        description="Now with radar.",
        documentation="# Radar\n\nCall **/radar**.",
        tags=["radar"],
    )
    html = catalog(client, shop.org)
    assert "Weather Pro" in html and "Now with radar." in html
    assert "tag=radar" in html and "tag=forecast" not in html
    page = api_page(client, shop.api)
    assert "<strong>/radar</strong>" in page and "/forecast" not in page


def version_reads(monkeypatch) -> list[str]:
    """The catalog-version keys read from the shared cache from now on."""
    reads: list[str] = []
    shared = caches["default"]
    real_get = shared.get

    def get(key, *args, **kwargs):
        if str(key).startswith("store:catalog-version:"):
            reads.append(key)
        return real_get(key, *args, **kwargs)

    monkeypatch.setattr(shared, "get", get)
    return reads


def test_a_page_reads_the_catalog_version_once(shop, client, monkeypatch):
    catalog(client, shop.org)  # the cache warm
    reads = version_reads(monkeypatch)
    # The catalog, its tags and whether restricted APIs exist: three cached reads.
    assert "Weather API" in catalog(client, shop.org)
    assert reads == [f"store:catalog-version:{shop.org.pk}"]
    assert "Weather API" in catalog(client, shop.org)
    assert len(reads) == 2  # the next request reads it again


def test_a_request_that_changes_the_catalog_sees_its_change(shop):
    page_cache.request_started()
    try:
        names = [e.api.name for e in selectors.store_catalog(shop.org, None)]
        assert names == ["Weather API"]
        publisher_services.api_update(
            api=shop.api,
            actor=None,
            name="Weather Pro",
            version=shop.api.version,
            context=shop.api.context,
            backend_url=shop.api.backend_url,
            description="Now with radar.",
        )
        names = [e.api.name for e in selectors.store_catalog(shop.org, None)]
        assert names == ["Weather Pro"]
    finally:
        page_cache.request_finished()


def test_a_new_api_and_a_lifecycle_move_show_at_once(shop, client):
    assert "Maps" not in catalog(client, shop.org)
    maps = make_api(shop.org, name="Maps", context="maps", tiers=[shop.free])
    assert "Maps" not in catalog(client, shop.org)  # not published yet
    publisher_services.api_transition(
        api=maps, action=LifecycleAction.PUBLISH, actor=None
    )
    assert "Maps" in catalog(client, shop.org)
    publisher_services.api_transition(
        api=maps, action=LifecycleAction.DEPRECATE, actor=None
    )
    assert "Maps" not in catalog(client, shop.org)


def test_a_tier_change_shows_on_the_api_page_at_once(shop, client):
    assert "Platinum" not in api_page(client, shop.api)
    platinum = make_tier(shop.org, "Platinum", price=flat("99.00"))
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, shop.metered, platinum], actor=None
    )
    assert "Platinum" in api_page(client, shop.api)
    assert "$99.00" in api_page(client, shop.api)
    publisher_services.tier_archive(tier=platinum, actor=None)
    assert "Platinum" not in api_page(client, shop.api)


def test_the_cached_api_page_carries_nothing_of_a_visitor(world, shop, client, app):
    """The parts every visitor sees alike are cached; a subscriber's subscriptions,
    form and CSRF token never reach the next visitor, whoever comes first."""
    subscribe(shop.api, shop.free, world.subscriber, app_name="Private dashboard")
    url = store_url(shop.org, f"apis/{shop.api.pk}/")
    for _ in range(2):
        client.force_login(world.subscriber)
        mine = client.get(url).content.decode()
        assert "Private dashboard" in mine and 'id="subscribe-form"' in mine
        assert "csrfmiddlewaretoken" in mine and "Forecasts for any city." in mine
        client.logout()
        theirs = client.get(url).content.decode()
        assert "Private dashboard" not in theirs and "Your subscriptions" not in theirs
        assert "csrfmiddlewaretoken" not in theirs and "Dashboard" not in theirs
        assert "Sign up to subscribe" in theirs and "Forecasts for any city." in theirs


def test_paid_tiers_show_available_once_payments_are_on(shop, client, stripe_account):
    """Whether the organization takes payments is no part of the catalog: the
    cached pricing follows it all the same."""
    url = store_url(shop.org, f"apis/{shop.api.pk}/")
    assert "Not available yet" in client.get(url).content.decode()
    enable_monetization(shop.org, stripe_account)
    assert "Not available yet" not in client.get(url).content.decode()


def test_the_api_page_of_a_subscriber_reads_a_fixed_few_rows(world, shop, client, app):
    """The subscriber's subscriptions to the API with their application and tier
    names, and their applications: one query each, however many they have."""
    for i in range(3):
        subscribe(shop.api, shop.free, world.subscriber, app_name=f"App {i}")
    client.force_login(world.subscriber)
    url = store_url(shop.org, f"apis/{shop.api.pk}/")
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        html = client.get(url).content.decode()
    assert html.count('<li class="mb-04">') == 3 and html.count("<option") == 4
    tables = [q["sql"].split(" FROM ", 1)[1].split()[0] for q in queries]
    assert tables.count('"store_subscription"') == 1, tables
    assert tables.count('"store_application"') == 1, tables


def test_the_usage_page_reads_the_organization_once(world, shop, client):
    sub = subscribe(shop.api, shop.free, world.subscriber, app_name="Main")
    client.force_login(world.subscriber)
    url = reverse("gateway:subscription-usage", args=[shop.org.slug, sub.pk])
    with CaptureQueriesContext(connection) as queries:
        html = client.get(url).content.decode()
    assert f"/t/{shop.org.slug}/store/subscriptions/{sub.pk}/usage.json" in html
    tables = [q["sql"].split(" FROM ", 1)[1].split()[0] for q in queries]
    # The organization comes at most once (with the membership, signed in), and
    # no table is read twice.
    assert tables.count('"apimon_organization"') <= 1, tables
    assert len(tables) == len(set(tables)), tables


def test_nothing_cached_for_one_organization_shows_in_another(world, shop, client):
    other_tier = make_tier(world.other_org, "Free")
    other = make_api(
        world.other_org,
        name="Ledger",
        context="weather",  # the same context and version as the shop's API
        tiers=[other_tier],
        publish=True,
        tags=["payments"],
    )
    mine, theirs = catalog(client, shop.org), catalog(client, world.other_org)
    assert "Weather API" in mine and "Ledger" not in mine
    assert "Ledger" in theirs and "Weather API" not in theirs
    assert "tag=payments" in theirs and "tag=weather" not in theirs
    assert "Ledger" in api_page(client, other)
    # Another organization's API id in this store's URL is a 404, cached or not.
    response = client.get(store_url(shop.org, f"apis/{other.pk}/"))
    assert response.status_code == 404


@pytest.fixture
def secret(shop):
    return make_api(
        shop.org,
        name="Partner Ledger",
        context="ledger",
        tiers=[shop.free],
        publish=True,
        visibility=Visibility.RESTRICTED,
        tags=["partners"],
    )


@pytest.mark.parametrize("first", ["anonymous", "approved"])
def test_a_restricted_api_is_cached_apart_from_what_others_see(
    world, shop, secret, client, first
):
    membership = Membership.objects.get(user=world.subscriber, organization=shop.org)
    membership.restricted_access = RestrictedAccess.APPROVED
    membership.save()

    def as_anonymous():
        client.logout()
        html = catalog(client, shop.org)
        assert "Partner Ledger" not in html and "tag=partners" not in html
        assert "Weather API" in html
        assert api_page_status(client, secret) == 404

    def as_approved():
        client.force_login(world.subscriber)
        html = catalog(client, shop.org)
        assert "Partner Ledger" in html and "tag=partners" in html
        assert api_page_status(client, secret) == 200

    order = (
        [as_anonymous, as_approved]
        if first == "anonymous"
        else [as_approved, as_anonymous]
    )
    for visit in [*order, *order]:
        visit()


def api_page_status(client, api) -> int:
    return client.get(store_url(api.organization, f"apis/{api.pk}/")).status_code


def test_the_pages_and_changes_work_while_the_shared_cache_is_down(
    shop, client, settings
):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    assert "Weather API" in catalog(client, shop.org)
    publisher_services.api_update(
        api=shop.api,
        actor=None,
        name="Weather Pro",
        version=shop.api.version,
        context=shop.api.context,
        backend_url=shop.api.backend_url,
        description="Now with radar.",
    )
    assert "Weather Pro" in catalog(client, shop.org)
    assert "Weather Pro" in api_page(client, shop.api)


def test_a_meter_price_and_name_change_show_on_the_subscription_page_at_once(
    world, shop, client
):
    meter = meters.meter_create(
        api=shop.api, actor=None, key="tokens", display_name="Tokens",
        unit_label="token", display_scale=1000, source=MeterSource.RESPONSE,
    )  # fmt: skip
    sub = subscribe(shop.api, shop.free, world.subscriber, app_name="Main")
    client.force_login(world.subscriber)
    url = store_url(shop.org, f"subscriptions/{sub.pk}/")
    assert 'data-meter-used="tokens"' not in client.get(url).content.decode()
    MeterPrice.objects.create(version=sub.tier_version, meter="tokens", quota_limit=9)
    html = client.get(url).content.decode()
    assert '<dt>Tokens</dt><dd class="meter-price">' in html
    assert "9 tokens" in html
    meters.meter_update(
        meter=meter, actor=None, display_name="Words", unit_label="word",
        display_scale=1, source=MeterSource.RESPONSE,
    )  # fmt: skip
    html = client.get(url).content.decode()
    assert '<dt>Words</dt><dd class="meter-price">' in html
    assert "9 words" in html and "Tokens" not in html
