"""My subscriptions: each state with what to do next, usage against quota, the
next-invoice preview, invoices (from billing) and the history."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from apimon import stripe_client as sc
from billing.engine import billing_run, settle_delay
from billing.models import Invoice, InvoiceStatus
from billing.push import invoice_push
from billing.selectors import next_invoice_preview
from gateway import meter
from gateway.models import UsageRecord
from pricing.rating import Pricing, PricingModel
from store import services
from store.models import Subscription, SubscriptionState
from tests.billing.test_meters import add_meter, add_meter_usage, tier_with_meters
from tests.store.conftest import local, pay, store_url, subscribe_paid


@contextmanager
def freeze(at):
    """The store's page at `at` (its clock; the preview is computed for then)."""
    with mock.patch("store.views.clock.now", return_value=at):
        yield


@pytest.fixture
def gold_sub(world, shop, app, monetized, stripe_emulator, client_for):
    return subscribe_paid(client_for(world.subscriber), shop, app, stripe_emulator)


DECLINES_ON_CHARGE = "4000 0000 0000 0341"


def page_of(client, sub) -> str:
    response = client.get(store_url(sub.organization, f"subscriptions/{sub.pk}/"))
    assert response.status_code == 200
    return response.content.decode()


def test_the_list_shows_only_my_subscriptions(world, shop, app, client_for):
    mine = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    their_app = services.application_create(
        organization=shop.org, owner=world.publisher, name="Their app"
    )
    services.subscription_create(
        application=their_app, api=shop.api, tier=shop.free, actor=world.publisher
    )
    html = client_for(world.subscriber).get(store_url(shop.org, "subscriptions/"))
    html = html.content.decode()
    assert "Dashboard" in html and "Their app" not in html
    assert store_url(shop.org, f"subscriptions/{mine.pk}/") in html


def test_an_active_paid_subscription_shows_usage_quota_and_next_invoice(
    world, gold_sub, client_for
):
    html = page_of(client_for(world.subscriber), gold_sub)
    # Just activated: the first period's in-advance fee is the next invoice…
    start, end = gold_sub.current_period_start, gold_sub.current_period_end
    assert "The fee of your first period, invoiced as it starts." in html
    assert f"Flat fee {start.day} {start:%b %Y} – {end.day} {end:%b %Y}" in html
    assert "$19.00" in html
    # …and once billing has issued it, the one at the end of the period.
    Subscription.objects.filter(pk=gold_sub.pk).update(next_invoice_at=end)
    html = page_of(client_for(world.subscriber), gold_sub)
    assert f"Estimated for {end:%d %b %Y %H:%M} UTC" in html
    assert "first period" not in html
    assert "0 requests" in html and "100,000 requests per calendar month" in html
    assert 'class="card usage-chart"' in html  # the gateway's live chart
    assert "Invoices appear here once they are issued." in html
    assert "Change tier" in html and "Cancel…" in html


def test_the_page_shows_the_next_invoice_billing_will_issue(
    world, shop, app, monetized, stripe_emulator, client_for, clean_redis
):
    sub = subscribe_paid(
        client_for(world.subscriber), shop, app, stripe_emulator, tier=shop.metered
    )
    start, end = sub.current_period_start, sub.current_period_end
    UsageRecord.objects.create(
        organization=shop.org, subscription=sub, hour=start, count=1000
    )
    bucket = meter.epoch_us(start + timedelta(hours=1))
    clean_redis.hincrby(meter.LIVE, meter.usage_field(sub.pk, bucket), 500)
    now = start + timedelta(hours=2)

    with freeze(now):
        html = page_of(client_for(world.subscriber), sub)

    # $0.001 per request: 1,000 flushed and 500 still in Redis.
    assert f"Estimated for {end:%d %b %Y %H:%M} UTC" in html
    assert "with your usage so far (1,500 requests)" in html
    assert "$1.50" in html
    preview = next_invoice_preview(sub, now)
    assert preview.total_minor == 150
    assert next(line.description for line in preview.lines) in html


def test_the_subscription_page_keeps_a_fixed_number_of_queries(
    world, gold_sub, client_for, django_assert_max_num_queries
):
    client = client_for(world.subscriber)
    for _ in range(5):
        services.api_key_create(application=gold_sub.application, actor=None)
    # The next-invoice preview is the billing engine's dry run: it reads what a
    # billing batch reads (events, earlier invoice, versions, prices) once; the
    # tier's meter prices are read once more for the page's price lines.
    with django_assert_max_num_queries(23):
        page_of(client, gold_sub)


@pytest.mark.parametrize(
    ("state", "fields", "expected"),
    [
        ("PENDING_PAYMENT", {}, "Complete payment"),
        (
            "ON_HOLD",
            {"on_hold_since": "now", "grace_until": "later"},
            "Payment failed — update your card",
        ),
        ("BLOCKED", {}, "The grace period after a failed payment is over"),
        (
            "BLOCKED",
            {"blocked_by_publisher": True, "blocked_reason": "Abusive traffic"},
            "Abusive traffic",
        ),
        ("TRIALING", {"trial_end": "later"}, "Nothing is charged during the trial"),
        ("CANCELLED", {"cancelled_at": "now"}, "Cancelled on"),
    ],
)
def test_each_state_says_what_to_do_next(
    world, gold_sub, client_for, state, fields, expected
):
    now = timezone.now()
    values = {"now": now, "later": now + timedelta(days=3)}
    Subscription.objects.filter(pk=gold_sub.pk).update(
        state=state, **{k: values.get(v, v) for k, v in fields.items()}
    )
    assert expected in page_of(client_for(world.subscriber), gold_sub)


def test_update_card_after_a_failed_payment_pays_the_invoice_and_reactivates(
    world,
    shop,
    app,
    monetized,
    stripe_emulator,
    client_for,
    django_capture_on_commit_callbacks,
):
    client = client_for(world.subscriber)
    # A card that attaches at Checkout but declines every charge.
    sub = subscribe_paid(client, shop, app, stripe_emulator, card=DECLINES_ON_CHARGE)
    with django_capture_on_commit_callbacks(execute=True):
        # The start invoice, due once usage has settled.
        due = sub.next_invoice_at + settle_delay()
        billing_run(now=due, flush=False, enqueue_push=False)
        invoice_push(invoice_id=Invoice.objects.get(subscription=sub).pk)
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ON_HOLD
    assert Invoice.objects.get(subscription=sub).status == InvoiceStatus.OPEN

    response = client.post(
        store_url(sub.organization, f"subscriptions/{sub.pk}/checkout/")
    )
    assert "/c/pay/" in response["Location"]
    back = pay(stripe_emulator, response["Location"], "5555 5555 5555 4444")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(local(back), follow=True)
    sub.refresh_from_db()
    assert sub.events.filter(kind="card_updated").exists()
    assert sub.card_brand == "mastercard" and sub.card_last4 == "4444"
    # The failed invoice was paid with this subscription's new card.
    paid_with = sc.get_client().v1.invoices.retrieve(
        Invoice.objects.get(subscription=sub).stripe_invoice_id,
        {},
        sc.request_options(account=monetized),
    )
    assert paid_with.status == "paid"
    # Billing paid the failed invoice with the new card: the subscription recovered
    # (the session metadata said "update_card": it was not activated a second time).
    invoice = Invoice.objects.get(subscription=sub)
    assert invoice.status == InvoiceStatus.PAID
    assert sub.state == SubscriptionState.ACTIVE
    assert sub.events.filter(kind="payment_recovered").count() == 1
    assert sub.events.filter(kind="activated").count() == 1
    assert (
        "Mastercard •••• 4444"
        in client.get(
            store_url(sub.organization, f"subscriptions/{sub.pk}/")
        ).content.decode()
    )


def test_the_billing_engines_invoices_partial_is_included_when_it_exists(
    world, gold_sub, client_for, settings, tmp_path
):
    partial = tmp_path / "billing" / "_subscription_invoices.html"
    partial.parent.mkdir()
    partial.write_text("<p>INVOICES OF {{ subscription.pk }}</p>")
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}
    ]
    html = page_of(client_for(world.subscriber), gold_sub)
    assert f"INVOICES OF {gold_sub.pk}" in html


def test_the_history_lists_every_change(world, gold_sub, client_for):
    html = page_of(client_for(world.subscriber), gold_sub)
    for label in ("Subscribed", "Checkout opened", "Card saved", "Activated"):
        assert label in html


def test_another_subscribers_subscription_is_404(world, gold_sub, client_for):
    for user in (world.publisher, world.owner, world.outsider):
        client = client_for(user)
        for path in ["", "change/", "cancel/", "checkout/return/?session_id=x"]:
            url = store_url(
                gold_sub.organization, f"subscriptions/{gold_sub.pk}/{path}"
            )
            assert client.get(url).status_code == 404
        url = store_url(gold_sub.organization, f"subscriptions/{gold_sub.pk}/checkout/")
        assert client.post(url).status_code == 404


def test_a_checkout_cancelled_on_stripe_comes_back_with_a_note(
    world, gold_sub, client_for
):
    client = client_for(world.subscriber)
    response = client.get(
        store_url(
            gold_sub.organization, f"subscriptions/{gold_sub.pk}/?checkout=cancelled"
        )
    )
    assert "Checkout was cancelled: no card was saved." in response.content.decode()


def test_the_history_names_states_in_words(world, gold_sub, client_for):
    html = page_of(client_for(world.subscriber), gold_sub)
    history = html[html.index("History") :]
    assert "pending payment → active" in history
    assert "PENDING_PAYMENT" not in history and "pending_payment" not in history


def test_the_next_invoice_names_each_priced_meters_usage_so_far(
    world, shop, app, monetized, stripe_emulator, client_for, clean_redis
):
    add_meter(shop.api, "tokens", "Tokens", "token", scale=1000)
    tier = tier_with_meters(
        shop,
        Pricing(PricingModel.PER_UNIT, "usd", unit_price=Decimal("0.001")),
        name="Tokens",
        tokens=Pricing(PricingModel.PER_UNIT, "usd", unit_price=Decimal("0.000002")),
    )
    sub = subscribe_paid(
        client_for(world.subscriber), shop, app, stripe_emulator, tier=tier
    )
    start = sub.current_period_start
    UsageRecord.objects.create(
        organization=shop.org, subscription=sub, hour=start, count=1000
    )
    add_meter_usage(sub, "tokens", start, 250_000)

    with freeze(start + timedelta(hours=2)):
        html = page_of(client_for(world.subscriber), sub)

    # $1.00 for the requests and 250,000 × $0.000002 = $0.50 for the tokens.
    assert "with your usage so far (1,000 requests, 250,000 tokens)" in html
    assert "$1.50" in html
