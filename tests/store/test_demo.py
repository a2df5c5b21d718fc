"""The demo's subscribers (`store.demo.SUBSCRIBERS`) and how one is subscribed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from apimon.models import Organization
from apimon.services import trial_plan
from publisher.demo import CATALOGS, seed_catalog
from store import demo
from store.models import ApiKey, SubscriptionState
from tests.conftest import make_user


def test_every_subscription_names_an_api_and_a_tier_it_offers():
    for slug, subscribers in demo.SUBSCRIBERS.items():
        catalog = CATALOGS[slug]
        offered = {api.context: set(api.tiers) for api in catalog.apis}
        free = {t.name for t in catalog.tiers if t.price.is_free}
        free_per_subscriber_and_api = Counter()
        for subscriber in subscribers:
            for app in subscriber.applications:
                apis = [sub.api for sub in app.subscriptions]
                # One live subscription per application and API (the store's rule).
                assert len(apis) == len(set(apis)), app.name
                for sub in app.subscriptions:
                    assert sub.tier in offered[sub.api], (app.name, sub)
                    if sub.tier in free:
                        free_per_subscriber_and_api[subscriber.email, sub.api] += 1
        # At most one free subscription per subscriber and API: the store may
        # come to allow no more.
        assert set(free_per_subscriber_and_api.values()) <= {1}


def test_the_readme_application_is_on_the_weather_apis_free_tier():
    (readme,) = [
        app
        for subscriber in demo.SUBSCRIBERS["acme"]
        if subscriber.email == "subscriber@acme.localhost"
        for app in subscriber.applications
        if app.name == demo.README_APPLICATION
    ]
    assert [(s.api, s.tier) for s in readme.subscriptions] == [("weather", "Free")]


@pytest.mark.django_db
def test_a_free_subscription_starts_at_its_time_in_the_story():
    org = Organization.objects.create(slug="acme", name="Acme", plan=trial_plan())
    seed_catalog(org, actor=None)
    subscriber = make_user("subscriber@acme.localhost")
    app = demo.DemoApplication(
        "Dashboard",
        "",
        (demo.DemoSubscription("weather", "Free", demo.days(10)),),
    )
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    subscription, raw = demo.subscribe(
        org, subscriber, app, app.subscriptions[0], at=at, pay=None
    )
    assert subscription.state == SubscriptionState.ACTIVE
    assert subscription.started_at == subscription.created_at == at
    assert subscription.current_period_start == at
    assert subscription.current_period_end == datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
    assert subscription.next_invoice_at is None  # free: never invoiced
    assert {e.at for e in subscription.events.all()} == {at}
    key = ApiKey.objects.get(application=subscription.application)
    assert raw.startswith(key.prefix) and key.created_at == at
    assert subscription.application.created_at == at


@pytest.mark.django_db
def test_a_paid_subscription_needs_stripe():
    org = Organization.objects.create(slug="acme", name="Acme", plan=trial_plan())
    seed_catalog(org, actor=None)
    app = demo.DemoApplication(
        "App", "", (demo.DemoSubscription("weather", "Starter", demo.days(10)),)
    )
    subscription, raw = demo.subscribe(
        org,
        make_user("subscriber@acme.localhost"),
        app,
        app.subscriptions[0],
        at=datetime(2026, 3, 1, tzinfo=UTC),
        pay=None,
    )
    assert (subscription, raw) == (None, "")
