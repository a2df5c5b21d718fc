"""Each subscription keeps its own card: changing the card of one subscription in
Checkout changes that one only. Its invoices charge its card (Stripe's per-invoice
`default_payment_method`), its page shows it, its history records the change; the
subscriber's other subscriptions renew with their own cards, histories untouched."""

from __future__ import annotations

import pytest

from apimon import stripe_client as sc
from billing.engine import billing_run, settle_delay
from billing.models import Invoice, InvoiceKind, InvoiceStatus
from billing.push import invoice_push
from store import services
from store.models import SubscriptionState
from tests.store.conftest import kinds, local, pay, store_url, subscribe_paid

pytestmark = pytest.mark.django_db

DECLINES_ON_CHARGE = "4000 0000 0000 0341"


def change_card(client, emulator, sub, card: str) -> None:
    """The subscription page's "change" next to the card: Checkout, then back."""
    response = client.post(
        store_url(sub.organization, f"subscriptions/{sub.pk}/checkout/")
    )
    assert "/c/pay/" in response["Location"]
    assert (
        client.get(local(pay(emulator, response["Location"], card))).status_code == 302
    )


def page(client, sub) -> str:
    response = client.get(store_url(sub.organization, f"subscriptions/{sub.pk}/"))
    assert response.status_code == 200
    return response.content.decode()


def renew(subs, capture) -> None:
    """The billing job at the end of the first period: renewal invoices, pushed."""
    at = max(sub.current_period_end for sub in subs) + settle_delay()
    with capture(execute=True):
        billing_run(now=at, flush=False, enqueue_push=False)
        for invoice in Invoice.objects.filter(kind=InvoiceKind.RENEWAL):
            invoice_push(invoice_id=invoice.pk)


def test_a_card_change_changes_only_that_subscription(
    world,
    shop,
    monetized,
    stripe_emulator,
    client_for,
    django_capture_on_commit_callbacks,
):
    client = client_for(world.subscriber)
    subs = []
    for name in ("Dashboard", "Mobile app", "Batch jobs"):
        app = services.application_create(
            organization=world.org, owner=world.subscriber, name=name
        )
        with django_capture_on_commit_callbacks(execute=True):
            subs.append(subscribe_paid(client, shop, app, stripe_emulator))
    first, changed, third = subs
    with django_capture_on_commit_callbacks(execute=True):
        billing_run(
            now=max(s.next_invoice_at for s in subs) + settle_delay(),
            flush=False,
            enqueue_push=False,
        )
        for invoice in Invoice.objects.filter(kind=InvoiceKind.START):
            invoice_push(invoice_id=invoice.pk)
    for sub in subs:
        sub.refresh_from_db()
        assert sub.state == SubscriptionState.ACTIVE
    others_before = {sub.pk: kinds(sub) for sub in (first, third)}

    with django_capture_on_commit_callbacks(execute=True):
        change_card(client, stripe_emulator, changed, DECLINES_ON_CHARGE)

    for sub in subs:
        sub.refresh_from_db()
    assert changed.card_label == "Visa •••• 0341"
    assert first.card_label == third.card_label == "Visa •••• 4242"
    assert first.payment_method_id != changed.payment_method_id
    assert "Visa •••• 0341" in page(client, changed)
    for sub in (first, third):
        shown = page(client, sub)
        assert "Visa •••• 4242" in shown and "0341" not in shown
    event = changed.events.get(kind="card_updated")
    assert event.note == "Visa •••• 0341 (was Visa •••• 4242)"
    assert "Visa •••• 0341 (was Visa •••• 4242)" in page(client, changed)

    renew(subs, django_capture_on_commit_callbacks)

    for sub in subs:
        sub.refresh_from_db()
    renewal = {i.subscription_id: i for i in Invoice.objects.filter(kind="renewal")}
    assert renewal[first.pk].status == renewal[third.pk].status == InvoiceStatus.PAID
    assert renewal[changed.pk].status == InvoiceStatus.OPEN
    assert (first.state, changed.state, third.state) == (
        SubscriptionState.ACTIVE,
        SubscriptionState.ON_HOLD,
        SubscriptionState.ACTIVE,
    )
    assert {sub.pk: kinds(sub) for sub in (first, third)} == others_before
    # On Stripe, each renewal names its subscription's card and was charged with it.
    for sub in subs:
        stripe_invoice = sc.get_client().v1.invoices.retrieve(
            renewal[sub.pk].stripe_invoice_id,
            options=sc.request_options(account=monetized),
        )
        assert stripe_invoice.default_payment_method == sub.payment_method_id
