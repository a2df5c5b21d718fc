"""The whole demo (`apimon.demo.seed`, `manage.py seed_demo`): two organizations with
60 days of usage and the invoices the real billing engine made of it, held by the
Stripe emulator too; and a second run that changes nothing."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from django.apps import apps
from django.db.models import Sum
from django.utils import timezone

from apimon import demo
from apimon import stripe_client as sc
from billing import engine
from billing.models import (
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    PlatformSubscription,
    PlatformSubscriptionStatus,
    StripeConnection,
)
from gateway.models import UsageRecord
from pricing.rating import (
    PricingModel,
    fixed_fee_lines,
    total_minor,
    usage_lines,
)
from pricing.stripe_money import to_stripe_amount
from publisher.demo import CATALOGS
from publisher.models import TierVersion
from store.models import Subscription, SubscriptionState
from stripe_emulator import testing

pytestmark = pytest.mark.django_db


def test_the_demo_tells_both_stories_and_a_second_run_changes_nothing(
    stripe_emulator,
):
    # One seed for every check (seeding takes seconds); each check names what it
    # looks at.
    now = timezone.now()
    seeded = (now, demo.seed(now=now), stripe_emulator)
    each_organization_sells_on_a_paid_plan_through_its_own_stripe_account(seeded)
    subscribers_hold_applications_keys_and_subscriptions_in_every_state(seeded)
    sixty_days_of_usage_for_every_served_subscription(seeded)
    every_invoice_is_the_rating_of_its_periods_usage(seeded)
    invoices_are_paid_when_they_were_written_except_the_declined_one(seeded)
    the_emulator_holds_every_invoice_with_its_hosted_page(seeded)
    a_second_run_changes_nothing(seeded)


def demo_orgs(result):
    return [r.organization for r in result.organizations]


def each_organization_sells_on_a_paid_plan_through_its_own_stripe_account(seeded):
    _now, result, _emulator = seeded
    assert [o.slug for o in demo_orgs(result)] == ["acme", "globex"]
    accounts = set()
    for org in demo_orgs(result):
        org.refresh_from_db()
        assert org.plan.allows_monetization and not org.plan.is_trial
        platform = PlatformSubscription.objects.get(organization=org)
        assert platform.status == PlatformSubscriptionStatus.ACTIVE
        connection = StripeConnection.objects.get(organization=org)
        assert connection.is_connected and connection.monetization_enabled
        assert connection.charges_enabled
        accounts.add(connection.account_id)
        # The Stripe account has the organization's catalog.
        products = sc.get_client().v1.products.list(
            {"limit": 100}, sc.request_options(account=connection.account_id)
        )
        assert len(products.data) == len(CATALOGS[org.slug].apis)
    assert len(accounts) == 2


def subscribers_hold_applications_keys_and_subscriptions_in_every_state(seeded):
    _now, result, _emulator = seeded
    subs = Subscription.objects.filter(organization__in=demo_orgs(result))
    assert result.subscriptions == subs.count() >= 12
    states = {s.state for s in subs}
    assert states == {
        SubscriptionState.ACTIVE,
        SubscriptionState.ON_HOLD,
        SubscriptionState.CANCELLED,
        SubscriptionState.PENDING_PAYMENT,
    }
    for sub in subs:
        assert sub.application.keys.exists(), sub
        assert sub.subscriber.memberships.filter(organization=sub.organization)
    assert result.api_key.startswith("am_")
    readme = subs.get(application__name="Weather dashboard")
    assert (readme.api.context, readme.tier.name) == ("weather", "Free")
    # A paid tier with a trial: trialled, then re-anchored at the trial's end.
    launch = subs.get(tier__name="Launch")
    assert launch.state == SubscriptionState.ACTIVE
    assert launch.started_at == launch.created_at + timedelta(days=14)


def sixty_days_of_usage_for_every_served_subscription(seeded):
    now, result, _emulator = seeded
    rows = UsageRecord.objects.filter(organization__in=demo_orgs(result))
    assert result.usage_rows == rows.count()
    first = rows.order_by("hour").first().hour
    assert now - timedelta(days=61) < first < now - timedelta(days=58)
    assert rows.order_by("hour").last().hour > now - timedelta(hours=2)
    for sub in Subscription.objects.filter(organization__in=demo_orgs(result)):
        counted = rows.filter(subscription=sub)
        if sub.state == SubscriptionState.PENDING_PAYMENT:
            assert not counted.exists()
        else:
            # From its start (a trial's end re-anchors it on the same hours).
            assert counted.order_by("hour").first().hour == sub.created_at, sub


def _expected_total(invoice: Invoice) -> int:
    """Rate the invoice's period from the UsageRecords, with pricing.rating: the
    requests, then each meter the version prices."""
    sub = invoice.subscription
    pricing = TierVersion.objects.get(pk=invoice.tier_version_id).pricing()
    if invoice.kind == InvoiceKind.START:
        lines = fixed_fee_lines(
            pricing, period_start=invoice.period_start, period_end=invoice.period_end
        )
        return total_minor(lines)
    version = TierVersion.objects.get(pk=invoice.tier_version_id)

    def used(meter: str) -> int:
        return (
            UsageRecord.objects.filter(
                subscription=sub,
                meter=meter,
                hour__gte=invoice.period_start,
                hour__lt=invoice.period_end,
            ).aggregate(n=Sum("count"))["n"]
            or 0
        )

    lines = usage_lines(pricing, used("requests"))  # the requests' row, with the fee
    for price in version.meter_prices.exclude(meter="requests"):
        lines += usage_lines(price.pricing(version.currency), used(price.meter))
    if invoice.kind == InvoiceKind.RENEWAL and pricing.model in (
        PricingModel.FLAT,
        PricingModel.FLAT_PLUS_OVERAGE,
    ):
        next_end = invoice.period_end + (invoice.period_end - invoice.period_start)
        lines += fixed_fee_lines(
            pricing, period_start=invoice.period_end, period_end=next_end
        )
    return total_minor(lines)


def every_invoice_is_the_rating_of_its_periods_usage(seeded):
    now, result, _emulator = seeded
    invoices = Invoice.objects.filter(
        organization__in=demo_orgs(result), kind__in=["start", "renewal", "final"]
    ).select_related("subscription")
    assert invoices.count() >= 20
    by_model = defaultdict(int)
    for invoice in invoices:
        assert invoice.total_minor == _expected_total(invoice), invoice
        by_model[invoice.subscription.tier_version.pricing_model] += 1
    # Tokens (per 1,000, graduated) and credits (weighted operations, in yen) are
    # invoiced in their own words.
    text = invoices.filter(subscription__api__context="text", kind="renewal")
    tokens = InvoiceLine.objects.filter(invoice__in=text, meter="tokens")
    assert tokens.exists() and tokens.first().description.startswith("Tokens: ")
    credits = invoices.filter(subscription__api__context="fx", lines__meter="credits")
    assert credits.exists() and credits.first().currency == "jpy"
    # Every paid pricing model has been invoiced, in three currencies.
    assert set(by_model) == set(PricingModel) - {PricingModel.FREE}
    assert set(invoices.values_list("currency", flat=True)) == {"usd", "eur", "jpy"}
    # The engine is caught up: nothing is due.
    assert not engine.due_subscriptions(now=now).exists()
    for sub in Subscription.objects.filter(tier__billing_plan="FREE"):
        assert not sub.invoices.exists()


def invoices_are_paid_when_they_were_written_except_the_declined_one(seeded):
    _now, result, _emulator = seeded
    invoices = Invoice.objects.filter(organization__in=demo_orgs(result))
    unpaid = invoices.exclude(status=InvoiceStatus.PAID)
    (declined,) = unpaid
    assert declined.status == InvoiceStatus.OPEN and declined.payment_failures == 1
    assert declined.subscription.state == SubscriptionState.ON_HOLD
    for invoice in invoices.filter(status=InvoiceStatus.PAID):
        # The Stripe emulator's clock followed the story: paid when written.
        assert abs(invoice.paid_at - invoice.created_at) < timedelta(minutes=1)
    months = {i.paid_at.strftime("%Y-%m") for i in invoices.exclude(paid_at=None)}
    assert len(months) >= 2  # the revenue page has a history
    for org in demo_orgs(result):
        platform = invoices.filter(organization=org, kind=InvoiceKind.PLATFORM)
        assert platform.count() >= 2
        assert set(platform.values_list("status", flat=True)) == {InvoiceStatus.PAID}


def the_emulator_holds_every_invoice_with_its_hosted_page(seeded):
    _now, result, emulator = seeded
    invoices = Invoice.objects.filter(organization__in=demo_orgs(result))
    for invoice in invoices:
        account = (
            None
            if invoice.kind == InvoiceKind.PLATFORM
            else (invoice.stripe_account_id)
        )
        stripe_invoice = sc.get_client().v1.invoices.retrieve(
            invoice.stripe_invoice_id, options=sc.request_options(account=account)
        )
        assert stripe_invoice.total == to_stripe_amount(
            invoice.total_minor, invoice.currency
        )
        assert stripe_invoice.status == invoice.status
    sample = invoices.filter(kind=InvoiceKind.RENEWAL).last()
    status, _type, page = testing.get_page(emulator, sample.hosted_invoice_url)
    assert status == 200 and sample.subscription.subscriber.email in page
    status, content_type, pdf = testing.get_bytes(emulator, sample.invoice_pdf)
    assert (status, content_type) == (200, "application/pdf")
    assert pdf.startswith(b"%PDF")


def _snapshot() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label
        in {"apimon", "publisher", "store", "billing", "gateway", "account"}
    }


def a_second_run_changes_nothing(seeded):
    _now, first, emulator = seeded
    before = _snapshot()
    objects = emulator.store._conn.execute("SELECT COUNT(*) FROM objects").fetchone()
    usage = UsageRecord.objects.aggregate(n=Sum("count"))["n"]
    again = demo.seed()
    assert _snapshot() == before
    assert (
        emulator.store._conn.execute("SELECT COUNT(*) FROM objects").fetchone()
        == objects
    )
    assert UsageRecord.objects.aggregate(n=Sum("count"))["n"] == usage
    assert [r.logins for r in again.organizations] == [
        r.logins for r in first.organizations
    ]
    assert (again.api_key, again.subscriptions, again.history) == ("", 0, "")
