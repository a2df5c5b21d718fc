"""The publisher dashboard: APIs by state, subscriptions per API and tier, newest
subscriptions, in a flat number of queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apimon.models import Membership, Role
from publisher import services
from publisher.models import LifecycleAction
from tests.conftest import make_user
from tests.publisher.helpers import make_api, make_tier, subscribe

URL = "/t/acme/publisher/"


@pytest.mark.django_db
def test_the_dashboard_counts_apis_and_live_subscriptions_per_api_and_tier(
    world, client_for
):
    gold, silver = (
        make_tier(world.org, name="Gold"),
        make_tier(world.org, name="Silver"),
    )
    weather = make_api(world.org, tiers=[gold, silver], publish=True)
    quotes = make_api(
        world.org, name="Quotes", context="quotes", tiers=[gold], publish=True
    )
    make_api(world.org, name="Draft", context="draft")
    users = [make_user(f"u{i}@x.test") for i in range(4)]
    subscribe(weather, gold, users[0])
    subscribe(weather, gold, users[1])
    subscribe(weather, silver, users[2])
    subscribe(weather, silver, users[3], state="CANCELLED")
    subscribe(quotes, gold, users[0], state="ON_HOLD")
    services.api_transition(api=quotes, action=LifecycleAction.DEPRECATE, actor=None)
    # Another organization's subscriptions never count.
    theirs = make_tier(world.other_org)
    subscribe(make_api(world.other_org, tiers=[theirs], publish=True), theirs, users[0])

    response = client_for(world.publisher).get(URL)

    dash = response.context["dash"]
    assert dash.state_counts == {
        "CREATED": 1,
        "PUBLISHED": 1,
        "DEPRECATED": 1,
        "RETIRED": 0,
        "BLOCKED": 0,
    }
    rows = {
        row.api.name: [(tier.name, n) for tier, n in row.tiers] for row in dash.apis
    }
    assert rows == {
        "Weather API": [("Gold", 2), ("Silver", 1)],
        "Quotes": [("Gold", 1)],
        "Draft": [],
    }
    assert dash.total_subscriptions == 4
    assert len(dash.newest_subscriptions) == 5  # acme's, the cancelled one too
    page = response.content.decode()
    assert "Not offered on any tier" in page


@pytest.mark.django_db
def test_subscriptions_on_a_tier_no_longer_offered_still_count(world, client_for):
    gold, silver = (
        make_tier(world.org, name="Gold"),
        make_tier(world.org, name="Silver"),
    )
    api = make_api(world.org, tiers=[gold, silver], publish=True)
    subscribe(api, silver, world.subscriber)
    services.api_set_tiers(api=api, tiers=[gold], actor=None)
    dash = client_for(world.publisher).get(URL).context["dash"]
    assert [(t.name, n) for t, n in dash.apis[0].tiers] == [("Gold", 0), ("Silver", 1)]


@pytest.mark.django_db
def test_the_newest_ten_subscriptions_come_first(world, client_for):
    tier = make_tier(world.org)
    api = make_api(world.org, tiers=[tier], publish=True)
    start = timezone.now() - timedelta(days=1)
    subs = []
    for i in range(12):
        sub = subscribe(api, tier, make_user(f"s{i}@x.test"))
        sub.created_at = start + timedelta(minutes=i)
        sub.save()
        subs.append(sub)
    newest = client_for(world.publisher).get(URL).context["dash"].newest_subscriptions
    assert newest == list(reversed(subs))[:10]


@pytest.mark.django_db
def test_the_dashboard_query_count_does_not_grow_with_the_data(
    world, client_for, django_assert_max_num_queries
):
    client = client_for(world.publisher)
    tier = make_tier(world.org)
    api = make_api(world.org, tiers=[tier], publish=True)
    subscribe(api, tier, world.subscriber)
    with django_assert_max_num_queries(20) as first:
        client.get(URL)
    baseline = len(first.captured_queries)

    for i in range(5):
        extra = make_tier(world.org, name=f"T{i}")
        more = make_api(world.org, context=f"api{i}", tiers=[tier, extra], publish=True)
        for j in range(3):
            subscribe(more, extra, make_user(f"d{i}{j}@x.test"))
    with django_assert_max_num_queries(baseline):
        client.get(URL)


@pytest.mark.django_db
def test_a_subscriber_gets_403_and_an_outsider_404(world, client_for):
    assert client_for(world.subscriber).get(URL).status_code == 403
    assert client_for(world.outsider).get(URL).status_code == 404
    assert client_for(world.owner).get(URL).status_code == 200


@pytest.mark.django_db
def test_a_catalog_change_shows_on_the_dashboard_at_once(world, client_for):
    """The dashboard's APIs, offers and tiers come from the page cache, retired by
    any catalog change; its subscriptions are read each time."""
    client = client_for(world.publisher)
    gold = make_tier(world.org, name="Gold")
    weather = make_api(world.org, tiers=[gold], publish=True)

    def table() -> dict[str, list[tuple[str, int]]]:
        response = client.get(URL)
        dash = response.context["dash"]
        shown = {
            f"{row.api.name} {row.api.state}": [(t.name, n) for t, n in row.tiers]
            for row in dash.apis
        }
        # The page's table (rendered once per catalog and counts) says the same.
        page = response.content.decode()
        part = page[page.index('id="subscriber-counts"') : page.index("newest-sub")]
        cells = re.findall(
            r'tiers/\d+/">([^<]+)</a>.*?<td class="num">(\d+)</td>', part, re.S
        )
        assert cells == [(t, str(n)) for tiers in shown.values() for t, n in tiers]
        return shown

    assert table() == {"Weather API PUBLISHED": [("Gold", 0)]}
    subscribe(weather, gold, world.subscriber)
    assert table() == {"Weather API PUBLISHED": [("Gold", 1)]}
    silver = make_tier(world.org, name="Silver")
    services.api_set_tiers(api=weather, tiers=[gold, silver], actor=None)
    quotes = make_api(world.org, name="Quotes", context="quotes", tiers=[silver])
    assert table() == {
        "Weather API PUBLISHED": [("Gold", 1), ("Silver", 0)],
        "Quotes CREATED": [("Silver", 0)],
    }
    services.api_transition(api=quotes, action=LifecycleAction.PUBLISH, actor=None)
    gold.refresh_from_db()
    services.tier_update(
        tier=gold,
        actor=None,
        name="Platinum",
        limits=services.TierLimits(),
        price=services.TierPrice(),
    )
    assert table() == {
        "Weather API PUBLISHED": [("Platinum", 1), ("Silver", 0)],
        "Quotes PUBLISHED": [("Silver", 0)],
    }
    # Another organization's dashboard has its own.
    Membership.objects.create(
        organization=world.other_org, user=world.publisher, role=Role.PUBLISHER
    )
    other = client.get(f"/t/{world.other_org.slug}/publisher/").context["dash"]
    assert other.apis == []
