"""Pushing invoices to Stripe (the emulator): what Stripe holds afterwards, the
platform fee, idempotency across crashes at every step, and the currencies whose
Stripe amounts differ from ISO minor units."""

from __future__ import annotations

import pytest
from stripe import APIConnectionError

from apimon import stripe_client as sc
from apimon.payment_errors import StripeUnavailable
from billing import push
from billing.engine import billing_run
from billing.models import Invoice, InvoiceStatus, StripeConnection
from billing.services import push_sweep
from pricing.rating import usage_lines
from pricing.stripe_money import (
    NotChargeableOnStripe,
    chargeable_lines,
    from_stripe_amount,
    to_stripe_amount,
)
from tests.billing.conftest import Crash, add_usage, crash_at, flat, per_unit, utc

pytestmark = pytest.mark.django_db


def stripe_invoices(stripe, customer_id):
    client = sc.get_client()
    return [
        i.to_dict()
        for i in client.v1.invoices.list(
            {"customer": customer_id, "limit": 100},
            sc.request_options(account=stripe.account),
        ).auto_paging_iter()
    ]


def charges(stripe):
    client = sc.get_client()
    return [
        c.to_dict()
        for c in client.v1.charges.list(
            {"limit": 100}, sc.request_options(account=stripe.account)
        ).auto_paging_iter()
    ]


@pytest.fixture
def invoiced(shop, stripe):
    """A FLAT $49 subscription with its start invoice written (not pushed yet)."""
    customer = stripe.customer(shop)
    tier = shop.tier(flat("49.00"), name="Gold")
    sub = shop.subscribe(tier, at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    return Invoice.objects.get(subscription=sub)


def test_an_invoice_is_pushed_finalized_and_paid_on_the_connected_account(
    invoiced, stripe
):
    result = push.invoice_push(invoice_id=invoiced.pk)

    assert result.status == InvoiceStatus.PAID
    assert result.stripe_invoice_id.startswith("in_")
    assert result.hosted_invoice_url and result.invoice_pdf
    assert result.amount_paid_minor == 4900
    [remote] = stripe_invoices(stripe, invoiced.stripe_customer_id)
    assert remote["id"] == result.stripe_invoice_id
    assert (remote["status"], remote["total"], remote["currency"]) == (
        "paid",
        4900,
        "usd",
    )
    assert remote["collection_method"] == "charge_automatically"
    assert remote["metadata"]["apimon_invoice_id"] == str(invoiced.pk)
    assert [line["amount"] for line in remote["lines"]["data"]] == [4900]
    [charge] = charges(stripe)
    assert charge["amount"] == 4900
    # The platform's commission: 10 % of $49.00, as the application fee.
    fees = sc.get_client().v1.application_fees.list({"limit": 10}).data
    assert [f.amount for f in fees] == [490]
    assert result.lines.get().stripe_invoice_item_id.startswith("ii_")


def test_the_push_task_runs_when_the_engine_commits(
    shop, stripe, django_capture_on_commit_callbacks
):
    customer = stripe.customer(shop)
    sub = shop.subscribe(
        shop.tier(flat("10.00")), at=utc(2027, 1, 1), customer=customer
    )

    with django_capture_on_commit_callbacks(execute=True):
        billing_run(now=utc(2027, 1, 1, 0, 1), flush=False)

    assert Invoice.objects.get(subscription=sub).status == InvoiceStatus.PAID


@pytest.mark.parametrize(
    "step", ["created", "recorded", "items", "finalized", "paying"]
)
def test_a_crash_at_any_step_then_a_retry_makes_one_invoice_and_one_charge(
    invoiced, stripe, step
):
    with pytest.raises(Crash):
        push.invoice_push(invoice_id=invoiced.pk, hook=crash_at(step))

    result = push.invoice_push(invoice_id=invoiced.pk)

    assert result.status == InvoiceStatus.PAID
    remote = stripe_invoices(stripe, invoiced.stripe_customer_id)
    assert len(remote) == 1
    assert remote[0]["id"] == result.stripe_invoice_id
    assert len(remote[0]["lines"]["data"]) == 1
    assert [c["amount"] for c in charges(stripe)] == [4900]


def test_a_crash_after_stripe_created_the_invoice_reuses_it_after_the_key_expired(
    invoiced, stripe
):
    with pytest.raises(Crash):
        push.invoice_push(invoice_id=invoiced.pk, hook=crash_at("created"))
    invoiced.refresh_from_db()
    assert invoiced.stripe_invoice_id is None  # the crash lost it
    stripe.emulator.advance(25 * 3600)  # idempotency keys last 24 hours

    result = push.invoice_push(invoice_id=invoiced.pk)

    assert result.status == InvoiceStatus.PAID
    remote = stripe_invoices(stripe, invoiced.stripe_customer_id)
    assert [r["id"] for r in remote] == [result.stripe_invoice_id]
    assert [c["amount"] for c in charges(stripe)] == [4900]


def test_a_crash_after_payment_never_charges_twice(invoiced, stripe):
    with pytest.raises(Crash):
        push.invoice_push(invoice_id=invoiced.pk, hook=crash_at("paid"))
    invoiced.refresh_from_db()
    assert invoiced.status == InvoiceStatus.OPEN  # paid on Stripe, not recorded yet

    result = push.invoice_push(invoice_id=invoiced.pk)

    assert result.status == InvoiceStatus.PAID
    assert [c["amount"] for c in charges(stripe)] == [4900]


def test_network_errors_propagate_for_the_task_to_retry(invoiced, stripe, monkeypatch):
    client = sc.get_client()
    real = client.v1.invoices.finalize_invoice
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise APIConnectionError("connection reset")  # stripe-python's
        return real(*args, **kwargs)

    monkeypatch.setattr(client.v1.invoices, "finalize_invoice", flaky)

    with pytest.raises(StripeUnavailable):  # stripe-python's, translated
        push.invoice_push(invoice_id=invoiced.pk)
    assert push.invoice_push(invoice_id=invoiced.pk).status == InvoiceStatus.PAID
    assert len(stripe_invoices(stripe, invoiced.stripe_customer_id)) == 1


def test_the_push_task_retries_network_errors_and_5xx(invoiced, stripe, monkeypatch):
    from celery.exceptions import Retry

    from billing import tasks

    calls = []
    real = push.invoice_push

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StripeUnavailable("502 Bad Gateway")
        return real(**kwargs)

    monkeypatch.setattr(push, "invoice_push", flaky)

    with pytest.raises(Retry):  # scheduled again with backoff, not failed
        tasks.push_invoice.apply(args=[invoiced.pk])
    assert tasks.push_invoice.apply(args=[invoiced.pk]).get() == InvoiceStatus.PAID
    assert StripeUnavailable in tasks.push_invoice.autoretry_for


def test_a_refused_request_marks_the_invoice_push_failed(invoiced, stripe):
    Invoice.objects.filter(pk=invoiced.pk).update(stripe_customer_id="cus_unknown")

    result = push.invoice_push(invoice_id=invoiced.pk)

    assert result.status == InvoiceStatus.PUSH_FAILED
    assert "cus_unknown" in result.last_push_error


def test_a_paused_account_keeps_the_invoice_waiting_until_reconnected(
    invoiced, stripe, shop, django_capture_on_commit_callbacks
):
    StripeConnection.objects.filter(organization=shop.org).update(billing_paused=True)

    assert push.invoice_push(invoice_id=invoiced.pk).status == InvoiceStatus.WAITING
    assert stripe_invoices(stripe, invoiced.stripe_customer_id) == []
    assert push_sweep(now=utc(2027, 1, 2)) == 0

    StripeConnection.objects.filter(organization=shop.org).update(billing_paused=False)
    assert push_sweep(now=utc(2027, 1, 2)) == 1  # eager task: pushed now
    invoiced.refresh_from_db()
    assert invoiced.status == InvoiceStatus.PAID


def test_a_subscriber_without_a_card_cannot_be_pushed(shop, stripe):
    sub = shop.subscribe(shop.tier(flat("10.00")), at=utc(2027, 1, 1))
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get(subscription=sub)

    result = push.invoice_push(invoice_id=invoice.pk)

    assert result.status == InvoiceStatus.PUSH_FAILED
    assert "no Stripe customer" in result.last_push_error


# -- Stripe amounts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "iso_minor", "stripe_amount"),
    [
        ("usd", 1234, 1234),
        ("jpy", 1234, 1234),
        ("isk", 1234, 123_400),  # ISO 0 decimals; Stripe wants "00" appended
        ("ugx", 5, 500),
        ("mga", 123_400, 1234),  # ISO 2 decimals; Stripe takes whole ariary
        ("bhd", 1230, 1230),  # three decimals, last digit 0
        ("kwd", 10, 10),
    ],
)
def test_amounts_are_translated_to_stripe_units(currency, iso_minor, stripe_amount):
    assert to_stripe_amount(iso_minor, currency) == stripe_amount
    assert from_stripe_amount(stripe_amount, currency) == iso_minor


@pytest.mark.parametrize(
    ("currency", "amount"), [("bhd", 1235), ("mga", 12_345), ("iqd", 1000)]
)
def test_an_amount_stripe_cannot_charge_is_refused(currency, amount):
    with pytest.raises(NotChargeableOnStripe):
        to_stripe_amount(amount, currency)


def test_lines_are_rounded_to_what_stripe_can_charge():
    from datetime import UTC, datetime

    start, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)
    kwd = usage_lines(
        per_unit("0.0004", "kwd"), 12_345, period_start=start, period_end=end
    )
    mga = usage_lines(
        per_unit("0.013", "mga"), 12_345, period_start=start, period_end=end
    )
    # 12,345 × 0.0004 = KWD 4.938 → 4.940 (multiples of 10 fils)
    assert [x.amount_minor for x in chargeable_lines(kwd)] == [4940]
    # 12,345 × 0.013 = MGA 160.485 → 160.49 (ISO) → 160.00 (whole ariary)
    assert [x.amount_minor for x in chargeable_lines(mga)] == [16000]


def test_an_isk_invoice_reaches_stripe_with_two_decimals(shop, stripe):
    customer = stripe.customer(shop)
    sub = shop.subscribe(
        shop.tier(per_unit("0.5", currency="isk")),
        at=utc(2027, 1, 1),
        customer=customer,
    )
    add_usage(sub, utc(2027, 1, 2), 1001)  # 1,001 × ISK 0.5 = 500.5 → ISK 501
    billing_run(now=utc(2027, 2, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get()
    assert invoice.total_minor == 501

    push.invoice_push(invoice_id=invoice.pk)

    [remote] = stripe_invoices(stripe, customer.stripe_customer_id)
    assert remote["total"] == 50_100
    assert remote["currency"] == "isk"


def test_the_idempotency_keys_are_derived_from_the_row(invoiced):
    created = int(invoiced.created_at.timestamp() * 1_000_000)
    assert push.key(invoiced, "finalize") == f"invoice:{invoiced.pk}:{created}:finalize"
    assert push.key(invoiced, "pay", 2).endswith(":pay:2")


def test_stripe_numbers_the_invoice_with_apimons_number(invoiced, stripe):
    result = push.invoice_push(invoice_id=invoiced.pk)

    [remote] = stripe_invoices(stripe, invoiced.stripe_customer_id)
    assert remote["number"] == invoiced.number == "ACME-000001"
    assert result.stripe_number == invoiced.number
    # Stripe's own page and PDF show the same number.
    from stripe_emulator import testing

    emulator = stripe.emulator
    _status, _type, page = testing.get_page(emulator, result.hosted_invoice_url)
    assert "ACME-000001" in page


def test_a_number_stripe_already_has_falls_back_to_stripes_number(invoiced, stripe):
    # An invoice made outside apimon (or before a database reset) took the number.
    client = sc.get_client()
    client.v1.invoices.create(
        {"customer": invoiced.stripe_customer_id, "number": invoiced.number},
        sc.request_options(account=stripe.account),
    )

    result = push.invoice_push(invoice_id=invoiced.pk)

    assert result.status == InvoiceStatus.PAID
    assert result.stripe_number and result.stripe_number != invoiced.number
    assert result.number == invoiced.number  # the ledger keeps its own


def test_numbers_use_the_whole_slug_so_they_stay_unique_per_stripe_account(db):
    from apimon.services import organization_create
    from billing.engine import _number
    from billing.models import InvoiceKind
    from tests.conftest import make_user

    user = make_user("long@example.test")
    names = [
        "Worldwide Weather Services International A",
        "Worldwide Weather Services International B",
    ]
    orgs = [organization_create(user=user, name=name) for name in names]
    invoices = [
        Invoice(organization=org, kind=kind)
        for org in orgs
        for kind in (InvoiceKind.PLATFORM, InvoiceKind.RENEWAL)
    ]
    _number(invoices)
    numbers = [i.number for i in invoices]
    assert numbers == [
        "WORLDWIDE-WEATHER-SERVICES-INTERNATIONAL-A-P000001",
        "WORLDWIDE-WEATHER-SERVICES-INTERNATIONAL-A-000001",
        "WORLDWIDE-WEATHER-SERVICES-INTERNATIONAL-B-P000001",
        "WORLDWIDE-WEATHER-SERVICES-INTERNATIONAL-B-000001",
    ]


def test_a_stripe_outage_is_shown_on_the_invoice_while_the_push_retries(
    invoiced, stripe, settings, client
):
    """Stripe answering 500 (the emulator's injected fault): the push raises for the
    task to retry, and the operator sees why the invoice waits in the admin's list;
    once Stripe is back the push completes and the note is gone."""
    from werkzeug.test import Client

    from apimon.models import User

    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    sc.reset_for_tests()
    control = Client(stripe.emulator.app)
    control.post("/_emulator/faults", data={"mode": "error", "paths": "/v1/invoices"})

    with pytest.raises(StripeUnavailable):
        push.invoice_push(invoice_id=invoiced.pk)
    invoiced.refresh_from_db()
    assert invoiced.status == InvoiceStatus.DRAFT
    assert invoiced.last_push_error.startswith("Stripe unavailable, retrying:")
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    listing = client.get("/admin/billing/invoice/?status__exact=draft").content.decode()
    assert invoiced.number in listing and "Stripe unavailable, retrying" in listing

    control.post("/_emulator/faults", data={"mode": "off"})
    assert push.invoice_push(invoice_id=invoiced.pk).status == InvoiceStatus.PAID
    invoiced.refresh_from_db()
    assert invoiced.last_push_error == ""
    assert len(charges(stripe)) == 1
