"""Dunning through the store's own pages: subscribe with Checkout using the card that
attaches but declines every charge (4000 0000 0000 0341), the start invoice fails,
the subscriber updates the card in Checkout, and the store's hook makes billing pay
the open invoice at once: ACTIVE again. The store's subscription page lists the
invoices."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.engine import billing_run
from billing.models import Invoice, InvoiceStatus
from publisher import services as publisher_services
from publisher.models import LifecycleAction
from store import services as store_services
from store.models import Subscription, SubscriptionState
from tests.billing.conftest import flat
from tests.store.conftest import local, pay, store_url

pytestmark = pytest.mark.django_db


def subscribe_with_a_card_that_declines(world, shop, stripe, client, capture):
    """Subscribe to a $19.00 FLAT tier through the store with the card that attaches
    but declines every charge; returns the subscription, ACTIVE and its start invoice
    written (the billing job)."""
    tier = shop.tier(flat("19.00"), name="Gold")
    publisher_services.api_transition(
        api=shop.api, action=LifecycleAction.PUBLISH, actor=None
    )
    app = store_services.application_create(
        organization=world.org, owner=world.subscriber, name="Dashboard"
    )
    response = client.post(
        store_url(world.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": tier.pk},
    )
    back = pay(stripe.emulator, response["Location"], "4000 0000 0000 0341")
    with capture(execute=True):
        client.get(local(back))
    sub = Subscription.objects.get(application=app)
    assert sub.state == SubscriptionState.ACTIVE
    with capture(execute=True):
        billing_run(now=timezone.now() + timedelta(minutes=1), flush=False)
    return sub


def test_a_declined_start_invoice_then_a_new_card_in_checkout(
    world, shop, stripe, client_for, django_capture_on_commit_callbacks
):
    client = client_for(world.subscriber)
    sub = subscribe_with_a_card_that_declines(
        world, shop, stripe, client, django_capture_on_commit_callbacks
    )

    invoice = Invoice.objects.get(subscription=sub)
    assert (invoice.kind, invoice.status, invoice.total_minor) == (
        "start",
        "open",
        1900,
    )
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ON_HOLD
    page = client.get(store_url(world.org, f"subscriptions/{sub.pk}/")).content.decode()
    assert invoice.number in page
    assert "Payment failed" in page

    # "Update card": Checkout again, with a card that works.
    response = client.post(store_url(world.org, f"subscriptions/{sub.pk}/checkout/"))
    back = pay(stripe.emulator, response["Location"], "4242 4242 4242 4242")
    with django_capture_on_commit_callbacks(execute=True):
        client.get(local(back))

    invoice.refresh_from_db()
    sub.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert sub.state == SubscriptionState.ACTIVE
    assert sub.grace_until is None
    kinds = list(sub.events.order_by("pk").values_list("kind", flat=True))
    order = [
        kinds.index(k) for k in ("payment_failed", "card_updated", "payment_recovered")
    ]
    assert order == sorted(order)


def test_the_page_after_a_card_update_shows_the_subscription_recovered(
    world, shop, stripe, client_for, django_capture_on_commit_callbacks, monkeypatch
):
    """Celery's worker has not run yet when the browser comes back from Checkout
    (the demo and production are not eager): the return itself pays the failed
    invoice, so the page is true at once, not "on hold" until a reload."""
    from billing import tasks

    client = client_for(world.subscriber)
    sub = subscribe_with_a_card_that_declines(
        world, shop, stripe, client, django_capture_on_commit_callbacks
    )
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ON_HOLD

    queued = []  # the worker's queue: nothing runs it during this request
    monkeypatch.setattr(tasks.retry_payment, "delay", lambda *a: queued.append(a))
    response = client.post(store_url(world.org, f"subscriptions/{sub.pk}/checkout/"))
    back = pay(stripe.emulator, response["Location"], "4242 4242 4242 4242")
    with django_capture_on_commit_callbacks(execute=True):
        page = client.get(local(back), follow=True).content.decode()

    assert queued == [(sub.pk,)]
    assert "Your card is saved. The subscription is active." in page
    assert "On hold" not in page
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE
    assert Invoice.objects.get(subscription=sub).status == InvoiceStatus.PAID
