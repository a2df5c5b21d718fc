"""Platform billing: organizations on a paid platform plan are invoiced monthly, in
advance, by the same engine, on the platform's own Stripe account."""

from __future__ import annotations

import pytest
from django.utils.module_loading import import_string

from apimon import stripe_client as sc
from apimon.models import PlatformPlan
from billing import webhooks
from billing.engine import platform_billing_run
from billing.models import (
    Invoice,
    InvoiceStatus,
    PlatformSubscription,
    PlatformSubscriptionStatus,
)
from billing.push import invoice_push
from billing.services import billing_tick
from tests.billing.conftest import utc

pytestmark = pytest.mark.django_db


def platform_customer(card="pm_card_visa"):
    """A customer on the platform's own account (no Stripe-Account header)."""
    client = sc.get_client()
    customer = client.v1.customers.create({"email": "billing@acme.test"})
    pm = client.v1.payment_methods.attach(card, {"customer": customer.id})
    client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": pm.id}}
    )
    return customer.id, pm.id


def pro_subscription(org, *, card: str, started, **extra) -> PlatformSubscription:
    """`org` on a $99.00 Pro plan paid with `card`, its first month due at
    `started`."""
    plan = PlatformPlan.objects.create(
        name="Pro",
        slug="pro-test",
        monthly_price_minor=9900,
        currency="usd",
        allows_monetization=True,
    )
    return plan_subscription(org, plan, card=card, started=started, **extra)


def plan_subscription(
    org, plan, *, card: str, started, **extra
) -> PlatformSubscription:
    """`org` on `plan` paid with `card` (a customer on the platform's account),
    anchored at `started`; its next invoice at `started` unless given."""
    customer_id, pm_id = platform_customer(card=card)
    org.plan = plan
    org.save()
    return PlatformSubscription.objects.create(
        organization=org,
        plan=plan,
        status=PlatformSubscriptionStatus.ACTIVE,
        customer_id=customer_id,
        payment_method_id=pm_id,
        billing_name="Acme Inc.",
        address_line1="1 Main St",
        city="Springfield",
        postal_code="12345",
        country="US",
        email="billing@acme.test",
        phone="+15555550100",
        started_at=started,
        **{"next_invoice_at": started, **extra},
    )


@pytest.fixture
def on_pro(world, stripe_emulator):
    return pro_subscription(world.org, card="pm_card_visa", started=utc(2027, 1, 31, 9))


def test_the_plan_is_invoiced_monthly_in_advance(on_pro):
    result = platform_billing_run(now=utc(2027, 1, 31, 9, 1), enqueue_push=False)

    assert result.invoices == 1
    invoice = Invoice.objects.get()
    assert (invoice.kind, invoice.total_minor, invoice.currency) == (
        "platform",
        9900,
        "usd",
    )
    assert invoice.application_fee_minor == 0
    assert invoice.number == "ACME-P000001"
    assert invoice.platform_subscription == on_pro
    assert (invoice.period_start, invoice.period_end) == (
        utc(2027, 1, 31, 9),
        utc(2027, 2, 28, 9),
    )
    [line] = invoice.lines.all()
    assert line.description == "apimon Pro plan, 31 Jan 2027 – 28 Feb 2027"

    assert platform_billing_run(now=utc(2027, 2, 1), enqueue_push=False).invoices == 0
    platform_billing_run(now=utc(2027, 3, 31, 9, 1), enqueue_push=False)

    periods = list(
        Invoice.objects.order_by("pk").values_list("period_start", "period_end")
    )
    assert periods == [
        (utc(2027, 1, 31, 9), utc(2027, 2, 28, 9)),
        (utc(2027, 2, 28, 9), utc(2027, 3, 31, 9)),
        (utc(2027, 3, 31, 9), utc(2027, 4, 30, 9)),
    ]
    on_pro.refresh_from_db()
    assert on_pro.next_invoice_at == utc(2027, 4, 30, 9)


def test_it_is_paid_on_the_platforms_own_account(on_pro, stripe_emulator):
    platform_billing_run(now=utc(2027, 1, 31, 9, 1), enqueue_push=False)

    invoice = invoice_push(invoice_id=Invoice.objects.get().pk)

    assert invoice.status == InvoiceStatus.PAID
    remote = sc.get_client().v1.invoices.retrieve(invoice.stripe_invoice_id)
    assert (remote.status, remote.total, remote.customer) == (
        "paid",
        9900,
        on_pro.customer_id,
    )


def test_the_minute_job_includes_it_and_a_webhook_without_account_applies(
    on_pro, stripe_emulator, stripe_webhook_capture, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        tick = billing_tick(now=utc(2027, 1, 31, 9, 1))
    assert tick.run.invoices == 1
    invoice = Invoice.objects.get()
    assert invoice.status == InvoiceStatus.PAID
    stripe_emulator.deliver_pending()
    [paid] = [e for e in stripe_webhook_capture.events() if e["type"] == "invoice.paid"]
    assert paid.get("account") is None
    Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.OPEN)

    for path in webhooks.HANDLERS["invoice.paid"]:
        import_string(path)(paid)

    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_cancelled_or_free_plans_are_not_invoiced(on_pro):
    on_pro.status = PlatformSubscriptionStatus.CANCELLED
    on_pro.save()

    assert platform_billing_run(now=utc(2027, 2, 1), enqueue_push=False).invoices == 0
    on_pro.refresh_from_db()
    assert on_pro.next_invoice_at is None


def test_twice_at_once_writes_one_invoice(on_pro):
    platform_billing_run(now=utc(2027, 1, 31, 9, 1), enqueue_push=False)
    PlatformSubscription.objects.filter(pk=on_pro.pk).update(
        next_invoice_at=utc(2027, 1, 31, 9)  # a second job that read the old row
    )

    second = platform_billing_run(now=utc(2027, 1, 31, 9, 2), enqueue_push=False)

    assert second.invoices == 0
    assert Invoice.objects.count() == 1
