"""Stripe's invoice webhooks, handled by billing.services (the handlers the webhook
endpoint's registry calls): each applied once, in any order; an old event never
undoes a newer one; events from another account are ignored."""

from __future__ import annotations

import json

import pytest
from django.utils.module_loading import import_string

from apimon import stripe_client as sc
from billing import webhooks
from billing.engine import billing_run
from billing.models import Invoice, InvoiceStatus
from billing.push import invoice_push
from store.models import SubscriptionEvent, SubscriptionState
from tests.billing.conftest import Crash, crash_at, flat, utc
from tests.billing.test_dunning import update_card

pytestmark = pytest.mark.django_db


def events_of(capture, emulator, *types):
    emulator.deliver_pending()
    return [e for e in capture.events() if e["type"] in types]


def handle(event):
    """Run the event's handlers from the webhook registry; True if any changed
    something."""
    results = [import_string(path)(event) for path in webhooks.HANDLERS[event["type"]]]
    return any(results)


@pytest.fixture
def collected_by_stripe(shop, stripe, stripe_webhook_capture):
    """An invoice finalized by apimon but collected by Stripe on its own: the
    first automatic attempt fails (declining card), the card is updated, and the
    retry a day later succeeds. apimon saw none of it yet: only webhooks tell."""
    customer = stripe.customer(shop, card="pm_card_chargeCustomerFail")
    sub = shop.subscribe(
        shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer
    )
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get()
    with pytest.raises(Crash):  # apimon's own payment attempt never happens
        invoice_push(invoice_id=invoice.pk, hook=crash_at("paying"))
    stripe.emulator.run_due()  # Stripe's automatic collection: declined
    update_card(stripe, sub)
    stripe.emulator.advance(86_400 + 60)  # the retry a day later: paid
    failed = events_of(
        stripe_webhook_capture, stripe.emulator, "invoice.payment_failed"
    )
    paid = events_of(stripe_webhook_capture, stripe.emulator, "invoice.paid")
    assert len(failed) == 1 and len(paid) == 1
    assert failed[0]["created"] < paid[0]["created"]
    return sub, invoice, failed[0], paid[0]


def test_in_order_the_failure_holds_and_the_payment_releases(collected_by_stripe):
    sub, invoice, failed, paid = collected_by_stripe

    assert handle(failed)
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ON_HOLD

    assert handle(paid)
    sub.refresh_from_db()
    invoice.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.amount_paid_minor == 2500
    assert invoice.last_event_created == paid["created"]


def test_out_of_order_an_old_failure_never_undoes_the_payment(collected_by_stripe):
    sub, invoice, failed, paid = collected_by_stripe

    assert handle(paid)
    assert not handle(failed)

    sub.refresh_from_db()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert sub.state == SubscriptionState.ACTIVE
    # Only its start: no payment failure, no recovery.
    assert list(sub.events.values_list("kind", flat=True)) == ["created", "activated"]


def test_a_replayed_event_changes_nothing_the_second_time(collected_by_stripe):
    sub, _invoice, failed, paid = collected_by_stripe

    handle(failed)
    handle(failed)
    handle(paid)
    assert not handle(paid)

    kinds = list(
        SubscriptionEvent.objects.filter(subscription=sub)
        .order_by("pk")
        .values_list("kind", flat=True)
    )
    assert kinds == ["created", "activated", "payment_failed", "payment_recovered"]


def test_an_older_finalized_event_does_not_reopen_a_paid_invoice(
    shop, stripe, stripe_webhook_capture
):
    customer = stripe.customer(shop)
    shop.subscribe(shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = invoice_push(invoice_id=Invoice.objects.get().pk)
    [finalized] = events_of(
        stripe_webhook_capture, stripe.emulator, "invoice.finalized"
    )
    [paid] = events_of(stripe_webhook_capture, stripe.emulator, "invoice.paid")

    handle(paid)
    handle(finalized)

    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.hosted_invoice_url


def test_an_event_from_another_account_is_ignored(collected_by_stripe):
    sub, _invoice, failed, _paid = collected_by_stripe
    forged = {**failed, "account": "acct_someone_else"}

    assert not handle(forged)
    assert not handle({**failed, "account": None})  # "the platform's own"

    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE


def test_an_event_links_an_invoice_whose_push_crashed_before_saving_its_id(
    shop, stripe, stripe_webhook_capture
):
    customer = stripe.customer(shop)
    shop.subscribe(shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get()
    with pytest.raises(Crash):
        invoice_push(invoice_id=invoice.pk, hook=crash_at("created"))
    # Stripe finalizes and collects the draft itself (e.g. someone in the
    # Dashboard), and tells apimon.
    client = sc.get_client()
    [remote] = client.v1.invoices.list(
        {"customer": customer.stripe_customer_id},
        sc.request_options(account=stripe.account),
    ).data
    client.v1.invoices.pay(
        remote.id, options=sc.request_options(account=stripe.account)
    )
    [paid] = events_of(stripe_webhook_capture, stripe.emulator, "invoice.paid")

    assert handle(paid)

    invoice.refresh_from_db()
    assert invoice.stripe_invoice_id == remote.id
    assert invoice.status == InvoiceStatus.PAID
    # And a later push does not make a second invoice.
    invoice_push(invoice_id=invoice.pk)
    assert (
        len(
            client.v1.invoices.list(
                {"customer": customer.stripe_customer_id},
                sc.request_options(account=stripe.account),
            ).data
        )
        == 1
    )


# -- through apimon's webhook endpoint -------------------------------------------------


def test_end_to_end_through_the_endpoint_stripes_retry_reactivates(
    shop, stripe, stripe_webhooks, django_capture_on_commit_callbacks
):
    """Stripe collects on its own: the first automatic attempt is declined (ON_HOLD,
    by webhook), the card is updated on Stripe, the retry a day later succeeds
    (ACTIVE, by webhook). Each event arrives signed at /billing/stripe/webhook/."""
    customer = stripe.customer(shop, card="pm_card_chargeCustomerFail")
    sub = shop.subscribe(
        shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer
    )
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get()
    with pytest.raises(Crash):
        invoice_push(invoice_id=invoice.pk, hook=crash_at("paying"))
    stripe.emulator.run_due()

    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhooks.deliver()

    assert ("invoice.payment_failed", 200) in stripe_webhooks.responses
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ON_HOLD

    update_card(stripe, sub)
    stripe.emulator.advance(86_400 + 60)
    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhooks.deliver()

    sub.refresh_from_db()
    invoice.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE
    assert invoice.status == InvoiceStatus.PAID
    # Delivered again (Stripe delivers at least once): acknowledged, nothing changes.
    from billing.models import WebhookEvent

    paid = WebhookEvent.objects.get(type="invoice.paid")
    response = stripe_webhooks.client.post(
        "/billing/stripe/webhook/",
        data=json.dumps(paid.payload),
        content_type="application/json",
        headers={"Stripe-Signature": _sign(json.dumps(paid.payload).encode())},
    )
    assert response.content == b"duplicate"
    kinds = list(sub.events.order_by("pk").values_list("kind", flat=True))
    assert kinds == ["created", "activated", "payment_failed", "payment_recovered"]


def test_a_forged_invoice_event_is_refused_and_changes_nothing(
    client, collected_by_stripe
):
    sub, invoice, _failed, paid = collected_by_stripe
    body = json.dumps(paid).encode()
    forged = _sign(body, secret="whsec_not_the_real_secret")

    response = client.post(
        "/billing/stripe/webhook/",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": forged},
    )

    assert response.status_code == 400
    invoice.refresh_from_db()
    sub.refresh_from_db()
    assert invoice.status == InvoiceStatus.OPEN
    assert sub.state == SubscriptionState.ACTIVE
    from billing.models import WebhookEvent

    assert not WebhookEvent.objects.exists()


def _sign(body: bytes, *, secret: str | None = None) -> str:
    import hashlib
    import hmac
    import time

    from django.conf import settings

    timestamp = int(time.time())
    key = (secret or settings.STRIPE_WEBHOOK_SECRET).encode()
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@pytest.mark.parametrize("local_id", ["²", "9" * 30, "-1", "x"])
def test_an_invoice_event_naming_no_usable_local_id_changes_nothing(
    shop, stripe, local_id
):
    """The metadata's apimon_invoice_id is read only as a plain row id ("²" is a
    digit to str.isdigit but not to int)."""
    event = {
        "id": "evt_x",
        "type": "invoice.paid",
        "account": stripe.account,
        "created": 1,
        "data": {
            "object": {
                "id": "in_unknown",
                "object": "invoice",
                "status": "paid",
                "metadata": {"apimon_invoice_id": local_id},
            }
        },
    }

    assert not handle(event)
    assert not Invoice.objects.exists()
