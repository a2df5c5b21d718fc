"""An organization's own platform plan payment fails (the emulator's declining card
4000 0000 0000 0341, `pm_card_chargeCustomerFail`, on the platform's own account):
the plan is past due, the owners get an email and a notice with the way to a new
card; a later payment clears it; unpaid past the grace period, the organization
goes back to the trial plan (docs/billing.md, "Platform plan payments")."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.module_loading import import_string

from apimon import stripe_client as sc
from apimon.celery import BEAT_SCHEDULE
from billing import tasks, webhooks
from billing.engine import platform_billing_run
from billing.models import (
    Invoice,
    InvoiceStatus,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    WebhookEvent,
)
from billing.push import invoice_push
from billing.services import platform_dunning_run
from stripe_emulator import testing
from tests.billing.conftest import Crash, crash_at, path_of
from tests.billing.test_platform_billing import pro_subscription
from tests.billing.test_platform_plan import DETAILS
from tests.billing.test_push_webhooks import _sign

pytestmark = pytest.mark.django_db

GRACE = timedelta(days=settings.PLATFORM_PLAN_GRACE_DAYS)


def handle(event):
    return any(import_string(p)(event) for p in webhooks.HANDLERS[event["type"]])


@pytest.fixture
def pro(world, stripe_emulator):
    """world.org on a $99.00 Pro plan whose saved card declines every charge; its
    first month is due now."""
    started = timezone.now().replace(microsecond=0) - timedelta(minutes=1)
    return pro_subscription(
        world.org,
        card="pm_card_chargeCustomerFail",
        started=started,
        card_brand="visa",
        card_last4="0341",
    )


@pytest.fixture
def past_due(pro, django_capture_on_commit_callbacks):
    """The first month invoiced and pushed: apimon's payment attempt is declined."""
    with django_capture_on_commit_callbacks(execute=True):
        platform_billing_run(now=timezone.now(), enqueue_push=False)
        invoice_push(invoice_id=Invoice.objects.get().pk)
    pro.refresh_from_db()
    return pro


def day(value) -> str:
    return date_format(value, "j M Y")


def update_card_on_stripe(sub, card="pm_card_visa"):
    """A new default card on the platform's customer (as the Dashboard would)."""
    client = sc.get_client()
    pm = client.v1.payment_methods.attach(card, {"customer": sub.customer_id})
    client.v1.customers.update(
        sub.customer_id, {"invoice_settings": {"default_payment_method": pm.id}}
    )


def monetization_page(client, org) -> str:
    return client.get(reverse("monetization:status", args=[org.slug])).content.decode()


def dashboard(client, org) -> str:
    return client.get(reverse("publisher:dashboard", args=[org.slug])).content.decode()


# --- A failed payment ---------------------------------------------------------------


def test_a_declined_plan_payment_makes_the_plan_past_due_and_emails_the_owners(
    world, past_due
):
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.OPEN
    assert invoice.payment_failed_at is not None
    assert past_due.is_past_due
    assert past_due.past_due_since == invoice.payment_failed_at
    assert past_due.grace_until == invoice.payment_failed_at + GRACE
    # The plan itself is still in force during the grace period.
    assert past_due.status == PlatformSubscriptionStatus.ACTIVE
    world.org.refresh_from_db()
    assert world.org.plan.slug == "pro-test"

    [email] = mail.outbox
    assert email.to == ["owner@acme.test"]  # the owners only, not the publisher
    assert (
        email.subject == "Your apimon plan payment of $99.00 failed — update your card"
    )
    update_url = settings.SITE_URL + reverse(
        "monetization:upgrade", args=[world.org.slug, "pro-test"]
    )
    assert "payment of $99.00 for Acme failed on " + day(invoice.payment_failed_at) in (
        email.body
    )
    assert update_url in email.body
    assert day(past_due.grace_until) in email.body
    html = email.alternatives[0][0]
    assert f'<a href="{update_url}">Update your card</a>' in html


def test_the_owner_sees_the_notice_and_the_banner_with_the_way_to_a_new_card(
    world, past_due, owner_client
):
    invoice = Invoice.objects.get()
    update = reverse("monetization:upgrade", args=[world.org.slug, "pro-test"])

    page = monetization_page(owner_client, world.org)

    headline = (
        f"Your apimon plan payment of $99.00 failed on {day(invoice.payment_failed_at)}"
        " — update your card"
    )
    assert headline in page
    assert "Visa •••• 0341 was declined" in page
    assert day(past_due.grace_until) in page
    assert f'href="{update}">Update your card</a>' in page
    assert invoice.hosted_invoice_url and invoice.hosted_invoice_url in page
    # Elsewhere in the publisher area: a banner.
    banner = dashboard(owner_client, world.org)
    assert 'id="platform-payment-banner"' in banner
    assert (
        f"Your apimon plan payment of $99.00 failed on {day(invoice.payment_failed_at)}"
        in banner
    )
    assert f'href="{update}">update your card</a>' in banner
    # The way to a new card: the plan's own page, which says so.
    form = owner_client.get(update).content.decode()
    assert "Update your payment card" in form
    assert "at once for the failed payment of $99.00" in form


def test_publishers_and_another_organizations_owners_see_nothing(
    world, past_due, client_for
):
    publisher = client_for(world.publisher)
    assert "platform-payment" not in dashboard(publisher, world.org)
    assert "$99.00" not in dashboard(publisher, world.org)

    other = client_for(world.outsider)
    assert "platform-payment" not in dashboard(other, world.other_org)
    assert "platform-payment" not in monetization_page(other, world.other_org)
    assert "$99.00" not in monetization_page(other, world.other_org)
    # …and cannot open Acme's pages at all.
    response = other.get(reverse("monetization:status", args=[world.org.slug]))
    assert response.status_code == 404


# --- Paid after all -------------------------------------------------------------------


def test_a_new_card_through_the_plans_checkout_pays_and_clears_the_notice(
    world, past_due, owner_client, stripe_emulator, django_capture_on_commit_callbacks
):
    started = past_due.started_at
    update = reverse("monetization:upgrade", args=[world.org.slug, "pro-test"])
    checkout = owner_client.post(update, DETAILS)["Location"]
    status, back = testing.submit_card(stripe_emulator, checkout, "4242 4242 4242 4242")
    assert status in (302, 303)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.get(path_of(back), follow=True)

    assert "Your new card •••• 4242 is saved" in response.content.decode()
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.amount_paid_minor == 9900
    past_due.refresh_from_db()
    assert not past_due.is_past_due and past_due.grace_until is None
    assert past_due.card_last4 == "4242"
    assert past_due.started_at == started  # same plan, same monthly date
    assert Invoice.objects.count() == 1  # the month is not invoiced again
    assert "failed on" not in monetization_page(owner_client, world.org)
    assert "platform-payment" not in dashboard(owner_client, world.org)
    assert len(mail.outbox) == 1  # only the failure's email


def test_end_to_end_through_the_endpoint_stripes_retry_clears_past_due(
    world,
    pro,
    stripe_emulator,
    stripe_webhooks,
    owner_client,
    django_capture_on_commit_callbacks,
):
    """Stripe collects on its own: its first attempt is declined (past due, by
    webhook), the card is updated on Stripe, its retry a day later is paid (clear,
    by webhook). Each event arrives signed at /billing/stripe/webhook/."""
    platform_billing_run(now=timezone.now(), enqueue_push=False)
    invoice = Invoice.objects.get()
    with pytest.raises(Crash):  # apimon's own attempt never happens
        invoice_push(invoice_id=invoice.pk, hook=crash_at("paying"))
    stripe_emulator.run_due()  # Stripe's automatic collection: declined

    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhooks.deliver()

    assert ("invoice.payment_failed", 200) in stripe_webhooks.responses
    pro.refresh_from_db()
    assert pro.is_past_due
    assert [m.to for m in mail.outbox] == [["owner@acme.test"]]
    assert "failed on" in monetization_page(owner_client, world.org)

    update_card_on_stripe(pro)
    stripe_emulator.advance(86_400 + 60)
    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhooks.deliver()

    assert ("invoice.paid", 200) in stripe_webhooks.responses
    pro.refresh_from_db()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert not pro.is_past_due
    assert "failed on" not in monetization_page(owner_client, world.org)
    # The failure delivered again (at least once): acknowledged, nothing changes.
    failed = WebhookEvent.objects.get(type="invoice.payment_failed")
    body = json.dumps(failed.payload).encode()
    response = stripe_webhooks.client.post(
        "/billing/stripe/webhook/",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": _sign(body)},
    )
    assert response.content == b"duplicate"
    pro.refresh_from_db()
    assert not pro.is_past_due
    assert len(mail.outbox) == 1


@pytest.fixture
def platform_events(pro, stripe_emulator, stripe_webhook_capture):
    """The failure and the later payment of the plan's invoice, as Stripe sent them;
    apimon has handled neither yet."""
    platform_billing_run(now=timezone.now(), enqueue_push=False)
    invoice = Invoice.objects.get()
    with pytest.raises(Crash):
        invoice_push(invoice_id=invoice.pk, hook=crash_at("paying"))
    stripe_emulator.run_due()
    update_card_on_stripe(pro)
    stripe_emulator.advance(86_400 + 60)
    stripe_emulator.deliver_pending()
    events = stripe_webhook_capture.events()
    [failed] = [e for e in events if e["type"] == "invoice.payment_failed"]
    [paid] = [e for e in events if e["type"] == "invoice.paid"]
    assert failed.get("account") is None and paid.get("account") is None
    return invoice, failed, paid


def test_in_any_order_and_replayed_the_failure_once_and_the_payment_wins(
    pro, platform_events, django_capture_on_commit_callbacks
):
    _invoice, failed, paid = platform_events

    with django_capture_on_commit_callbacks(execute=True):
        assert handle(failed)
        handle(failed)  # replayed
    pro.refresh_from_db()
    assert pro.is_past_due
    assert len(mail.outbox) == 1  # one email, however often the event comes

    assert handle(paid)
    assert not handle(paid)
    pro.refresh_from_db()
    assert not pro.is_past_due


def test_a_failure_after_the_payment_is_ignored(
    pro, platform_events, django_capture_on_commit_callbacks
):
    invoice, failed, paid = platform_events

    with django_capture_on_commit_callbacks(execute=True):
        assert handle(paid)
        assert not handle(failed)

    pro.refresh_from_db()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert not pro.is_past_due
    assert mail.outbox == []


def test_a_platform_event_from_a_connected_account_is_ignored(pro, platform_events):
    _invoice, failed, _paid = platform_events

    assert not handle({**failed, "account": "acct_someone"})

    pro.refresh_from_db()
    assert not pro.is_past_due


# --- Unpaid past the grace period ----------------------------------------------------


def test_unpaid_after_the_grace_period_the_organization_goes_back_to_trial(
    world, past_due, owner_client, django_capture_on_commit_callbacks
):
    invoice = Invoice.objects.get()
    grace_until = past_due.grace_until
    assert platform_dunning_run(now=grace_until - timedelta(seconds=1)) == 0

    with django_capture_on_commit_callbacks(execute=True):
        assert platform_dunning_run(now=grace_until) == 1
    assert platform_dunning_run(now=grace_until) == 0  # once

    world.org.refresh_from_db()
    past_due.refresh_from_db()
    assert world.org.plan.slug == "trial"
    assert past_due.status == PlatformSubscriptionStatus.CANCELLED
    assert past_due.next_invoice_at is None  # no more plan invoices
    assert past_due.downgraded_at == grace_until
    # Nothing more is collected for a plan that ended: voided here and on Stripe.
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.VOID
    remote = sc.get_client().v1.invoices.retrieve(invoice.stripe_invoice_id)
    assert remote.status == "void"
    assert platform_billing_run(now=timezone.now() + timedelta(days=40)).invoices == 0

    email = mail.outbox[-1]
    assert email.to == ["owner@acme.test"]
    assert "Acme is back on the Trial plan" in email.subject
    assert settings.SITE_URL + reverse("monetization:plans", args=["acme"]) in (
        email.body
    )
    page = monetization_page(owner_client, world.org)
    assert f"Your apimon Pro plan ended on {day(past_due.downgraded_at)}" in page
    assert "Upgrade to monetize your APIs" in page
    assert "failed on" not in page
    banner = dashboard(owner_client, world.org)
    assert "Your apimon Pro plan ended on" in banner


def test_the_platform_dunning_job_is_a_beat_task(
    world, past_due, django_capture_on_commit_callbacks
):
    entry = BEAT_SCHEDULE["billing-platform-dunning"]
    assert entry["task"] == tasks.run_platform_dunning.name
    assert entry["schedule"] == 60.0
    # The grace period is over.
    PlatformSubscription.objects.filter(pk=past_due.pk).update(
        grace_until=timezone.now() - timedelta(minutes=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.run_platform_dunning.delay().get() == 1

    world.org.refresh_from_db()
    assert world.org.plan.slug == "trial"
    assert Invoice.objects.get().status == InvoiceStatus.VOID


def test_choosing_a_plan_again_ends_the_notice(
    world, past_due, owner_client, stripe_emulator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        platform_dunning_run(now=past_due.grace_until)
    checkout = owner_client.post(
        reverse("monetization:upgrade", args=[world.org.slug, "pro-test"]), DETAILS
    )["Location"]
    _status, back = testing.submit_card(stripe_emulator, checkout)
    owner_client.get(path_of(back))

    past_due.refresh_from_db()
    assert past_due.status == PlatformSubscriptionStatus.ACTIVE
    assert not past_due.is_past_due
    page = monetization_page(owner_client, world.org)
    assert "platform-payment-notice" not in page
    assert "platform-payment" not in dashboard(owner_client, world.org)
