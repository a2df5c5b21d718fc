"""The publisher's side: subscriptions per API with filters; block and unblock with
a reason the subscriber sees."""

from __future__ import annotations

import pytest

from publisher.models import Api
from store import services
from store.models import Subscription, SubscriptionState
from tests.publisher.helpers import make_api, make_tier


def pub_url(org, path: str = "") -> str:
    return f"/t/{org.slug}/publisher/subscriptions/{path}"


@pytest.fixture
def subs(world, shop, app):
    """Three subscriptions: the subscriber's on two APIs, the publisher's own."""
    maps = make_api(
        shop.org, name="Maps", context="maps", tiers=[shop.free], publish=True
    )
    one = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    two = services.subscription_create(
        application=app, api=maps, tier=shop.free, actor=world.subscriber
    ).subscription
    theirs = services.application_create(
        organization=shop.org, owner=world.publisher, name="Internal tool"
    )
    three = services.subscription_create(
        application=theirs, api=shop.api, tier=shop.free, actor=world.publisher
    ).subscription
    services.subscription_cancel(subscription=three, actor=None, at_period_end=False)
    return one, two, three, maps


def rows(response) -> str:
    html = response.content.decode()
    return (
        html.split('id="subscriptions"', 1)[1] if 'id="subscriptions"' in html else ""
    )


def test_the_list_shows_every_subscription_of_the_organization(world, subs, client_for):
    response = client_for(world.publisher).get(pub_url(world.org))
    table = rows(response)
    assert table.count("subscriber@acme.test") == 2
    assert "publisher@acme.test" in table and "Internal tool" in table
    nav = response.content.decode()
    assert 'class="active">Subscriptions' in nav.replace("\n", "")


def test_filters_by_api_tier_state_and_search(world, shop, subs, client_for):
    maps = subs[3]
    client = client_for(world.owner)
    table = rows(client.get(pub_url(world.org), {"api": maps.pk}))
    assert "Maps" in table and "Weather API" not in table
    table = rows(client.get(pub_url(world.org), {"state": "CANCELLED"}))
    assert "Internal tool" in table and "Dashboard" not in table
    table = rows(client.get(pub_url(world.org), {"q": "internal"}))
    assert "Internal tool" in table and "Dashboard" not in table
    table = rows(client.get(pub_url(world.org), {"q": "subscriber@"}))
    assert "Dashboard" in table and "Internal tool" not in table
    table = rows(client.get(pub_url(world.org), {"tier": shop.gold.pk}))
    assert table == ""  # nobody on Gold: the empty state instead of a table


def test_another_organizations_subscriptions_never_show(world, subs, client_for):
    globex_tier = make_tier(world.other_org, "Free")
    globex_api = make_api(world.other_org, tiers=[globex_tier], publish=True)
    app = services.application_create(
        organization=world.other_org, owner=world.outsider, name="Globex app"
    )
    sub = services.subscription_create(
        application=app, api=globex_api, tier=globex_tier, actor=world.outsider
    ).subscription
    client = client_for(world.publisher)
    assert "Globex app" not in client.get(pub_url(world.org)).content.decode()
    assert client.get(pub_url(world.org, f"{sub.pk}/")).status_code == 404
    assert (
        client.post(pub_url(world.org, f"{sub.pk}/block/"), {"reason": "x"}).status_code
        == 404
    )
    assert Subscription.objects.get(pk=sub.pk).state == SubscriptionState.ACTIVE
    assert Api.objects.filter(organization=world.other_org).count() == 1


def test_block_needs_a_reason_that_the_subscriber_then_sees(world, subs, client_for):
    # The gateway refusing it at once: tests/store/test_gateway_effects.py.
    one = subs[0]
    publisher = client_for(world.publisher)
    response = publisher.post(pub_url(world.org, f"{one.pk}/block/"), {"reason": " "})
    assert response.status_code == 400
    assert "Tell the subscriber why." in response.content.decode()
    one.refresh_from_db()
    assert one.state == SubscriptionState.ACTIVE

    publisher.post(
        pub_url(world.org, f"{one.pk}/block/"), {"reason": "Scraping the API"}
    )
    one.refresh_from_db()
    assert (one.state, one.blocked_reason, one.blocked_by_publisher) == (
        SubscriptionState.BLOCKED,
        "Scraping the API",
        True,
    )
    event = one.events.get(kind="blocked")
    assert (event.actor, event.note, event.from_state) == (
        world.publisher,
        "Scraping the API",
        "ACTIVE",
    )

    page = client_for(world.subscriber).get(
        f"/t/{world.org.slug}/store/subscriptions/{one.pk}/"
    )
    assert "Scraping the API" in page.content.decode()


def test_unblock_returns_to_the_state_the_rows_say(world, subs, client_for):
    one = subs[0]
    services.subscription_block(subscription=one, actor=None, reason="Checking")
    response = client_for(world.owner).post(
        pub_url(world.org, f"{one.pk}/unblock/"), follow=True
    )
    one.refresh_from_db()
    assert one.state == SubscriptionState.ACTIVE and one.blocked_reason == ""
    assert "The subscription is unblocked (Active)." in response.content.decode()
    assert one.events.filter(kind="unblocked").exists()


def test_a_block_by_dunning_is_not_lifted_by_the_publisher(world, subs, client_for):
    one = subs[0]
    Subscription.objects.filter(pk=one.pk).update(state=SubscriptionState.BLOCKED)
    response = client_for(world.owner).post(
        pub_url(world.org, f"{one.pk}/unblock/"), follow=True
    )
    assert "not blocked by the publisher" in response.content.decode()
    one.refresh_from_db()
    assert one.state == SubscriptionState.BLOCKED


def test_a_cancelled_subscription_cannot_be_blocked(world, subs):
    with pytest.raises(Exception, match="cannot be blocked"):
        services.subscription_block(subscription=subs[2], actor=None, reason="x")


def test_the_detail_page_shows_history_and_the_block_form(world, subs, client_for):
    html = client_for(world.publisher).get(pub_url(world.org, f"{subs[0].pk}/"))
    html = html.content.decode()
    assert "Block subscription" in html and "Subscribed" in html
