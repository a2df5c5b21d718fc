"""Dunning end to end with the emulator's declining card (4000 0000 0000 0341,
`pm_card_chargeCustomerFail`): a failed payment puts the subscription ON_HOLD for
the organization's grace period, the dunning job then BLOCKS it, and a successful
payment after a card update makes it ACTIVE again."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from apimon import stripe_client as sc
from billing.engine import billing_run
from billing.models import Invoice, InvoiceStatus
from billing.push import invoice_push, open_invoices_use_card
from billing.services import (
    dunning_run,
    subscription_retry_payment,
)
from store.models import Subscription, SubscriptionEvent, SubscriptionState
from tests.billing.conftest import flat, utc

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


@pytest.fixture
def failing(shop, stripe, django_capture_on_commit_callbacks):
    """A $25 flat subscription whose card attaches but declines every charge; its
    start invoice written and pushed."""
    customer = stripe.customer(shop, card="pm_card_chargeCustomerFail")
    sub = shop.subscribe(
        shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer
    )
    with django_capture_on_commit_callbacks(execute=True):
        billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
        invoice_push(invoice_id=Invoice.objects.get().pk)
    sub.refresh_from_db()
    return sub


def update_card(stripe, sub, card="pm_card_visa"):
    """What the store's "update card" leaves behind before apimon pays: a new card
    attached to the customer, the subscription's card, its open invoices naming it
    (so Stripe's own retry charges it too)."""
    client = sc.get_client()
    options = sc.request_options(account=stripe.account)
    pm = client.v1.payment_methods.attach(
        card, {"customer": sub.customer.stripe_customer_id}, options
    )
    Subscription.objects.filter(pk=sub.pk).update(
        payment_method_id=pm.id, card_brand=pm.card.brand, card_last4=pm.card.last4
    )
    sub.refresh_from_db()
    open_invoices_use_card(subscription_id=sub.pk, payment_method=pm.id)
    return pm.id


def test_a_declined_payment_puts_the_subscription_on_hold_with_a_grace_period(
    failing,
):
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.OPEN
    assert invoice.payment_failed_at is not None
    assert invoice.payment_failures == 1
    assert "declined" in invoice.last_payment_error.lower()
    assert failing.state == SubscriptionState.ON_HOLD
    assert failing.grace_until - failing.on_hold_since == 3 * DAY  # the default
    event = SubscriptionEvent.objects.get(subscription=failing, kind="payment_failed")
    assert (event.from_state, event.to_state) == ("ACTIVE", "ON_HOLD")
    assert [m.to for m in mail.outbox] == [[failing.subscriber.email]]
    assert "Payment failed" in mail.outbox[0].subject


def test_the_grace_period_is_the_organizations_setting(
    shop, stripe, django_capture_on_commit_callbacks
):
    shop.org.dunning_grace_days = 7
    shop.org.save()
    customer = stripe.customer(shop, card="pm_card_chargeCustomerFail")
    sub = shop.subscribe(
        shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer
    )
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice_push(invoice_id=Invoice.objects.get().pk)

    sub.refresh_from_db()
    assert sub.grace_until - sub.on_hold_since == 7 * DAY


def test_after_the_grace_period_the_dunning_job_blocks_and_a_new_card_unblocks(
    failing, stripe, django_capture_on_commit_callbacks
):
    assert dunning_run(now=failing.grace_until - timedelta(seconds=1)) == 0

    with django_capture_on_commit_callbacks(execute=True):
        assert dunning_run(now=failing.grace_until) == 1
    assert dunning_run(now=failing.grace_until) == 0  # once
    failing.refresh_from_db()
    assert failing.state == SubscriptionState.BLOCKED
    assert "grace period" in failing.blocked_reason
    assert "blocked" in mail.outbox[-1].subject

    update_card(stripe, failing)
    with django_capture_on_commit_callbacks(execute=True):
        assert subscription_retry_payment(subscription=failing) == 1

    failing.refresh_from_db()
    assert failing.state == SubscriptionState.ACTIVE
    assert failing.blocked_reason == ""
    assert failing.grace_until is None
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.PAID
    kinds = list(
        SubscriptionEvent.objects.filter(subscription=failing)
        .order_by("pk")
        .values_list("kind", flat=True)
    )
    assert kinds == [
        "created",
        "activated",
        "payment_failed",
        "blocked_for_nonpayment",
        "payment_recovered",
    ]
    # The start invoice held this period's fee: nothing more to charge.
    assert Invoice.objects.count() == 1


def test_retrying_with_the_same_failing_card_keeps_it_on_hold(failing, stripe):
    assert subscription_retry_payment(subscription=failing) == 0

    failing.refresh_from_db()
    assert failing.state == SubscriptionState.ON_HOLD
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.OPEN
    assert invoice.pay_attempts == 2
    assert invoice.payment_failures == 2


def test_a_publisher_block_is_not_lifted_by_a_payment(failing, stripe):
    failing.state = SubscriptionState.BLOCKED
    failing.blocked_by_publisher = True
    failing.blocked_reason = "Abuse"
    failing.save()
    update_card(stripe, failing)

    subscription_retry_payment(subscription=failing)

    failing.refresh_from_db()
    assert failing.state == SubscriptionState.BLOCKED
    assert failing.blocked_reason == "Abuse"
    assert Invoice.objects.get().status == InvoiceStatus.PAID


def test_a_blocked_subscription_is_charged_no_new_fee_and_pays_the_rest_on_recovery(
    shop, stripe, django_capture_on_commit_callbacks
):
    # Real time here: the recovery happens "now", inside the second period.
    now = timezone.now().replace(microsecond=0)
    start = now - timedelta(days=40)
    customer = stripe.customer(shop, card="pm_card_chargeCustomerFail")
    sub = shop.subscribe(shop.tier(flat("25.00")), at=start, customer=customer)
    with django_capture_on_commit_callbacks(execute=True):
        billing_run(now=start + timedelta(minutes=1), flush=False)
    sub.refresh_from_db()
    dunning_run(now=sub.grace_until)

    with django_capture_on_commit_callbacks(execute=True):
        billing_run(now=now, flush=False)

    sub.refresh_from_db()
    assert sub.current_period_start <= now < sub.current_period_end
    assert not Invoice.objects.filter(kind="renewal").exists()  # no fee while blocked

    update_card(stripe, sub)
    with django_capture_on_commit_callbacks(execute=True):
        assert subscription_retry_payment(subscription=sub) == 1

    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE
    rest = Invoice.objects.get(kind="proration")
    recovered = SubscriptionEvent.objects.get(
        subscription=sub, kind="payment_recovered"
    )
    assert rest.period_start == recovered.at
    period = sub.current_period_end - sub.current_period_start
    left = sub.current_period_end - recovered.at
    # $25.00 × the exact share of the period left, rounded half up to the cent
    assert rest.total_minor == int(
        Decimal(2500) * Decimal(left / period) + Decimal("0.5")
    )
    assert rest.status == InvoiceStatus.PAID


def test_a_blocked_email_that_cannot_be_sent_is_recorded_and_the_block_stands(
    failing, django_capture_on_commit_callbacks
):
    from apimon.models import JobFailure, User

    # An address no mail server takes, written past the forms.
    User.objects.filter(pk=failing.subscriber_id).update(email="sub\n@acme.test")
    sent_before = len(mail.outbox)

    with django_capture_on_commit_callbacks(execute=True):
        assert dunning_run(now=failing.grace_until) == 1

    failing.refresh_from_db()
    assert failing.state == SubscriptionState.BLOCKED
    assert len(mail.outbox) == sent_before
    failure = JobFailure.objects.get()
    assert (failure.job, failure.organization_id) == (
        "billing emails",
        failing.organization_id,
    )
    assert failure.object_ref == f"blocked email, subscription {failing.pk}"
