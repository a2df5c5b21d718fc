"""The billing engine: what each invoice holds, for every pricing model, at every
kind of step (start, renewal, trial end, cancel, downgrade, upgrade), with amounts
computed by hand in the comments."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.engine import billing_run, settle_delay
from billing.models import Invoice, InvoiceKind, InvoiceStatus
from store import lifecycle
from store import services as store_services
from store.models import SubscriptionEvent, SubscriptionState
from tests.billing.conftest import (
    HOUR,
    add_usage,
    flat,
    free,
    graduated,
    overage,
    per_unit,
    utc,
    volume,
)

pytestmark = pytest.mark.django_db
D = Decimal
MINUTE = timedelta(minutes=1)


def run(at):
    return billing_run(now=at, flush=False)


def lines_of(invoice):
    return [
        (line.kind, line.quantity, line.amount_minor) for line in invoice.lines.all()
    ]


# -- start and renewal ------------------------------------------------------------


def test_a_flat_tier_is_charged_in_advance_at_start_and_at_each_renewal(shop):
    tier = shop.tier(flat("49.00"), name="Gold")
    sub = shop.subscribe(tier, at=utc(2027, 1, 31, 10))

    result = run(utc(2027, 1, 31, 10, 1))

    assert result.invoices == 1
    start = Invoice.objects.get()
    assert (start.kind, start.total_minor, start.currency) == ("start", 4900, "usd")
    assert (start.period_start, start.period_end) == (
        utc(2027, 1, 31, 10),
        utc(2027, 2, 28, 10),  # Jan 31 + 1 month, clamped to Feb 28
    )
    assert start.application_fee_minor == 490  # 10 % of $49.00
    assert start.number == "ACME-000001"
    assert lines_of(start) == [("FIXED", 1, 4900)]
    sub.refresh_from_db()
    assert sub.next_invoice_at == utc(2027, 2, 28, 10)

    # Nothing more until the period ends (and the usage settles).
    assert run(utc(2027, 2, 28, 10)).invoices == 0

    run(utc(2027, 2, 28, 10, 1))

    renewal = Invoice.objects.get(kind=InvoiceKind.RENEWAL)
    assert (renewal.period_start, renewal.period_end) == (
        utc(2027, 1, 31, 10),
        utc(2027, 2, 28, 10),
    )
    fee = renewal.lines.get()
    assert (fee.period_start, fee.period_end) == (
        utc(2027, 2, 28, 10),
        utc(2027, 3, 31, 10),  # back on the anchor's day
    )
    assert renewal.total_minor == 4900
    assert renewal.number == "ACME-000002"
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (
        utc(2027, 2, 28, 10),
        utc(2027, 3, 31, 10),
    )
    assert sub.next_invoice_at == utc(2027, 3, 31, 10)


def test_per_unit_usage_is_charged_in_arrears(shop):
    tier = shop.tier(per_unit("0.0004"))
    sub = shop.subscribe(tier, at=utc(2027, 3, 1, 8, 30))
    add_usage(sub, utc(2027, 3, 1, 9), 1_000)
    add_usage(sub, utc(2027, 3, 20, 23, 59), 11_345)
    add_usage(sub, utc(2027, 4, 1, 8, 30), 999)  # next period

    assert run(utc(2027, 3, 1, 9)).invoices == 0  # nothing in advance

    run(utc(2027, 4, 1, 8, 31))

    invoice = Invoice.objects.get()
    # 12,345 requests × $0.0004 = $4.938 → $4.94
    assert lines_of(invoice) == [("USAGE", 12_345, 494)]
    assert invoice.total_minor == 494
    assert invoice.application_fee_minor == 49  # 10 % of 494 = 49.4 → 49


def test_a_fee_with_per_unit_requests_is_charged_in_advance_then_usage_in_arrears(
    shop,
):
    # $10 a month plus $0.0004 per request (SPEC §10: priced on top of one fee)
    tier = shop.tier(dataclasses.replace(per_unit("0.0004"), fixed_fee=D("10.00")))
    sub = shop.subscribe(tier, at=utc(2027, 3, 1, 8, 30))
    assert sub.next_invoice_at == utc(2027, 3, 1, 8, 30)  # the fee is due now
    add_usage(sub, utc(2027, 3, 1, 9), 1_000)
    add_usage(sub, utc(2027, 3, 20, 23, 59), 11_345)

    run(utc(2027, 3, 1, 8, 31))

    start = Invoice.objects.get()
    assert (start.kind, start.period_start, start.period_end) == (
        "start",
        utc(2027, 3, 1, 8, 30),
        utc(2027, 4, 1, 8, 30),
    )
    assert lines_of(start) == [("FIXED", 1, 1_000)]  # $10.00, in advance

    run(utc(2027, 4, 1, 8, 31))

    renewal = Invoice.objects.get(kind="renewal")
    # March's 12,345 requests × $0.0004 = $4.938 → $4.94; then April's $10.00
    assert lines_of(renewal) == [("USAGE", 12_345, 494), ("FIXED", 1, 1_000)]
    assert renewal.total_minor == 1_494
    assert renewal.application_fee_minor == 149  # 10 % of 1,494 = 149.4 → 149


def test_flat_plus_overage_renewal_holds_arrears_overage_and_the_next_fee(shop):
    tier = shop.tier(overage("20.00", included=10_000, price="0.05", block=100))
    sub = shop.subscribe(tier, at=utc(2027, 5, 10))
    add_usage(sub, utc(2027, 5, 11), 10_250)

    run(utc(2027, 6, 10, 0, 1))

    renewal = Invoice.objects.get(kind="renewal")
    # 250 over → 3 blocks of 100 (a partial block counts) × $0.05 = $0.15; then
    # the June fee $20.00.
    assert lines_of(renewal) == [("OVERAGE", 3, 15), ("FIXED", 1, 2000)]
    assert renewal.total_minor == 2015
    assert Invoice.objects.get(kind="start").total_minor == 2000


def test_graduated_bands_each_get_a_line(shop):
    tier = shop.tier(graduated())
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 2), 12_500)

    run(utc(2027, 2, 1, 0, 1))

    invoice = Invoice.objects.get()
    # band 1: 1,000 at $0 = $0 + flat $5.00; band 2: 9,000 × $0.002 = $18.00;
    # band 3: 2,500 × $0.001 = $2.50
    assert lines_of(invoice) == [
        ("BAND", 1_000, 0),
        ("BAND_FLAT", 1, 500),
        ("BAND", 9_000, 1800),
        ("BAND", 2_500, 250),
    ]
    assert invoice.total_minor == 2550


def test_volume_prices_everything_at_the_band_of_the_total(shop):
    tier = shop.tier(volume())
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 2), 4_321)

    run(utc(2027, 2, 1, 0, 1))

    # 4,321 × $0.005 = $21.605 → $21.61, plus band 2's flat $2.00
    assert lines_of(Invoice.objects.get()) == [
        ("BAND", 4_321, 2161),
        ("BAND_FLAT", 1, 200),
    ]


def test_zero_decimal_and_three_decimal_currencies(shop):
    yen = shop.tier(per_unit("0.5", currency="jpy"), name="Yen")
    dinar = shop.tier(per_unit("0.0004", currency="bhd"), name="Dinar")
    a = shop.subscribe(yen, at=utc(2027, 1, 1))
    b = shop.subscribe(dinar, at=utc(2027, 1, 1))
    add_usage(a, utc(2027, 1, 5), 12_345)
    add_usage(b, utc(2027, 1, 5), 12_345)

    run(utc(2027, 2, 1, 0, 1))

    # ¥0.5 × 12,345 = ¥6,172.5 → ¥6,173 (half up); fee 10 % = 617.3 → ¥617
    jpy = Invoice.objects.get(subscription=a)
    assert (jpy.currency, jpy.total_minor, jpy.application_fee_minor) == (
        "jpy",
        6173,
        617,
    )
    # BHD 0.0004 × 12,345 = 4.938 → 4.938 in fils, but Stripe charges multiples of
    # 10 fils: 4.940; fee 10 % of 4.940 = 0.494 → 0.490 (to the step)
    bhd = Invoice.objects.get(subscription=b)
    assert (bhd.currency, bhd.total_minor, bhd.application_fee_minor) == (
        "bhd",
        4940,
        490,
    )


def test_free_tiers_write_no_invoice(shop):
    tier = shop.tier(free())
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 2), 500)

    assert run(utc(2027, 3, 1)).invoices == 0
    assert not Invoice.objects.exists()
    sub.refresh_from_db()
    assert sub.next_invoice_at is None


# -- trials, cancellations, tier changes --------------------------------------------


def test_a_trial_charges_nothing_then_the_first_paid_period_starts(shop):
    tier = shop.tier(flat("30.00"), trial_days=14)
    sub = shop.subscribe(tier, at=utc(2027, 1, 10, 9))
    add_usage(sub, utc(2027, 1, 11), 5_000)

    assert run(utc(2027, 1, 20)).invoices == 0

    run(utc(2027, 1, 24, 9, 1))

    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE
    assert sub.started_at == utc(2027, 1, 24, 9)
    assert (sub.current_period_start, sub.current_period_end) == (
        utc(2027, 1, 24, 9),
        utc(2027, 2, 24, 9),
    )
    invoice = Invoice.objects.get()
    assert (invoice.kind, invoice.total_minor) == ("start", 3000)
    assert SubscriptionEvent.objects.filter(
        subscription=sub, kind="trial_ended"
    ).exists()


def test_cancel_at_period_end_closes_the_period_without_a_new_fee(shop):
    tier = shop.tier(overage("20.00", included=100, price="0.10"))
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    run(utc(2027, 1, 1, 0, 1))
    add_usage(sub, utc(2027, 1, 3), 150)
    lifecycle.cancel(sub, at=utc(2027, 1, 3), actor=None, at_period_end=True)

    run(utc(2027, 2, 1, 0, 1))

    final = Invoice.objects.get(kind="final")
    assert lines_of(final) == [("OVERAGE", 50, 500)]  # 50 × $0.10, no February fee
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.CANCELLED
    assert sub.cancelled_at == utc(2027, 2, 1)
    assert sub.next_invoice_at is None
    assert run(utc(2027, 6, 1)).invoices == 0


def test_cancel_now_bills_usage_to_date(shop):
    tier = shop.tier(per_unit("0.01"))
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 3), 100)
    add_usage(sub, utc(2027, 1, 10, 5, 30), 7)  # the hour of the cancellation
    sub = lifecycle.cancel(
        sub, at=utc(2027, 1, 10, 5, 45), actor=None, at_period_end=False
    )

    run(utc(2027, 1, 10, 6))

    final = Invoice.objects.get()
    assert final.kind == "final"
    assert (final.period_start, final.period_end) == (utc(2027, 1, 1), sub.cancelled_at)
    assert lines_of(final) == [("USAGE", 107, 107)]


def _lines_with_periods(invoice):
    return [
        (
            line.kind,
            line.quantity,
            line.amount_minor,
            line.period_start,
            line.period_end,
        )
        for line in invoice.lines.all()
    ]


def cancelled_now(shop, *, days_after_start: int):
    """A $0.01-per-request subscription started `days_after_start` days ago and
    cancelled now by the store's service; with the period it had when cancelled."""
    tier = shop.tier(per_unit("0.01"))
    sub = shop.subscribe(tier, at=timezone.now() - timedelta(days=days_after_start))
    period = (sub.current_period_start, sub.current_period_end)
    sub = store_services.subscription_cancel(
        subscription=sub, actor=None, at_period_end=False
    )
    return sub, period


def test_cancel_now_leaves_out_the_usage_counted_after_the_cancellation(shop):
    """The store's "cancel now" at the real instant; rows a late flush writes for
    hours after that instant (requests in flight, counted later) are not billed, and
    the lines end at the cancellation, not at the end of the period."""
    sub, (period_start, period_end) = cancelled_now(shop, days_after_start=5)
    cancelled = sub.cancelled_at
    add_usage(sub, cancelled - timedelta(days=3), 100)
    add_usage(sub, cancelled - timedelta(seconds=1), 7)  # the cancellation's hour
    add_usage(sub, cancelled + HOUR, 50)  # after it: a late flush
    add_usage(sub, cancelled + timedelta(days=10), 1_000)
    assert cancelled + timedelta(days=10) < period_end

    run(cancelled + settle_delay())

    final = Invoice.objects.get(subscription=sub)
    assert final.kind == "final"
    assert (final.period_start, final.period_end) == (period_start, cancelled)
    assert _lines_with_periods(final) == [
        ("USAGE", 107, 107, period_start, cancelled)  # 107 × $0.01
    ]
    assert (final.rating["quantity"], final.total_minor) == (107, 107)
    # Nothing is billed later for the hours after the cancellation.
    assert run(period_end + timedelta(days=40)).invoices == 0


def test_cancel_now_after_a_missed_boundary_bills_each_period_up_to_the_instant(
    shop,
):
    """The job did not close the previous period (it was down): the final invoice
    rates that whole period, then the current one up to the cancellation only."""
    sub, (first_start, boundary) = cancelled_now(shop, days_after_start=40)
    cancelled = sub.cancelled_at
    assert first_start < boundary < cancelled
    add_usage(sub, first_start + timedelta(days=2), 300)
    add_usage(sub, boundary + timedelta(minutes=5), 20)
    add_usage(sub, cancelled - timedelta(seconds=1), 2)
    add_usage(sub, cancelled + HOUR, 4_000)  # a late flush, after the instant

    run(cancelled + settle_delay())

    final = Invoice.objects.get(subscription=sub)
    assert final.kind == "final"
    assert _lines_with_periods(final) == [
        ("USAGE", 300, 300, first_start, boundary),
        ("USAGE", 22, 22, boundary, cancelled),
    ]
    assert (final.rating["quantity"], final.total_minor) == (322, 322)


def test_a_scheduled_downgrade_applies_at_the_boundary(shop):
    gold = shop.tier(flat("100.00"), name="Gold")
    silver = shop.tier(flat("40.00"), name="Silver")
    sub = shop.subscribe(gold, at=utc(2027, 1, 1))
    shop.change_tier(sub, silver, at=utc(2027, 1, 15), usage_before=0)

    run(utc(2027, 2, 1, 0, 1))

    assert Invoice.objects.get(kind="renewal").total_minor == 4000
    sub.refresh_from_db()
    assert (sub.tier, sub.tier_version) == (silver, silver.current_version)
    assert sub.scheduled_tier is None
    event = SubscriptionEvent.objects.get(subscription=sub, kind="tier_downgraded")
    assert event.to_tier_version == silver.current_version


def test_usage_is_split_at_an_upgrade(shop):
    basic = shop.tier(per_unit("0.001"), name="Basic")
    pro = shop.tier(per_unit("0.01"), name="Pro")
    sub = shop.subscribe(basic, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 5), 300)
    sub = shop.change_tier(sub, pro, at=utc(2027, 1, 10), usage_before=300)
    add_usage(sub, utc(2027, 1, 20), 5_000)

    run(utc(2027, 2, 1, 0, 1))

    # 300 × $0.001 = $0.30 on Basic; 5,000 × $0.01 = $50.00 on Pro
    invoice = Invoice.objects.get(kind="renewal")
    assert lines_of(invoice) == [("USAGE", 300, 30), ("USAGE", 5_000, 5000)]
    assert invoice.rating["quantity"] == 5_300


def test_the_job_run_twice_writes_one_invoice(shop):
    tier = shop.tier(flat("10.00"))
    shop.subscribe(tier, at=utc(2027, 1, 1))
    at = utc(2027, 1, 1, 0, 5)

    run(at)
    second = run(at)

    assert second.invoices == 0
    assert Invoice.objects.count() == 1


def test_a_jump_of_three_months_takes_every_step(shop):
    tier = shop.tier(flat("10.00"))
    sub = shop.subscribe(tier, at=utc(2027, 1, 31))

    run(utc(2027, 4, 30, 0, 1))

    kinds = list(Invoice.objects.order_by("number").values_list("kind", "period_start"))
    assert kinds == [
        ("start", utc(2027, 1, 31)),
        ("renewal", utc(2027, 1, 31)),
        ("renewal", utc(2027, 2, 28)),
        ("renewal", utc(2027, 3, 31)),
    ]
    sub.refresh_from_db()
    assert sub.current_period_start == utc(2027, 4, 30)
    assert sub.current_period_end == utc(2027, 5, 31)
    assert Invoice.objects.filter(status=InvoiceStatus.DRAFT).count() == 4
    assert sum(Invoice.objects.values_list("total_minor", flat=True)) == 4000
    assert Decimal(sub.organization.plan.commission_percent) == Decimal("10")


def test_an_upgrade_is_prorated_to_the_second_on_the_closing_invoice(shop):
    silver = shop.tier(flat("30.00"), name="Silver")
    gold = shop.tier(flat("100.00"), name="Gold")
    sub = shop.subscribe(silver, at=utc(2027, 4, 1))  # April: 30 days
    run(utc(2027, 4, 1, 0, 1))
    changed_at = utc(2027, 4, 21, 6, 0, 1)  # 9 days 17:59:59 = 842,399 s left
    shop.change_tier(sub, gold, at=changed_at, usage_before=0)

    run(utc(2027, 5, 1, 0, 1))

    renewal = Invoice.objects.get(kind="renewal")
    # Period: 30 days = 2,592,000 s; left: 842,399 s.
    # Credit: $30.00 × 842,399 / 2,592,000 = $9.749988… → -$9.75
    # Charge: $100.00 × 842,399 / 2,592,000 = $32.499961… → $32.50
    # Then May on Gold: $100.00.
    assert lines_of(renewal) == [
        ("PRORATION_CREDIT", 1, -975),
        ("PRORATION_CHARGE", 1, 3250),
        ("FIXED", 1, 10000),
    ]
    assert renewal.total_minor == 12275
    credit, charge, _fee = renewal.lines.all()
    assert (credit.tier_version, charge.tier_version) == (
        silver.current_version,
        gold.current_version,
    )


def test_an_upgrade_in_a_trial_is_not_prorated(shop):
    silver = shop.tier(flat("30.00"), name="Silver", trial_days=7)
    gold = shop.tier(flat("100.00"), name="Gold", trial_days=7)
    sub = shop.subscribe(silver, at=utc(2027, 4, 1))
    sub = shop.change_tier(sub, gold, at=utc(2027, 4, 3), usage_before=0)
    assert sub.events.get(kind="tier_upgraded").data["prorated"] is False

    run(utc(2027, 4, 8, 0, 1))

    # The trial ended: Gold's first period, nothing for the trial.
    assert lines_of(Invoice.objects.get()) == [("FIXED", 1, 10000)]


def test_disabling_monetization_ends_paid_subscriptions_at_their_period_end(
    shop, stripe
):
    """Existing ones "run to period end": then they end, and no new fee is charged;
    a free subscription goes on; the subscriber cannot undo it while it is off."""
    from django.core.exceptions import ValidationError

    from billing.services import monetization_disable
    from pricing.rating import Pricing
    from pricing.rating import PricingModel as Model
    from store.services import subscription_resume
    from tests.billing.test_meters import add_meter, tier_with_meters

    paid = shop.subscribe(shop.tier(flat("25.00")), at=utc(2027, 1, 1))
    free_sub = shop.subscribe(shop.tier(free()), at=utc(2027, 1, 1), app_name="f")
    # No fee and free requests, but tokens are charged: a paid subscription too.
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    per_token = tier_with_meters(
        shop,
        Pricing(model=Model.FREE, currency="usd"),
        name="Per token",
        tokens=Pricing(
            model=Model.PER_UNIT, currency="usd", unit_price=Decimal("0.000002")
        ),
    )
    tokens_sub = shop.subscribe(per_token, at=utc(2027, 1, 1), app_name="t")
    run(utc(2027, 1, 1, 0, 1))

    monetization_disable(organization=shop.org, actor=None)

    paid.refresh_from_db()
    free_sub.refresh_from_db()
    tokens_sub.refresh_from_db()
    assert paid.cancel_at_period_end
    assert tokens_sub.cancel_at_period_end
    assert not free_sub.cancel_at_period_end
    assert SubscriptionEvent.objects.filter(
        subscription=paid, kind="cancel_scheduled"
    ).exists()
    with pytest.raises(ValidationError, match="not taking payments"):
        subscription_resume(subscription=paid, actor=None)

    run(utc(2027, 2, 1, 0, 1))

    paid.refresh_from_db()
    free_sub.refresh_from_db()
    assert paid.state == SubscriptionState.CANCELLED
    assert paid.cancelled_at == utc(2027, 2, 1)
    assert free_sub.state == SubscriptionState.ACTIVE
    # Only January's fee was ever invoiced: nothing for February.
    assert [i.kind for i in Invoice.objects.filter(subscription=paid)] == ["start"]


def test_a_scheduled_change_to_another_currency_invoices_each_currency_apart(shop):
    """January's usage is billed in dollars; February's fee of the euro tier is an
    invoice of its own (an invoice has one currency)."""
    dollars = shop.tier(per_unit("0.01"), name="Dollars")
    euros = shop.tier(flat("20.00", currency="eur"), name="Euros")
    sub = shop.subscribe(dollars, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 5), 300)  # 300 × $0.01 = $3.00
    shop.change_tier(sub, euros, at=utc(2027, 1, 10), usage_before=300)

    run(utc(2027, 2, 1, 0, 1))

    renewal = Invoice.objects.get(kind="renewal")
    fee = Invoice.objects.get(kind="renewal_fee")
    assert (renewal.currency, renewal.total_minor) == ("usd", 300)
    assert lines_of(renewal) == [("USAGE", 300, 300)]
    assert (fee.currency, fee.total_minor) == ("eur", 2000)
    assert (fee.period_start, fee.period_end) == (utc(2027, 2, 1), utc(2027, 3, 1))
    assert fee.tier_version == euros.current_version
    assert run(utc(2027, 2, 1, 0, 2)).invoices == 0  # run again: nothing new

    run(utc(2027, 3, 1, 0, 1))  # March: the euro tier's fee, on its renewal
    march = Invoice.objects.get(kind="renewal", period_start=utc(2027, 2, 1))
    assert (march.currency, march.total_minor) == ("eur", 2000)
