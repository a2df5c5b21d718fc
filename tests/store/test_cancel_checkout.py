"""Cancelling a subscription whose Checkout is still open (PENDING_PAYMENT: the
subscriber left Checkout without saving a card) expires that Checkout on the
publisher's connected account; a session that stays open anyway (Stripe unreachable)
changes nothing when it is completed later."""

from __future__ import annotations

import logging

import pytest
import stripe

from apimon import stripe_client as sc
from store import services
from store.models import StripeCustomer, Subscription, SubscriptionState
from stripe_emulator import testing
from tests.store.conftest import (
    complete_by_webhook,
    kinds,
    local,
    pay,
    store_url,
    subscribe_paid,
)


def session_on_stripe(session_id: str, account: str):
    return sc.get_client().v1.checkout.sessions.retrieve(
        session_id, {}, sc.request_options(account=account)
    )


@pytest.fixture
def pending(world, shop, app, monetized, client_for):
    """Subscribed to Gold, Checkout opened and left: (client, subscription, page)."""
    client = client_for(world.subscriber)
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    assert response.status_code == 302
    sub = Subscription.objects.get(application=app)
    assert sub.state == SubscriptionState.PENDING_PAYMENT
    return client, sub, response["Location"]


def cancel(client, sub, capture_on_commit):
    with capture_on_commit(execute=True):
        response = client.post(
            store_url(sub.organization, f"subscriptions/{sub.pk}/cancel/"),
            {"when": "now"},
            follow=True,
        )
    assert "The subscription is cancelled." in response.content.decode()
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.CANCELLED


def test_cancelling_a_pending_subscription_expires_its_checkout(
    pending,
    monetized,
    stripe_emulator,
    stripe_webhook_capture,
    django_capture_on_commit_callbacks,
):
    client, sub, checkout_url = pending
    session_id = sub.checkout_session_id
    assert session_on_stripe(session_id, monetized).status == "open"

    cancel(client, sub, django_capture_on_commit_callbacks)

    session = session_on_stripe(session_id, monetized)
    assert (session.status, session.url) == ("expired", None)
    stripe_emulator.deliver_pending()
    assert "checkout.session.expired" in stripe_webhook_capture.types()
    # The old Checkout page takes no card any more…
    status, page = testing.submit_card(stripe_emulator, checkout_url)
    assert status == 410 and "This Checkout Session has expired" in page
    # …its "Go back" lands on the subscription, which says so…
    detail = client.get(
        store_url(sub.organization, f"subscriptions/{sub.pk}/?checkout=cancelled")
    )
    assert "This subscription is cancelled: its checkout is closed" in (
        detail.content.decode()
    )
    # …and a hand-made return with the session id changes nothing either.
    back = client.get(
        store_url(sub.organization, f"subscriptions/{sub.pk}/checkout/return/")
        + f"?session_id={session_id}",
        follow=True,
    )
    assert "cancelled before the checkout was completed" in back.content.decode()
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.CANCELLED and sub.started_at is None
    assert sub.next_invoice_at is None
    assert "activated" not in kinds(sub) and "checkout_completed" not in kinds(sub)
    customer = StripeCustomer.objects.get()
    assert customer.default_payment_method_id == "" and customer.card_last4 == ""
    methods = sc.get_client().v1.customers.payment_methods.list(
        customer.stripe_customer_id, None, sc.request_options(account=monetized)
    )
    assert methods.data == []


def test_every_checkout_the_subscription_opened_is_expired(
    pending, monetized, django_capture_on_commit_callbacks
):
    client, sub, _url = pending
    first = sub.checkout_session_id
    client.post(store_url(sub.organization, f"subscriptions/{sub.pk}/checkout/"))
    sub.refresh_from_db()
    second = sub.checkout_session_id
    assert second != first

    cancel(client, sub, django_capture_on_commit_callbacks)

    assert session_on_stripe(first, monetized).status == "expired"
    assert session_on_stripe(second, monetized).status == "expired"


def test_a_stripe_outage_does_not_stop_the_cancel_and_the_open_checkout_changes_nothing(
    pending,
    monetized,
    stripe_emulator,
    stripe_webhook_capture,
    django_capture_on_commit_callbacks,
    monkeypatch,
    caplog,
):
    client, sub, checkout_url = pending
    session_id = sub.checkout_session_id

    def down(*args, **kwargs):
        raise stripe.APIConnectionError("network down")

    sessions = sc.get_client().v1.checkout.sessions
    monkeypatch.setattr(sessions, "expire", down, raising=False)
    with caplog.at_level(logging.WARNING, logger="store.services"):
        cancel(client, sub, django_capture_on_commit_callbacks)
    assert f"Checkout {session_id} of cancelled subscription {sub.pk}" in caplog.text
    monkeypatch.undo()
    assert session_on_stripe(session_id, monetized).status == "open"

    # The subscriber finds the tab and saves a card: Stripe completes the session…
    back = pay(stripe_emulator, checkout_url)
    assert session_on_stripe(session_id, monetized).status == "complete"
    # …the browser's return and the webhook apply nothing.
    response = client.get(local(back), follow=True)
    assert "cancelled before the checkout was completed: the checkout changed " in (
        response.content.decode()
    )
    complete_by_webhook(stripe_emulator, stripe_webhook_capture, monetized)
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.CANCELLED and sub.started_at is None
    assert sub.next_invoice_at is None
    assert "activated" not in kinds(sub) and "checkout_completed" not in kinds(sub)
    customer = StripeCustomer.objects.get()
    assert customer.default_payment_method_id == ""
    on_stripe = sc.get_client().v1.customers.retrieve(
        customer.stripe_customer_id, None, sc.request_options(account=monetized)
    )
    assert on_stripe.invoice_settings.default_payment_method is None


def test_a_checkout_that_expired_by_itself_says_so_and_stays_pending(
    pending, monetized, stripe_emulator
):
    client, sub, _url = pending
    stripe_emulator.advance(24 * 3600)
    assert session_on_stripe(sub.checkout_session_id, monetized).status == "expired"

    response = client.get(
        store_url(sub.organization, f"subscriptions/{sub.pk}/checkout/return/")
        + f"?session_id={sub.checkout_session_id}",
        follow=True,
    )

    page = response.content.decode()
    assert "This checkout expired before a card was saved: start it again." in page
    assert "Complete payment" in page
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.PENDING_PAYMENT


def test_cancelling_after_the_card_was_saved_asks_stripe_nothing(
    world,
    shop,
    app,
    monetized,
    stripe_emulator,
    client_for,
    django_capture_on_commit_callbacks,
):
    sub = subscribe_paid(client_for(world.subscriber), shop, app, stripe_emulator)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.subscription_cancel(subscription=sub, actor=None, at_period_end=False)

    assert len(callbacks) == 1  # the gateway's invalidation only
    assert session_on_stripe(sub.checkout_session_id, monetized).status == "complete"
