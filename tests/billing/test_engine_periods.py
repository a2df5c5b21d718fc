"""Period boundaries through the engine (Jan 31, Feb 29, year end, weeks, years),
exact totals for every pricing model in each currency class, late usage, the usage
flush before a period closes, version migration and retired APIs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.engine import billing_run
from billing.models import Invoice
from publisher import services as publisher_services
from publisher.models import LifecycleAction
from store.models import SubscriptionState
from tests.billing.conftest import (
    add_usage,
    flat,
    graduated,
    overage,
    per_unit,
    utc,
    volume,
)

pytestmark = pytest.mark.django_db


def run(at, **kwargs):
    return billing_run(now=at, flush=False, **kwargs)


def fees(sub):
    """(period start, period end) of every fixed fee billed, in order."""
    return [
        (line.period_start, line.period_end)
        for invoice in Invoice.objects.filter(subscription=sub).order_by("pk")
        for line in invoice.lines.filter(kind="FIXED")
    ]


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        # Jan 31 → Feb 28 (2027 is a common year) → Mar 31 → Apr 30
        (
            utc(2027, 1, 31, 10),
            [
                (utc(2027, 1, 31, 10), utc(2027, 2, 28, 10)),
                (utc(2027, 2, 28, 10), utc(2027, 3, 31, 10)),
                (utc(2027, 3, 31, 10), utc(2027, 4, 30, 10)),
            ],
        ),
        # Jan 31 of a leap year → Feb 29
        (
            utc(2028, 1, 31, 10),
            [
                (utc(2028, 1, 31, 10), utc(2028, 2, 29, 10)),
                (utc(2028, 2, 29, 10), utc(2028, 3, 31, 10)),
                (utc(2028, 3, 31, 10), utc(2028, 4, 30, 10)),
            ],
        ),
        # Across the year end
        (
            utc(2027, 11, 30, 23, 59, 59),
            [
                (utc(2027, 11, 30, 23, 59, 59), utc(2027, 12, 30, 23, 59, 59)),
                (utc(2027, 12, 30, 23, 59, 59), utc(2028, 1, 30, 23, 59, 59)),
                (utc(2028, 1, 30, 23, 59, 59), utc(2028, 2, 29, 23, 59, 59)),
            ],
        ),
    ],
)
def test_monthly_periods_keep_their_anchor(shop, anchor, expected):
    sub = shop.subscribe(shop.tier(flat("10.00")), at=anchor)

    run(expected[-1][0] + timedelta(minutes=5))

    assert fees(sub) == expected


def test_a_yearly_period_anchored_on_feb_29(shop):
    sub = shop.subscribe(shop.tier(flat("120.00"), cycle="year"), at=utc(2028, 2, 29))

    run(utc(2029, 3, 1))

    assert fees(sub) == [
        (utc(2028, 2, 29), utc(2029, 2, 28)),
        (utc(2029, 2, 28), utc(2030, 2, 28)),
    ]


def test_weekly_periods_are_seven_days(shop):
    sub = shop.subscribe(shop.tier(flat("5.00"), cycle="week"), at=utc(2027, 12, 29))

    run(utc(2028, 1, 5, 0, 1))

    assert fees(sub) == [
        (utc(2027, 12, 29), utc(2028, 1, 5)),
        (utc(2028, 1, 5), utc(2028, 1, 12)),
    ]


# -- exact totals: every pricing model × the currency classes ------------------------

CASES = [
    # (pricing, usage, expected lines (kind, amount), total) — worked by hand
    (per_unit("0.0004", "usd"), 12_345, [("USAGE", 494)], 494),  # 4.938 → 4.94
    (per_unit("0.5", "jpy"), 12_345, [("USAGE", 6173)], 6173),  # 6,172.5 → 6,173
    (per_unit("0.0004", "kwd"), 12_345, [("USAGE", 4940)], 4940),  # 4.938 → 4.940
    # 20.00 fee; 12,345 − 10,000 = 2,345 over → 24 blocks of 100 × 0.05 = 1.20
    (
        overage("20.00", 10_000, "0.05", 100, "eur"),
        12_345,
        [("OVERAGE", 120), ("FIXED", 2000)],
        2120,
    ),
    # ¥2,000 fee; 2,345 over × ¥0.3 = ¥703.5 → ¥704
    (
        overage("2000", 10_000, "0.3", 1, "jpy"),
        12_345,
        [("OVERAGE", 704), ("FIXED", 2000)],
        2704,
    ),
    # BHD 5.125 fee → 5.130 (10-fils steps); 2,345 × 0.0021 = 4.9245 → 4.920
    # (rounded once, from the exact amount, to 10 fils: not 4.925 then 4.930)
    (
        overage("5.125", 10_000, "0.0021", 1, "bhd"),
        12_345,
        [("OVERAGE", 4920), ("FIXED", 5130)],
        10050,
    ),
    # graduated: 1,000 × 0 + flat 5.00; 9,000 × 0.002 = 18.00; 2,345 × 0.001 = 2.345
    # → 2.35
    (
        graduated("usd"),
        12_345,
        [("BAND", 0), ("BAND_FLAT", 500), ("BAND", 1800), ("BAND", 235)],
        2535,
    ),
    # in yen: flat ¥5; 9,000 × 0.002 = ¥18; 2,345 × 0.001 = ¥2.345 → ¥2
    (
        graduated("jpy"),
        12_345,
        [("BAND", 0), ("BAND_FLAT", 5), ("BAND", 18), ("BAND", 2)],
        25,
    ),
    # in dinars (3 decimals, charged in 10-fils steps): flat 5.000; 9,000 × 0.002 =
    # 18.000; 2,345 × 0.001 = 2.345 → 2.350 (half up to 10 fils)
    (
        graduated("bhd"),
        12_345,
        [("BAND", 0), ("BAND_FLAT", 5000), ("BAND", 18000), ("BAND", 2350)],
        25350,
    ),
    # volume: 12,345 in band 3: × 0.002 = 24.69, + band 3's flat 10.00
    (volume("usd"), 12_345, [("BAND", 2469), ("BAND_FLAT", 1000)], 3469),
    # in yen (no decimals): 12,345 × ¥0.002 = ¥24.69 → ¥25, + band 3's flat ¥10
    (volume("jpy"), 12_345, [("BAND", 25), ("BAND_FLAT", 10)], 35),
    # 4,100 in band 2: × ¥0.005 = ¥20.5 → ¥21 (half up), + band 2's flat ¥2
    (volume("jpy"), 4_100, [("BAND", 21), ("BAND_FLAT", 2)], 23),
    # in dinars: 24.690 + 10.000
    (volume("omr"), 12_345, [("BAND", 24690), ("BAND_FLAT", 10000)], 34690),
    # zero usage: graduated still enters band 1 (its flat fee), volume band 1 none
    (graduated("usd"), 0, [("BAND_FLAT", 500)], 500),
    (flat("49.99", "usd"), 12_345, [("FIXED", 4999)], 4999),
    (flat("4900", "jpy"), 12_345, [("FIXED", 4900)], 4900),
    # BHD 4.995 → 5.000: Stripe charges whole multiples of 10 fils (half up)
    (flat("4.995", "bhd"), 12_345, [("FIXED", 5000)], 5000),
]


@pytest.mark.parametrize(("pricing", "usage", "expected", "total"), CASES)
def test_renewal_totals_by_hand(shop, pricing, usage, expected, total):
    sub = shop.subscribe(shop.tier(pricing), at=utc(2027, 1, 1))
    run(utc(2027, 1, 1, 0, 1))  # the start invoice, if any
    if usage:
        add_usage(sub, utc(2027, 1, 15, 12), usage)

    run(utc(2027, 2, 1, 0, 1))

    renewal = Invoice.objects.get(kind="renewal")
    assert [(x.kind, x.amount_minor) for x in renewal.lines.all()] == expected
    assert renewal.total_minor == total
    assert renewal.currency == pricing.currency


# -- late usage and the flush ---------------------------------------------------------


def test_usage_counted_after_a_period_was_closed_is_billed_on_the_next_invoice(shop):
    tier = shop.tier(overage("10.00", included=100, price="0.10"))
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 20), 120)
    run(utc(2027, 2, 1, 0, 1))
    first = Invoice.objects.get(kind="renewal")
    assert [(x.kind, x.quantity) for x in first.lines.all()] == [
        ("OVERAGE", 20),
        ("FIXED", 1),
    ]
    # 30 more requests of January arrive late (e.g. a gateway's ingest batch).
    add_usage(sub, utc(2027, 1, 31, 23), 30)
    add_usage(sub, utc(2027, 2, 10), 50)

    run(utc(2027, 3, 1, 0, 1))

    second = Invoice.objects.filter(kind="renewal").latest("pk")
    late = second.lines.get(kind="LATE_USAGE")
    # 150 − 100 included = 50 over ($5.00) instead of 20 ($2.00): $3.00 more
    assert late.amount_minor == 300
    assert "30 requests" in late.description
    assert (late.period_start, late.period_end) == (utc(2027, 1, 1), utc(2027, 2, 1))
    assert second.total_minor == 1000 + 300  # Feb within its allowance + March fee
    # And only once.
    run(utc(2027, 4, 1, 0, 1))
    assert Invoice.objects.filter(lines__kind="LATE_USAGE").count() == 1


@pytest.mark.redis
def test_the_job_flushes_the_gateway_counters_before_closing(shop, settings):
    from gateway import meter
    from gateway import redis as gateway_redis

    gateway_redis.reset_clients()
    client = gateway_redis.get_redis()
    client.flushdb()
    sub = shop.subscribe(shop.tier(per_unit("0.01")), at=utc(2027, 1, 1))
    # 7 requests in the period's last hour, still in Redis
    bucket = int(utc(2027, 1, 31, 23).timestamp() * 1_000_000)
    client.hincrby(meter.LIVE, meter.usage_field(sub.pk, bucket), 7)

    billing_run(now=utc(2027, 2, 1, 0, 1))  # flush=True by default

    assert Invoice.objects.get().total_minor == 7
    client.flushdb()


def test_a_period_is_closed_only_after_the_settle_delay(shop, settings):
    settings.BILLING_USAGE_SETTLE_SECONDS = 35
    sub = shop.subscribe(shop.tier(per_unit("0.01")), at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 3), 1)

    assert run(utc(2027, 2, 1, 0, 0, 34)).steps == 0
    assert run(utc(2027, 2, 1, 0, 0, 35)).steps == 1


# -- versions, blocks, retirement ------------------------------------------------------


def test_the_publishers_new_version_applies_from_the_next_period(shop):
    tier = shop.tier(flat("10.00"))
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    run(utc(2027, 1, 1, 0, 1))
    publisher_services.tier_update(
        tier=tier,
        actor=None,
        name=tier.name,
        limits=publisher_services.TierLimits.of(tier),
        price=publisher_services.TierPrice(pricing=flat("12.00")),
        migrate_existing=True,
    )

    run(utc(2027, 2, 1, 0, 1))

    tier.refresh_from_db()
    sub.refresh_from_db()
    assert sub.tier_version == tier.current_version
    assert Invoice.objects.get(kind="renewal").total_minor == 1200
    assert sub.events.filter(kind="tier_version_migrated").exists()


def test_a_blocked_subscription_pays_its_usage_but_no_new_fee(shop):
    tier = shop.tier(overage("10.00", included=0, price="0.01"))
    sub = shop.subscribe(tier, at=utc(2027, 1, 1))
    run(utc(2027, 1, 1, 0, 1))
    add_usage(sub, utc(2027, 1, 5), 100)
    sub.refresh_from_db()
    sub.state = SubscriptionState.BLOCKED
    sub.blocked_by_publisher = True
    sub.save()

    run(utc(2027, 2, 1, 0, 1))

    renewal = Invoice.objects.get(kind="renewal")
    assert [(x.kind, x.amount_minor) for x in renewal.lines.all()] == [("OVERAGE", 100)]


def test_retiring_an_api_issues_final_invoices_for_usage_to_date(
    shop, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    tier = shop.tier(per_unit("0.01"))
    publisher_services.api_transition(
        api=shop.api, action=LifecycleAction.PUBLISH, actor=None
    )
    start = timezone.now() - timedelta(days=3)
    sub = shop.subscribe(tier, at=start)
    add_usage(sub, start + timedelta(hours=5), 42)

    with django_capture_on_commit_callbacks(execute=True):
        publisher_services.api_transition(
            api=shop.api, action=LifecycleAction.RETIRE, actor=None
        )
    sub.refresh_from_db()
    assert sub.next_invoice_at == sub.cancelled_at

    run(sub.cancelled_at + timedelta(minutes=1))

    final = Invoice.objects.get()
    assert (final.kind, final.total_minor) == ("final", 42)
    assert final.period_end == sub.cancelled_at


# -- batching ------------------------------------------------------------------------


def test_the_query_count_does_not_grow_with_the_number_of_subscriptions(shop):
    tiers = [
        shop.tier(per_unit("0.001"), name="A"),
        shop.tier(overage("5.00", included=10, price="0.1"), name="B"),
        shop.tier(graduated(), name="C"),
    ]

    def make(n, offset):
        subs = [
            shop.subscribe(
                tiers[i % 3], at=utc(2027, 1, 1), app_name=f"app{offset + i}"
            )
            for i in range(n)
        ]
        for sub in subs:
            add_usage(sub, utc(2027, 1, 2), 50)

    make(6, 0)
    with CaptureQueriesContext(connection) as few:
        run(utc(2027, 2, 1, 0, 1), enqueue_push=False)
    Invoice.objects.all().delete()
    make(30, 100)
    with CaptureQueriesContext(connection) as many:
        run(utc(2027, 2, 1, 0, 1), enqueue_push=False)

    assert Invoice.objects.filter(kind="renewal").count() == 30
    assert len(many) == len(few)
