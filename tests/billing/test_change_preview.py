"""The store's tier-change preview against what apimon then invoices.

For each case the preview is computed, the change is made through the store's own
service, and the billing engine runs at the times it would (the renewal is then
pushed to the Stripe emulator): what the preview says is charged at the change must
be what the change invoices (nothing: prorations go on the invoice that closes the
period, docs/decisions.md), and its next invoice must be, line for line, the
invoice(s) the engine writes at that date (with no usage after the change)."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace

import pytest

from apimon import stripe_client as sc
from billing import push
from billing.engine import billing_run, settle_delay
from billing.models import Invoice, InvoiceLine, InvoiceStatus
from gateway import redis as gateway_redis
from pricing.rating import Band, Pricing
from pricing.rating import PricingModel as M
from pricing.stripe_money import from_stripe_amount
from publisher.models import Api, ApiState
from store import services
from store.models import Subscription, SubscriptionState
from store.previews import tier_change_preview
from tests.billing.conftest import add_usage, utc
from tests.billing.test_meters import add_meter, add_meter_usage, tier_with_meters
from tests.store.conftest import freeze_store_clock

pytestmark = pytest.mark.django_db

T0 = utc(2027, 1, 1, 9)  # the subscription starts (a 31-day month follows)
CHANGE = utc(2027, 1, 13, 17, 42, 37)  # mid-period, at an odd second


# Prices written in dollars, converted per currency: yen ×100 (0 decimals), dinars
# ×0.377 (3 decimals; fees land on odd fils, which Stripe charges in steps of 10).
def money(usd: str, currency: str, *, unit: bool = False) -> Decimal:
    value = Decimal(usd)
    if currency == "jpy":
        value *= 100
        return value if unit else value.quantize(Decimal(1), ROUND_HALF_UP)
    if currency == "bhd":
        value *= Decimal("0.377")
        return value if unit else value.quantize(Decimal("0.001"), ROUND_HALF_UP)
    return value


def flat(fee: str, currency: str = "usd") -> Pricing:
    return Pricing(M.FLAT, currency, fixed_fee=money(fee, currency))


def per_unit(price: str, currency: str = "usd") -> Pricing:
    return Pricing(M.PER_UNIT, currency, unit_price=money(price, currency, unit=True))


def overage(fee: str, included: int, price: str, currency: str = "usd") -> Pricing:
    return Pricing(
        M.FLAT_PLUS_OVERAGE,
        currency,
        fixed_fee=money(fee, currency),
        included_requests=included,
        overage_price=money(price, currency, unit=True),
        overage_block_size=1,
    )


def graduated(currency: str = "usd") -> Pricing:
    return Pricing(
        M.GRADUATED,
        currency,
        bands=(
            Band(1_000, Decimal(0), money("5.00", currency)),
            Band(10_000, money("0.002", currency, unit=True)),
            Band(None, money("0.001", currency, unit=True)),
        ),
    )


def volume(currency: str = "usd") -> Pricing:
    return Pricing(
        M.VOLUME,
        currency,
        bands=(
            Band(1_000, money("0.01", currency, unit=True)),
            Band(10_000, money("0.005", currency, unit=True), money("2.00", currency)),
            Band(None, money("0.002", currency, unit=True), money("10.00", currency)),
        ),
    )


def free() -> Pricing:
    return Pricing(M.FREE, "usd")


@pytest.fixture(autouse=True)
def no_live_counters():
    """The preview adds the gateway's unflushed counters: start from none."""
    gateway_redis.reset_clients()
    gateway_redis.get_redis().flushdb()
    yield
    gateway_redis.get_redis().flushdb()
    gateway_redis.reset_clients()


@pytest.fixture
def clock(monkeypatch):
    """The store's clock (the service stamps the change with it)."""
    clock = SimpleNamespace(at=CHANGE)
    freeze_store_clock(monkeypatch, clock)
    return clock


def line_tuple(x, currency: str) -> tuple:
    return (
        str(x.kind),
        x.description,
        x.quantity,
        Decimal(x.unit_price),
        x.amount_minor,
        x.period_start,
        x.period_end,
        currency,
    )


def invoice_lines(invoices) -> list[tuple]:
    lines = (
        InvoiceLine.objects.filter(invoice__in=invoices)
        .select_related("invoice")
        .order_by("invoice_id", "position")
    )
    return [line_tuple(x, x.invoice.currency) for x in lines]


def preview_lines(lines) -> list[tuple]:
    return [line_tuple(x, x.currency) for x in lines]


def check(
    shop,
    stripe,
    clock,
    *,
    old: Pricing,
    new: Pricing,
    usage: int,
    expect: str,
    old_cycle: str = "month",
    new_cycle: str = "month",
    trial_days: int = 0,
    start_fee_paid: bool = True,
    tiers: tuple | None = None,
    meter_usage: dict[str, int] | None = None,
):
    """Preview, change, bill; the preview must match what is invoiced. `tiers`
    (before, after) replaces the tiers made from `old` and `new`; `meter_usage` adds
    units of meters before the change."""
    Api.objects.filter(pk=shop.api.pk).update(state=ApiState.PUBLISHED)
    if tiers:
        before_tier, after_tier = tiers
    else:
        before_tier = shop.tier(
            old, name="Before", cycle=old_cycle, trial_days=trial_days
        )
        after_tier = shop.tier(new, name="After", cycle=new_cycle)
    customer = stripe.customer(shop)
    sub = shop.subscribe(before_tier, at=T0, customer=customer)
    billing_run(now=T0 + settle_delay(), flush=False, enqueue_push=False)
    if start_fee_paid:
        for invoice in Invoice.objects.filter(status=InvoiceStatus.DRAFT):
            assert push.invoice_push(invoice_id=invoice.pk).status == "paid"
    if usage:
        add_usage(sub, T0 + timedelta(hours=3), usage)
    for meter, units in (meter_usage or {}).items():
        add_meter_usage(sub, meter, T0 + timedelta(hours=3), units)
    sub.refresh_from_db()
    existing = list(Invoice.objects.values_list("pk", flat=True))

    preview = tier_change_preview(subscription=sub, tier=after_tier, now=CHANGE)
    assert preview.kind == expect
    assert preview.next_invoice is not None

    result = services.subscription_change_tier(
        subscription=sub, tier=after_tier, actor=None
    )
    assert result.kind == expect

    # Charged at the change: nothing is invoiced then, and the preview says so.
    written = Invoice.objects.exclude(pk__in=existing)
    assert sum(i.total_minor for i in written) == 0

    # The next invoice: what the engine writes at the date the preview shows.
    at = preview.next_invoice.at
    billing_run(now=at + settle_delay(), flush=False, enqueue_push=False)
    invoices = list(Invoice.objects.exclude(pk__in=existing).order_by("pk"))
    assert invoices, "the engine wrote no invoice at the previewed date"
    assert {i.created_at for i in invoices} == {at + settle_delay()}
    assert [(t[0], t[4]) for t in preview_lines(preview.next_invoice.lines)] == [
        (t[0], t[4]) for t in invoice_lines(invoices)
    ]
    assert preview_lines(preview.next_invoice.lines) == invoice_lines(invoices)
    assert preview.next_invoice.totals == sorted(
        (i.currency, i.total_minor) for i in invoices
    )
    # The proration the preview shows is the one on that invoice.
    billed = [t for t in invoice_lines(invoices) if t[0].startswith("PRORATION")]
    assert preview_lines(preview.proration) == billed
    # And Stripe charges exactly the invoice's total.
    for invoice in invoices:
        pushed = push.invoice_push(invoice_id=invoice.pk)
        remote = sc.get_client().v1.invoices.retrieve(
            pushed.stripe_invoice_id, None, sc.request_options(account=stripe.account)
        )
        assert (
            from_stripe_amount(remote["total"], invoice.currency),
            remote["currency"],
        ) == (invoice.total_minor, invoice.currency)
    return SimpleNamespace(preview=preview, invoices=invoices, sub=sub)


CURRENCIES = ["usd", "jpy", "bhd"]


@pytest.mark.parametrize("currency", CURRENCIES)
def test_flat_to_a_higher_flat(shop, stripe, clock, currency):
    got = check(
        shop,
        stripe,
        clock,
        old=flat("19.00", currency),
        new=flat("49.00", currency),
        usage=1_234,
        expect="upgrade",
    )
    kinds = [line.kind for line in got.preview.next_invoice.lines]
    assert kinds == ["PRORATION_CREDIT", "PRORATION_CHARGE", "FIXED"]


@pytest.mark.parametrize("currency", CURRENCIES)
def test_per_unit_to_flat_plus_overage(shop, stripe, clock, currency):
    got = check(
        shop,
        stripe,
        clock,
        old=per_unit("0.0004", currency),
        new=overage("20.00", 10_000, "0.01", currency),
        usage=30_001,
        expect="upgrade",
    )
    kinds = [line.kind for line in got.preview.next_invoice.lines]
    assert kinds == ["USAGE", "PRORATION_CHARGE", "FIXED"]


@pytest.mark.parametrize("currency", CURRENCIES)
def test_graduated_to_volume(shop, stripe, clock, currency):
    check(
        shop,
        stripe,
        clock,
        old=graduated(currency),
        new=volume(currency),
        usage=5_003,
        expect="upgrade",
    )


def test_free_to_paid(shop, stripe, clock):
    check(
        shop, stripe, clock, old=free(), new=flat("19.00"), usage=77, expect="upgrade"
    )


@pytest.mark.parametrize("currency", ["usd", "bhd"])
def test_during_a_trial(shop, stripe, clock, currency):
    got = check(
        shop,
        stripe,
        clock,
        old=flat("19.00", currency),
        new=flat("49.00", currency),
        usage=500,
        expect="upgrade",
        trial_days=30,
    )
    # The first paid period's fee on the new tier, when the trial ends.
    assert got.preview.next_invoice.at == T0 + timedelta(days=30)
    assert [line.kind for line in got.preview.next_invoice.lines] == ["FIXED"]
    assert got.preview.proration == []
    got.sub.refresh_from_db()
    assert got.sub.state == SubscriptionState.ACTIVE


@pytest.mark.parametrize("currency", ["usd", "bhd"])
def test_a_downgrade(shop, stripe, clock, currency):
    got = check(
        shop,
        stripe,
        clock,
        old=overage("49.00", 10_000, "0.01", currency),
        new=flat("19.00", currency),
        usage=12_345,
        expect="downgrade",
    )
    assert got.preview.proration == []
    assert Subscription.objects.get(pk=got.sub.pk).tier.name == "After"


def test_a_change_of_billing_cycle_is_scheduled(shop, stripe, clock):
    got = check(
        shop,
        stripe,
        clock,
        old=flat("19.00"),
        new=flat("190.00"),
        new_cycle="year",
        usage=10,
        expect="downgrade",
    )
    [fee] = got.preview.next_invoice.lines
    assert fee.period_end - fee.period_start >= timedelta(days=365)


def test_a_change_of_currency_is_scheduled(shop, stripe, clock):
    got = check(
        shop,
        stripe,
        clock,
        old=per_unit("0.0004"),
        new=flat("19.00", "bhd"),
        usage=30_000,
        expect="downgrade",
    )
    assert [i.currency for i in got.invoices] == ["usd", "bhd"]


def test_a_change_between_tiers_that_price_meters(shop, stripe, clock):
    """Each meter's lines, rated on the old version until the change and on the new
    one after, are in the preview's next invoice as in the invoice written."""
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    add_meter(shop.api, "credits", "Credits", "credit")
    basic = tier_with_meters(
        shop, per_unit("0.0004"), name="Basic", tokens=per_unit("0.000002"),
        credits=graduated(),
    )  # fmt: skip
    pro = tier_with_meters(
        shop, overage("20.00", 10_000, "0.01"), name="Pro",
        tokens=per_unit("0.0000015"), credits=volume(),
    )  # fmt: skip
    got = check(
        shop,
        stripe,
        clock,
        old=None,
        new=None,
        tiers=(basic, pro),
        usage=30_001,
        meter_usage={"tokens": 1_834_000, "credits": 5_003},
        expect="upgrade",
    )
    meters = [line.meter for line in got.invoices[0].lines.all()]
    assert {"tokens", "credits"} <= set(meters)
    described = [line.description for line in got.preview.next_invoice.lines]
    # 1,834,000 × $0.000002 = $3.668 → $3.67, on Basic (the units came before).
    assert "Tokens: 1,834,000 × $0.002 / 1K" in described
    assert any(d.startswith("Credits: ") for d in described)


@pytest.mark.parametrize(
    ("old_token_price", "new_token_price", "expect"),
    [("0.000002", "0.000004", "upgrade"), ("0.000004", "0.000002", "downgrade")],
)
def test_a_meters_price_decides_between_tiers_of_the_same_fee(
    shop, stripe, clock, old_token_price, new_token_price, expect
):
    """Two tiers alike but for their price per token: at 1,000,000 tokens so far a
    whole period costs $10 + $2 on the cheaper and $10 + $4 on the dearer, so the
    move to the dearer applies now and the move to the cheaper waits."""
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    before = tier_with_meters(
        shop, flat("10.00"), name="Before", tokens=per_unit(old_token_price)
    )
    after = tier_with_meters(
        shop, flat("10.00"), name="After", tokens=per_unit(new_token_price)
    )
    got = check(
        shop,
        stripe,
        clock,
        old=None,
        new=None,
        tiers=(before, after),
        usage=1_500,
        meter_usage={"tokens": 1_000_000},
        expect=expect,
    )
    costs = {"0.000002": 1200, "0.000004": 1400}
    assert got.preview.cost_old_minor == costs[old_token_price]
    assert got.preview.cost_new_minor == costs[new_token_price]
    assert got.preview.usage_words == ["1,500 requests", "1,000,000 tokens"]
