"""Cancel at period end (default) or now (access ends, final invoice for usage to
date), and undo a scheduled cancellation."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from store import services
from store.models import Subscription, SubscriptionState
from tests.store.conftest import store_url, subscribe_paid


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
