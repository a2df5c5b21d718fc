"""Change tier: a preview of the next invoice first (the upgrade's prorations, by
the rating module); an upgrade applies at once, a downgrade at the next period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from billing.selectors import next_invoice_preview
from gateway.models import UsageRecord
from pricing.periods import period_bounds
from publisher import services as publisher_services
from publisher.models import BillingCycle, Tier
from store import previews, services
from store.models import Subscription, SubscriptionState
from tests.publisher.helpers import make_tier
from tests.store.conftest import (
    flat,
    freeze_store_clock,
    local,
    pay,
    per_request,
    store_url,
    subscribe_paid,
)

START = datetime(2026, 11, 1, tzinfo=UTC)
MIDDLE = datetime(2026, 11, 16, tzinfo=UTC)  # half of November's 30 days


@pytest.fixture
def platinum(shop) -> Tier:
    tier = make_tier(shop.org, "Platinum", price=flat("49.00"))
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, shop.metered, tier], actor=None
    )
    return tier


@pytest.fixture
def frozen(monkeypatch):
    """Freeze the store's clock (services and views) at `frozen.at`."""
    clock = SimpleNamespace(at=MIDDLE)
    freeze_store_clock(monkeypatch, clock)
    monkeypatch.setattr("store.views.clock", SimpleNamespace(now=lambda: clock.at))
    return clock


def place(sub: Subscription, start: datetime = START) -> Subscription:
    """Move a subscription's anchor to `start` (as if it began then)."""
    cycle = sub.tier_version.billing_cycle
    period = period_bounds(start, cycle, 0)
    Subscription.objects.filter(pk=sub.pk).update(
        started_at=start,
        current_period_start=period[0],
        current_period_end=period[1],
        next_invoice_at=period[1] if sub.tier.is_commercial else None,
    )
    sub.refresh_from_db()
    return sub


def used(sub: Subscription, at: datetime, count: int) -> None:
    UsageRecord.objects.create(
        organization=sub.organization, subscription=sub, hour=at, count=count
    )


@pytest.fixture
def gold_sub(world, shop, app, monetized, stripe_emulator, client_for, platinum):
    return place(
        subscribe_paid(client_for(world.subscriber), shop, app, stripe_emulator)
    )


def test_the_upgrade_preview_shows_prorations_and_the_next_invoice(
    world, shop, gold_sub, platinum, frozen, client_for
):
    used(gold_sub, START + timedelta(hours=5), 1234)
    page = client_for(world.subscriber).get(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/?tier={platinum.pk}")
    )
    html = page.content.decode()
    assert "applies now" in html
    # Half of the period is left: a credit of half of $19, a charge of half of $49.
    assert "Unused time on Gold (16 Nov 2026 00:00 – 1 Dec 2026 00:00 UTC)" in html
    assert "-$9.50" in html and "$24.50" in html
    assert "Flat fee 1 Dec 2026 – 1 Jan 2027" in html and "$49.00" in html
    assert "$64.00" in html  # -9.50 + 24.50 + 49.00
    assert "1,234 requests" in html
    assert "a whole period costs $19.00 on Gold and $49.00 on Platinum" in html
    assert Subscription.objects.get(pk=gold_sub.pk).tier == shop.gold  # nothing yet


def test_the_preview_is_an_htmx_partial_too(
    world, shop, gold_sub, platinum, frozen, client_for
):
    response = client_for(world.subscriber).get(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/"),
        {"tier": platinum.pk},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert "<html" not in html and "Change to Platinum now" in html


def test_confirming_an_upgrade_applies_it_now_and_records_it_for_billing(
    world, shop, gold_sub, platinum, frozen, client_for
):
    used(gold_sub, START + timedelta(hours=5), 1234)
    response = client_for(world.subscriber).post(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/"),
        {"tier": platinum.pk},
        follow=True,
    )
    html = response.content.decode()
    assert "Your subscription is now on Platinum." in html
    # The history names the move's tiers.
    assert f"{shop.gold.name} → Platinum" in html[html.index("History") :]
    sub = Subscription.objects.get(pk=gold_sub.pk)
    assert (sub.tier, sub.tier_version) == (platinum, platinum.current_version)
    assert sub.next_invoice_at == datetime(2026, 12, 1, tzinfo=UTC)
    event = sub.events.get(kind="tier_upgraded")
    assert event.at == MIDDLE
    assert (event.from_tier_version, event.to_tier_version) == (
        shop.gold.current_version,
        platinum.current_version,
    )
    assert event.data["usage_before"] == 1234 and event.data["prorated"] is True
    assert event.actor == world.subscriber


def test_after_an_upgrade_the_next_invoice_rates_each_side_on_its_tier(
    world, shop, app, monetized, stripe_emulator, client_for, frozen
):
    sub = place(
        subscribe_paid(
            client_for(world.subscriber), shop, app, stripe_emulator, tier=shop.metered
        )
    )
    used(sub, START + timedelta(hours=1), 1000)  # $1.00 on Metered at $0.001
    services.subscription_change_tier(subscription=sub, tier=shop.gold, actor=None)
    used(sub, MIDDLE + timedelta(hours=1), 500)  # included in Gold's flat fee
    sub.refresh_from_db()
    invoice = next_invoice_preview(sub, MIDDLE + timedelta(days=1))
    assert invoice.usage == 1500
    assert [(line.kind, line.amount_minor) for line in invoice.lines] == [
        ("USAGE", 100),
        ("PRORATION_CHARGE", 950),  # half of $19; Metered has no fee to credit
        ("FIXED", 1900),
    ]
    assert invoice.totals == [("usd", 2950)]


def test_a_downgrade_is_scheduled_for_the_next_period(
    world, shop, gold_sub, frozen, client_for
):
    client = client_for(world.subscriber)
    preview = client.get(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/?tier={shop.free.pk}")
    ).content.decode()
    assert "next period" in preview and "on 01 Dec 2026 00:00 UTC" in preview
    response = client.post(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/"),
        {"tier": shop.free.pk},
        follow=True,
    )
    html = response.content.decode()
    assert "Your subscription changes to Free on 01 Dec 2026." in html
    assert "Changes to <strong>Free</strong> on 01 Dec 2026 00:00 UTC." in html
    sub = Subscription.objects.get(pk=gold_sub.pk)
    assert sub.tier == shop.gold  # until the boundary
    assert (sub.scheduled_tier, sub.scheduled_tier_version) == (
        shop.free,
        shop.free.current_version,
    )
    event = sub.events.get(kind="tier_downgrade_scheduled")
    assert event.data == {"effective_at": "2026-12-01T00:00:00+00:00"}

    client.post(store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/unschedule/"))
    sub.refresh_from_db()
    assert sub.scheduled_tier is None and sub.scheduled_tier_version is None
    assert sub.events.filter(kind="tier_downgrade_unscheduled").exists()


def test_an_upgrade_from_free_asks_for_a_card_first(
    world, shop, app, monetized, stripe_emulator, client_for
):
    client = client_for(world.subscriber)
    sub = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    preview = client.get(
        store_url(shop.org, f"subscriptions/{sub.pk}/change/?tier={shop.gold.pk}")
    ).content.decode()
    assert "Add a card and change" in preview
    response = client.post(
        store_url(shop.org, f"subscriptions/{sub.pk}/change/"), {"tier": shop.gold.pk}
    )
    assert "/c/pay/" in response["Location"]
    sub.refresh_from_db()
    assert sub.tier == shop.free  # not before the card is saved

    client.get(local(pay(stripe_emulator, response["Location"])))
    sub.refresh_from_db()
    assert (sub.tier, sub.state) == (shop.gold, SubscriptionState.ACTIVE)
    assert sub.card_last4 == "4242"
    assert sub.next_invoice_at == sub.current_period_end
    assert sub.events.filter(kind="tier_upgraded").count() == 1


def test_during_a_trial_every_change_applies_at_once_without_proration(
    world, shop, app, monetized, stripe_emulator, client_for, platinum
):
    trial = make_tier(shop.org, "Trial Gold", price=flat("29.00", trial=14))
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, platinum, trial], actor=None
    )
    sub = subscribe_paid(
        client_for(world.subscriber), shop, app, stripe_emulator, tier=trial
    )
    preview = previews.tier_change_preview(
        subscription=sub, tier=shop.gold, now=sub.started_at + timedelta(days=2)
    )
    assert preview.applies_now and preview.proration == []
    services.subscription_change_tier(subscription=sub, tier=shop.gold, actor=None)
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.TRIALING and sub.tier == shop.gold
    assert sub.events.get(kind="tier_upgraded").data["prorated"] is False
    services.subscription_change_tier(subscription=sub, tier=shop.free, actor=None)
    sub.refresh_from_db()
    assert (sub.state, sub.tier, sub.trial_end, sub.next_invoice_at) == (
        SubscriptionState.ACTIVE,
        shop.free,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("new_price", "usage", "kind"),
    [
        (flat("49.00"), 0, previews.UPGRADE),  # higher fee
        (flat("9.00"), 0, previews.DOWNGRADE),  # lower fee
        (per_request("0.001"), 0, previews.DOWNGRADE),  # $0 vs $19 at no usage
        (per_request("0.001"), 100_000, previews.UPGRADE),  # $100 vs $19
        (flat("49.00", currency="eur"), 0, previews.DOWNGRADE),  # next period
        (flat("190.00", cycle=BillingCycle.YEAR), 0, previews.DOWNGRADE),
        (flat("19.00"), 0, previews.DOWNGRADE),  # same price, same quota
    ],
)
def test_what_counts_as_an_upgrade(world, shop, app, new_price, usage, kind):
    sub = Subscription.objects.create(
        organization=shop.org,
        application=app,
        api=shop.api,
        tier=shop.gold,
        tier_version=shop.gold.current_version,
        subscriber=world.subscriber,
        state=SubscriptionState.ACTIVE,
    )
    other = make_tier(shop.org, "Other", price=new_price, quota_limit=100_000)
    got, _why = previews.classify_change(
        subscription=sub, tier=other, version=other.current_version, usage=usage
    )
    assert got == kind


def test_between_free_tiers_the_change_applies_at_once(world, shop, app):
    bigger = make_tier(shop.org, "Free plus", quota_limit=5000)
    sub = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, bigger], actor=None
    )
    result = services.subscription_change_tier(
        subscription=sub, tier=bigger, actor=None
    )
    assert result.kind == "upgrade" and result.subscription.tier == bigger
    assert result.subscription.next_invoice_at is None


def test_changes_that_cannot_happen_are_refused(world, shop, gold_sub, platinum):
    with pytest.raises(ValidationError, match="already the subscription's tier"):
        services.subscription_change_tier(
            subscription=gold_sub, tier=shop.gold, actor=None
        )
    lonely = make_tier(shop.org, "Lonely", price=flat("5.00"))
    with pytest.raises(ValidationError, match="not offered"):
        services.subscription_change_tier(
            subscription=gold_sub, tier=lonely, actor=None
        )
    services.subscription_cancel(subscription=gold_sub, actor=None)
    with pytest.raises(ValidationError, match="resume it"):
        services.subscription_change_tier(
            subscription=gold_sub, tier=platinum, actor=None
        )
    gold_sub.refresh_from_db()
    services.subscription_cancel(subscription=gold_sub, actor=None, at_period_end=False)
    with pytest.raises(ValidationError, match="cancelled cannot change"):
        services.subscription_change_tier(
            subscription=gold_sub, tier=platinum, actor=None
        )


def test_a_paid_tier_is_unavailable_while_monetization_is_off(
    world, shop, app, client_for
):
    sub = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    client = client_for(world.subscriber)
    page = client.get(store_url(shop.org, f"subscriptions/{sub.pk}/change/")).content
    assert b"Not available yet" in page
    response = client.post(
        store_url(shop.org, f"subscriptions/{sub.pk}/change/"), {"tier": shop.gold.pk}
    )
    assert response.status_code == 200
    sub.refresh_from_db()
    assert sub.tier == shop.free


def test_another_subscribers_subscription_cannot_be_changed(
    world, shop, gold_sub, platinum, client_for
):
    for user in (world.publisher, world.outsider):
        response = client_for(user).post(
            store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/"),
            {"tier": platinum.pk},
        )
        assert response.status_code == 404
    gold_sub.refresh_from_db()
    assert gold_sub.tier == shop.gold


def test_a_downgrade_to_free_is_refused_while_another_application_is_free(
    world, shop, gold_sub, frozen, client_for
):
    other = services.application_create(
        organization=shop.org, owner=world.subscriber, name="Hobby"
    )
    services.subscription_create(
        application=other, api=shop.api, tier=shop.free, actor=world.subscriber
    )

    response = client_for(world.subscriber).post(
        store_url(shop.org, f"subscriptions/{gold_sub.pk}/change/"),
        {"tier": shop.free.pk},
    )

    assert response.status_code == 200
    assert "You already use a free tier of Weather API v1 with Hobby" in (
        response.content.decode()
    )
    sub = Subscription.objects.get(pk=gold_sub.pk)
    assert sub.scheduled_tier is None


def test_a_scheduled_downgrade_to_free_holds_the_free_tier(
    world, shop, gold_sub, frozen
):
    services.subscription_change_tier(
        subscription=gold_sub, tier=shop.free, actor=world.subscriber
    )
    other = services.application_create(
        organization=shop.org, owner=world.subscriber, name="Hobby"
    )

    with pytest.raises(ValidationError, match="with Dashboard"):
        services.subscription_create(
            application=other, api=shop.api, tier=shop.free, actor=world.subscriber
        )
