"""The operator's invoice admin: read-only ledger pages and the actions — push
again, void (here and on Stripe), re-rate a subscription (a correcting invoice,
never an edit)."""

from __future__ import annotations

import pytest

from apimon import stripe_client as sc
from apimon.models import User
from billing import services
from billing.engine import billing_run
from billing.models import Invoice, InvoiceStatus, StripeConnection
from billing.push import invoice_push
from store.models import SubscriptionState
from tests.billing.conftest import add_usage, flat, overage, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, world):
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    return client


def act(admin_client, action, invoices):
    return admin_client.post(
        "/admin/billing/invoice/",
        {"action": action, "_selected_action": [i.pk for i in invoices]},
        follow=True,
    )


@pytest.fixture
def open_invoice(shop, stripe):
    """Pushed and finalized, its payment declined: open on Stripe."""
    customer = stripe.customer(shop, card="pm_card_chargeCustomerFail")
    shop.subscribe(shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    return invoice_push(invoice_id=Invoice.objects.get().pk)


def test_the_admin_pages_render_and_are_read_only(admin_client, open_invoice):
    for page in (
        "/admin/billing/invoice/",
        "/admin/billing/invoice/?status__exact=open&q=ACME",
        f"/admin/billing/invoice/{open_invoice.pk}/change/",
        "/admin/billing/invoicesequence/",
    ):
        assert admin_client.get(page).status_code == 200, page
    page = admin_client.get(f"/admin/billing/invoice/{open_invoice.pk}/change/")
    assert "Flat fee" in page.content.decode()  # the lines, inline
    assert admin_client.get("/admin/billing/invoice/add/").status_code == 403
    admin_client.post(
        f"/admin/billing/invoice/{open_invoice.pk}/change/", {"total_minor": 1}
    )
    assert Invoice.objects.get(pk=open_invoice.pk).total_minor == 2500


def test_void_voids_on_stripe_and_releases_the_hold(admin_client, open_invoice, stripe):
    sub = open_invoice.subscription
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ON_HOLD

    act(admin_client, "void", [open_invoice])

    open_invoice.refresh_from_db()
    assert open_invoice.status == InvoiceStatus.VOID
    remote = sc.get_client().v1.invoices.retrieve(
        open_invoice.stripe_invoice_id,
        options=sc.request_options(account=stripe.account),
    )
    assert remote.status == "void"
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE


def test_a_paid_invoice_cannot_be_voided(admin_client, shop, stripe):
    customer = stripe.customer(shop)
    shop.subscribe(shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = invoice_push(invoice_id=Invoice.objects.get().pk)

    response = act(admin_client, "void", [invoice])

    assert "refund it in Stripe" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID


def test_repush_pushes_an_invoice_that_waited(admin_client, shop, stripe):
    customer = stripe.customer(shop)
    shop.subscribe(shop.tier(flat("25.00")), at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    StripeConnection.objects.update(billing_paused=True)
    invoice = invoice_push(invoice_id=Invoice.objects.get().pk)
    assert invoice.status == InvoiceStatus.WAITING
    StripeConnection.objects.update(billing_paused=False)

    response = act(admin_client, "repush", [invoice])

    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert "Paid" in response.content.decode()


def test_rerate_writes_a_correction_for_late_usage_and_never_edits(admin_client, shop):
    tier = shop.tier(overage("10.00", included=100, price="0.10"))
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 10), 120)
    billing_run(now=utc(2027, 2, 1, 0, 1), flush=False, enqueue_push=False)
    renewal = Invoice.objects.get(kind="renewal")
    before = list(renewal.lines.values_list("amount_minor", flat=True))
    add_usage(sub, utc(2027, 1, 20), 30)  # counted after the invoice

    response = act(admin_client, "rerate", [renewal])

    correction = Invoice.objects.get(kind="correction")
    assert correction.supersedes == renewal
    assert (correction.period_start, correction.period_end) == (
        renewal.period_start,
        renewal.period_end,
    )
    # Billed: 20 over = $2.00; now 50 over = $5.00: reverse $2.00, bill $5.00
    assert [(x.kind, x.amount_minor) for x in correction.lines.all()] == [
        ("REVERSAL", -200),
        ("OVERAGE", 500),
    ]
    assert correction.total_minor == 300
    assert correction.rating["quantity"] == 150
    assert "corrects" in response.content.decode()
    assert list(renewal.lines.values_list("amount_minor", flat=True)) == before

    # Nothing new: nothing to correct; and no late-usage line next month.
    assert services.subscription_rerate(subscription=sub).invoice is None
    billing_run(now=utc(2027, 3, 1, 0, 1), flush=False, enqueue_push=False)
    assert not Invoice.objects.filter(lines__kind="LATE_USAGE").exists()
