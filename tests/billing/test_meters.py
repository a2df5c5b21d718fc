"""The engine rates every meter a tier version prices: one line group per meter,
with `pricing.rating`'s rules unchanged; hand-computed vectors; the Stripe push
carries the meters' lines."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from billing import push
from billing.engine import billing_run
from billing.models import Invoice
from gateway.models import UsageRecord
from pricing.rating import Band, Pricing, PricingModel
from publisher import meters
from publisher import services as publisher_services
from publisher.models import MeterSource
from tests.billing.conftest import HOUR, add_usage, utc
from tests.billing.test_push import stripe_invoices

pytestmark = pytest.mark.django_db
D = Decimal


def add_meter_usage(sub, meter: str, at: datetime, count: int) -> None:
    """`count` units of `meter` at `at`, in the subscription hour that holds it."""
    anchor = sub.started_at
    hour = anchor + ((at - anchor) // HOUR) * HOUR
    UsageRecord.objects.create(
        organization_id=sub.organization_id,
        subscription=sub,
        meter=meter,
        hour=hour,
        count=count,
    )


def add_meter(api, key, name, unit, *, scale=1, source=MeterSource.RESPONSE):
    return meters.meter_create(
        api=api,
        actor=None,
        key=key,
        display_name=name,
        unit_label=unit,
        display_scale=scale,
        source=source,
    )


def tier_with_meters(
    shop, pricing: Pricing, *, name: str = "Metered", **meter_pricing: Pricing
):
    tier = publisher_services.tier_create(
        organization=shop.org,
        actor=None,
        name=name,
        price=publisher_services.TierPrice(
            pricing=pricing,
            meters=tuple(
                publisher_services.MeterPriceSpec(meter=key, pricing=p)
                for key, p in meter_pricing.items()
            ),
        ),
    )
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[*shop.api.tiers.all(), tier], actor=None
    )
    return tier


def lines_of(invoice):
    return [
        (line.meter, line.kind, line.quantity, line.amount_minor, line.description)
        for line in invoice.lines.all()
    ]


def test_graduated_tokens_in_usd_get_a_line_group_after_requests(shop):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    tier = tier_with_meters(
        shop,
        Pricing(model=PricingModel.PER_UNIT, currency="usd", unit_price=D("0.0004")),
        tokens=Pricing(
            model=PricingModel.GRADUATED,
            currency="usd",
            bands=(
                Band(1_000_000, D("0.000002")),  # $0.002 / 1K
                Band(None, D("0.0000015")),  # $0.0015 / 1K
            ),
        ),
    )
    sub = shop.subscribe(tier, at=utc(2027, 3, 1))
    add_usage(sub, utc(2027, 3, 2), 12_345)
    add_meter_usage(sub, "tokens", utc(2027, 3, 2), 1_000_000)
    add_meter_usage(sub, "tokens", utc(2027, 3, 20, 5), 834_000)
    add_meter_usage(sub, "tokens", utc(2027, 4, 1, 1), 7)  # the next period

    billing_run(now=utc(2027, 4, 1, 0, 1), flush=False)

    invoice = Invoice.objects.get()
    # requests: 12,345 × $0.0004 = $4.938 → $4.94
    # tokens 1–1,000,000: 1,000,000 × $0.000002 = $2.00
    # tokens above: 834,000 × $0.0000015 = $1.251 → $1.25
    assert lines_of(invoice) == [
        ("requests", "USAGE", 12_345, 494, "12,345 requests at $0.0004"),
        (
            "tokens",
            "BAND",
            1_000_000,
            200,
            "Tokens: 1,000,000 × $0.002 / 1K (1–1,000,000 tokens)",
        ),
        (
            "tokens",
            "BAND",
            834_000,
            125,
            "Tokens: 834,000 × $0.0015 / 1K (1,000,001–1,834,000 tokens)",
        ),
    ]
    assert invoice.total_minor == 819
    assert invoice.rating["segments"][0]["meters"] == {"tokens": 1_834_000}


def test_weighted_operations_in_jpy_with_included_units_and_overage(shop):
    add_meter(shop.api, "credits", "Credits", "credit", source=MeterSource.OPERATIONS)
    tier = tier_with_meters(
        shop,
        Pricing(model=PricingModel.PER_UNIT, currency="jpy", unit_price=D("0.05")),
        credits=Pricing(
            model=PricingModel.FLAT_PLUS_OVERAGE,
            currency="jpy",
            included_requests=1_000,
            overage_price=D("3"),
            overage_block_size=100,
        ),
    )
    sub = shop.subscribe(tier, at=utc(2027, 1, 10, 12))
    add_usage(sub, utc(2027, 1, 11), 1_001)
    add_meter_usage(sub, "credits", utc(2027, 1, 11), 2_000)  # e.g. 400 × POST /search
    add_meter_usage(sub, "credits", utc(2027, 1, 12), 345)

    billing_run(now=utc(2027, 2, 10, 12, 1), flush=False)

    invoice = Invoice.objects.get()
    # requests: 1,001 × ¥0.05 = ¥50.05 → ¥50
    # credits: 2,345 − 1,000 included = 1,345 → 14 blocks of 100 × ¥3 = ¥42
    assert [(m, k, q, a) for m, k, q, a, _d in lines_of(invoice)] == [
        ("requests", "USAGE", 1_001, 50),
        ("credits", "OVERAGE", 14, 42),
    ]
    assert lines_of(invoice)[1][4] == (
        "Credits: Overage: 14 blocks of 100 credits at ¥3 per block "
        "(1,345 credits above 1,000 included)"
    )
    assert invoice.total_minor == 92
    assert invoice.currency == "jpy"


def test_a_tier_that_charges_only_a_meter_is_invoiced(shop):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    tier = tier_with_meters(
        shop,
        Pricing(model=PricingModel.FREE, currency="usd"),
        tokens=Pricing(
            model=PricingModel.PER_UNIT, currency="usd", unit_price=D("0.000002")
        ),
    )
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 2), 99)  # free requests
    add_meter_usage(sub, "tokens", utc(2027, 1, 2), 1_834_000)

    billing_run(now=utc(2027, 2, 1, 0, 1), flush=False)

    invoice = Invoice.objects.get()
    # 1,834,000 × $0.000002 = $3.668 → $3.67
    assert lines_of(invoice) == [
        ("tokens", "USAGE", 1_834_000, 367, "Tokens: 1,834,000 × $0.002 / 1K")
    ]
    sub.refresh_from_db()
    assert sub.next_invoice_at == utc(2027, 3, 1)


def test_a_meter_the_tier_does_not_price_is_not_billed(shop):
    add_meter(shop.api, "tokens", "Tokens", "token")
    tier = tier_with_meters(
        shop,
        Pricing(model=PricingModel.PER_UNIT, currency="usd", unit_price=D("0.01")),
    )
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 2), 10)
    add_meter_usage(sub, "tokens", utc(2027, 1, 2), 1_000_000)

    billing_run(now=utc(2027, 2, 1, 0, 1), flush=False)

    assert [line[:4] for line in lines_of(Invoice.objects.get())] == [
        ("requests", "USAGE", 10, 10)
    ]


def test_the_stripe_invoice_carries_each_meters_lines(shop, stripe):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    customer = stripe.customer(shop)
    tier = tier_with_meters(
        shop,
        Pricing(model=PricingModel.PER_UNIT, currency="usd", unit_price=D("0.0004")),
        tokens=Pricing(
            model=PricingModel.PER_UNIT, currency="usd", unit_price=D("0.000002")
        ),
    )
    sub = shop.subscribe(tier, at=utc(2027, 1, 1), customer=customer)
    add_usage(sub, utc(2027, 1, 2), 12_345)
    add_meter_usage(sub, "tokens", utc(2027, 1, 2), 1_834_000)
    billing_run(now=utc(2027, 2, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get()

    push.invoice_push(invoice_id=invoice.pk)

    [remote] = stripe_invoices(stripe, customer.stripe_customer_id)
    items = sorted(
        (line["description"], line["amount"]) for line in remote["lines"]["data"]
    )
    assert items == [
        ("12,345 requests at $0.0004", 494),
        ("Tokens: 1,834,000 × $0.002 / 1K", 367),
    ]
    assert remote["total"] == invoice.total_minor == 861


def usd(price: str) -> Pricing:
    return Pricing(model=PricingModel.PER_UNIT, currency="usd", unit_price=D(price))


def test_a_tier_change_mid_period_rates_each_meter_on_each_version(shop):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    add_meter(shop.api, "credits", "Credits", "credit", source=MeterSource.OPERATIONS)
    basic = tier_with_meters(
        shop,
        usd("0.001"),
        name="Basic",
        tokens=usd("0.000001"),
        credits=usd("0.01"),
    )
    pro = tier_with_meters(
        shop,
        usd("0.01"),
        name="Pro",
        tokens=usd("0.000002"),
        credits=usd("0.005"),
    )
    sub = shop.subscribe(basic, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 5), 300)
    add_meter_usage(sub, "tokens", utc(2027, 1, 5), 1_000_000)
    add_meter_usage(sub, "credits", utc(2027, 1, 5), 100)
    sub = shop.change_tier(sub, pro, at=utc(2027, 1, 10), usage_before=300)
    add_usage(sub, utc(2027, 1, 20), 5_000)
    add_meter_usage(sub, "tokens", utc(2027, 1, 20), 2_500_000)
    add_meter_usage(sub, "credits", utc(2027, 1, 20), 40)

    billing_run(now=utc(2027, 2, 1, 0, 1), flush=False)

    invoice = Invoice.objects.get(kind="renewal")
    # Basic until Jan 10, Pro after:
    assert [line[:4] for line in lines_of(invoice)] == [
        ("requests", "USAGE", 300, 30),  # 300 × $0.001
        ("requests", "USAGE", 5_000, 5000),  # 5,000 × $0.01
        ("credits", "USAGE", 100, 100),  # 100 × $0.01
        ("credits", "USAGE", 40, 20),  # 40 × $0.005
        ("tokens", "USAGE", 1_000_000, 100),  # 1,000,000 × $0.000001
        ("tokens", "USAGE", 2_500_000, 500),  # 2,500,000 × $0.000002
    ]
    assert invoice.total_minor == 5750
    assert [s.get("meters") for s in invoice.rating["segments"]] == [
        {"tokens": 1_000_000, "credits": 100},
        {"tokens": 2_500_000, "credits": 40},
    ]


def test_meter_units_counted_after_the_period_was_invoiced_are_billed_late(shop):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    tier = tier_with_meters(
        shop,
        Pricing(model=PricingModel.PER_UNIT, currency="usd", unit_price=D("0.0004")),
        tokens=Pricing(
            model=PricingModel.GRADUATED,
            currency="usd",
            bands=(
                Band(1_000_000, D("0.000002")),  # $0.002 / 1K
                Band(None, D("0.0000015")),  # $0.0015 / 1K
            ),
        ),
    )
    sub = shop.subscribe(tier, at=utc(2027, 3, 1))
    add_meter_usage(sub, "tokens", utc(2027, 3, 2), 900_000)
    billing_run(now=utc(2027, 4, 1, 0, 1), flush=False)
    first = Invoice.objects.get()
    # 900,000 × $0.000002 = $1.80
    assert first.total_minor == 180
    # 300,000 tokens of March arrive late (an ingest batch, a flush that lagged);
    # 10,000 of April on time.
    add_meter_usage(sub, "tokens", utc(2027, 3, 31, 23), 300_000)
    add_meter_usage(sub, "tokens", utc(2027, 4, 10), 10_000)

    billing_run(now=utc(2027, 5, 1, 0, 1), flush=False)

    second = Invoice.objects.exclude(pk=first.pk).get()
    # March rated again at 1,200,000 tokens: 1,000,000 × $0.000002 = $2.00 plus
    # 200,000 × $0.0000015 = $0.30, so $2.30 − $1.80 billed = $0.50 more.
    # April: 10,000 × $0.000002 = $0.02.
    assert lines_of(second) == [
        ("tokens", "BAND", 10_000, 2, "Tokens: 10,000 × $0.002 / 1K (1–10,000 tokens)"),
        (
            "tokens",
            "LATE_USAGE",
            1,
            50,
            f"Tokens: late usage: 300,000 tokens of the period of invoice "
            f"{first.number}, counted after it was issued",
        ),
    ]
    late = second.lines.get(kind="LATE_USAGE")
    assert (late.period_start, late.period_end) == (utc(2027, 3, 1), utc(2027, 4, 1))
    assert second.total_minor == 52
    # And only once.
    billing_run(now=utc(2027, 6, 1, 0, 1), flush=False)
    assert Invoice.objects.filter(lines__kind="LATE_USAGE").count() == 1


def test_the_next_invoice_preview_has_each_meters_lines_as_invoiced(shop):
    """Flushed rows and units still in Redis alike."""
    from billing.selectors import next_invoice_preview
    from gateway import meter
    from gateway import redis as gateway_redis
    from gateway.services import usage_flush

    gateway_redis.reset_clients()
    gateway_redis.get_redis().flushdb()  # no unflushed requests of other tests
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    add_meter(shop.api, "credits", "Credits", "credit", source=MeterSource.OPERATIONS)
    tier = tier_with_meters(
        shop,
        usd("0.0004"),
        tokens=Pricing(
            model=PricingModel.GRADUATED,
            currency="usd",
            bands=(Band(1_000_000, D("0.000002")), Band(None, D("0.0000015"))),
        ),
        credits=usd("0.01"),
    )
    sub = shop.subscribe(tier, at=utc(2027, 3, 1))
    add_usage(sub, utc(2027, 3, 2), 12_345)
    add_meter_usage(sub, "tokens", utc(2027, 3, 2), 1_000_000)
    add_meter_usage(sub, "tokens", utc(2027, 3, 20, 5), 834_000)
    add_meter_usage(sub, "credits", utc(2027, 3, 21), 77)
    # 10,000 tokens still in the gateway's Redis, not flushed yet.
    bucket = meter.epoch_us(utc(2027, 3, 22, 4))
    redis = gateway_redis.get_redis()
    redis.hincrby(meter.LIVE, meter.usage_field(sub.pk, bucket, "tokens"), 10_000)
    sub.refresh_from_db()

    preview = next_invoice_preview(sub, utc(2027, 3, 25))
    usage_flush()
    billing_run(now=utc(2027, 4, 1, 0, 1), flush=False)

    invoice = Invoice.objects.get()
    shown = [(x.kind, x.quantity, x.amount_minor, x.description) for x in preview.lines]
    assert shown == [line[1:] for line in lines_of(invoice)]
    # 12,345 × $0.0004 = $4.94; 77 × $0.01 = $0.77; tokens 1,000,000 × $0.000002
    # = $2.00 and 844,000 × $0.0000015 = $1.266 → $1.27
    assert [line[0] for line in lines_of(invoice)] == [
        "requests",
        "credits",
        "tokens",
        "tokens",
    ]
    assert preview.at == invoice.period_end
    assert sum(x.amount_minor for x in preview.lines) == invoice.total_minor == 898
    assert invoice.rating["segments"][0]["meters"] == {
        "tokens": 1_844_000,
        "credits": 77,
    }
