"""Cancel at period end (default) or now (access ends, final invoice for usage to
date), and undo a scheduled cancellation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from billing.engine import billing_run, settle_delay
from billing.models import Invoice
from publisher import services as publisher_services
from store import services
from store.models import Subscription, SubscriptionState
from tests.publisher.helpers import make_tier
from tests.store.conftest import flat, store_url, subscribe_paid


@pytest.fixture
def gold_sub(world, shop, app, monetized, stripe_emulator, client_for):
    return subscribe_paid(client_for(world.subscriber), shop, app, stripe_emulator)


def test_cancel_at_period_end_is_the_default_and_can_be_undone(
    world, shop, gold_sub, client_for
):
    client = client_for(world.subscriber)
    form = client.get(store_url(shop.org, f"subscriptions/{gold_sub.pk}/cancel/"))
    assert 'value="period_end" checked' in form.content.decode()
    response = client.post(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/cancel/"),
        {"when": "period_end"},
        follow=True,
    )
    sub = Subscription.objects.get(pk=gold_sub.pk)
    end = sub.current_period_end
    assert sub.state == SubscriptionState.ACTIVE and sub.cancel_at_period_end
    html = response.content.decode()
    assert f"The subscription ends on {end:%d %b %Y}." in html
    assert "Keep the subscription" in html
    assert sub.events.get(kind="cancel_scheduled").data == {
        "effective_at": end.isoformat()
    }

    client.post(store_url(shop.org, f"subscriptions/{gold_sub.pk}/resume/"))
    sub.refresh_from_db()
    assert not sub.cancel_at_period_end
    assert sub.events.filter(kind="cancel_unscheduled").exists()


def test_cancelled_in_a_trial_it_ends_when_the_trial_ends_as_the_page_says(
    world, shop, app, monetized, stripe_emulator, client_for
):
    trial = make_tier(shop.org, "Trial Gold", price=flat("29.00", trial=14))
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, trial], actor=None
    )
    client = client_for(world.subscriber)
    sub = subscribe_paid(client, shop, app, stripe_emulator, tier=trial)
    assert sub.state == SubscriptionState.TRIALING
    trial_end, period_end = sub.trial_end, sub.current_period_end
    assert f"{trial_end:%d %b %Y}" != f"{period_end:%d %b %Y}"  # 14 days vs a month
    url = store_url(shop.org, f"subscriptions/{sub.pk}/cancel/")
    form = client.get(url).content.decode()
    assert f"At the end of the trial</strong> — {trial_end:%d %b %Y %H:%M} UTC" in form

    html = client.post(url, {"when": "period_end"}, follow=True).content.decode()

    assert f"The subscription ends on {trial_end:%d %b %Y}." in html
    assert f"Ends on {trial_end:%d %b %Y}</h3>" in html
    assert f"cancelled at the end of the trial ({trial_end:%d %b %Y %H:%M} UTC)" in html
    assert f"{period_end:%d %b %Y %H:%M} UTC)" not in html
    assert "The subscription ends with the trial: nothing is charged." in html
    sub.refresh_from_db()
    assert sub.ends_at == trial_end
    assert sub.events.get(kind="cancel_scheduled").data == {
        "effective_at": trial_end.isoformat()
    }
    listing = client.get(store_url(shop.org, "subscriptions/")).content.decode()
    assert f"ends {trial_end:%d %b %Y}" in listing

    # Billing ends it on that date, not at the end of the period.
    billing_run(now=trial_end - timedelta(minutes=1), flush=False, enqueue_push=False)
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.TRIALING
    billing_run(now=trial_end + settle_delay(), flush=False, enqueue_push=False)
    sub.refresh_from_db()
    assert (sub.state, sub.cancelled_at) == (SubscriptionState.CANCELLED, trial_end)
    assert sub.events.get(kind="cancelled_at_period_end").at == trial_end
    assert not Invoice.objects.filter(subscription=sub).exists()
    html = client.get(store_url(shop.org, f"subscriptions/{sub.pk}/")).content.decode()
    assert f"Cancelled on {trial_end:%d %b %Y %H:%M} UTC" in html


def test_cancel_now_ends_access_and_asks_billing_for_the_final_invoice(
    world, shop, gold_sub, client_for
):
    # The gateway refusing it at once: tests/store/test_gateway_effects.py.
    response = client_for(world.subscriber).post(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/cancel/"),
        {"when": "now"},
        follow=True,
    )
    sub = Subscription.objects.get(pk=gold_sub.pk)
    assert sub.state == SubscriptionState.CANCELLED
    assert sub.cancelled_at is not None and sub.next_invoice_at == sub.cancelled_at
    event = sub.events.get(kind="cancelled_now")
    assert (event.from_state, event.to_state) == ("ACTIVE", "CANCELLED")
    assert event.data == {"final_invoice": True} and event.actor == world.subscriber
    html = response.content.decode()
    assert "The subscription is cancelled." in html and "Subscribe again" in html


def test_cancelling_a_free_subscription_now_issues_no_invoice(world, shop, app):
    sub = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    sub = services.subscription_cancel(
        subscription=sub, actor=None, at_period_end=False
    )
    assert sub.state == SubscriptionState.CANCELLED and sub.next_invoice_at is None


def test_a_subscription_that_never_started_is_cancelled_now(
    world, shop, app, monetized, client_for
):
    client = client_for(world.subscriber)
    client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    sub = Subscription.objects.get()
    page = client.get(store_url(shop.org, f"subscriptions/{sub.pk}/cancel/"))
    assert "nothing is charged" in page.content.decode()
    sub = services.subscription_cancel(subscription=sub, actor=None)  # default
    assert sub.state == SubscriptionState.CANCELLED and sub.next_invoice_at is None
    # The application may subscribe again.
    client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.free.pk},
    )
    assert Subscription.objects.filter(application=app).count() == 2


def test_a_cancelled_subscription_cannot_be_cancelled_or_resumed(world, shop, app):
    sub = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    services.subscription_cancel(subscription=sub, actor=None, at_period_end=False)
    with pytest.raises(ValidationError):
        services.subscription_cancel(subscription=sub, actor=None)
    with pytest.raises(ValidationError):
        services.subscription_resume(subscription=sub, actor=None)


def test_another_subscribers_subscription_cannot_be_cancelled(
    world, shop, gold_sub, client_for
):
    for user in (world.publisher, world.owner, world.outsider):
        client = client_for(user)
        url = store_url(shop.org, f"subscriptions/{gold_sub.pk}/cancel/")
        assert client.get(url).status_code == 404
        assert client.post(url, {"when": "now"}).status_code == 404
        assert (
            client.post(
                store_url(shop.org, f"subscriptions/{gold_sub.pk}/resume/")
            ).status_code
            == 404
        )
    gold_sub.refresh_from_db()
    assert gold_sub.state == SubscriptionState.ACTIVE
