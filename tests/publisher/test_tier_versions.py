"""Tier versions: a tier with subscribers is never silently repriced."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing.rating import Pricing, PricingModel
from publisher import services
from publisher.models import TierVersion
from tests.publisher.helpers import make_api, make_tier, per_unit, subscribe
from tests.publisher.test_tiers import commercial, url

D = Decimal


@pytest.fixture
def tier(world):
    return make_tier(world.org, name="Metered", price=per_unit("0.0004"))


@pytest.fixture
def api(world, tier):
    return make_api(world.org, tiers=[tier], publish=True)


def reprice(tier, price: str, *, migrate: bool = False, **limits):
    return services.tier_update(
        tier=tier,
        actor=None,
        name=tier.name,
        limits=services.TierLimits(**limits),
        price=per_unit(price),
        migrate_existing=migrate,
    )


@pytest.mark.django_db
def test_a_price_change_without_subscriptions_edits_the_version_in_place(tier):
    result = reprice(tier, "0.0005")
    tier.refresh_from_db()
    assert result.price_outcome == "edited"
    assert tier.versions.count() == 1
    assert tier.current_version.pricing().unit_price == D("0.0005")


@pytest.mark.django_db
def test_a_price_change_with_subscribers_makes_a_new_version(world, tier, api):
    sub = subscribe(api, tier, world.subscriber)
    v1 = tier.current_version

    result = reprice(tier, "0.0006", migrate=True)

    tier.refresh_from_db()
    sub.refresh_from_db()
    assert result.price_outcome == "new_version"
    assert tier.current_version.number == 2
    assert tier.current_version.pricing().unit_price == D("0.0006")
    assert tier.current_version.migrate_existing is True
    assert sub.tier_version == v1
    v1.refresh_from_db()
    assert v1.pricing().unit_price == D(
        "0.0004"
    )  # the price subscribers were sold stays


@pytest.mark.django_db
def test_a_version_a_cancelled_subscription_used_is_not_edited(world, tier, api):
    # Its final invoice may still be rated with that version.
    subscribe(api, tier, world.subscriber, state="CANCELLED")
    assert reprice(tier, "0.0009").price_outcome == "new_version"
    assert tier.versions.count() == 2


@pytest.mark.django_db
def test_changing_only_limits_never_makes_a_version(world, tier, api):
    subscribe(api, tier, world.subscriber)
    result = reprice(tier, "0.0004", quota_limit=50, stop_on_quota_reach=False)
    tier.refresh_from_db()
    assert (result.price_outcome, result.limits_changed) == ("unchanged", True)
    assert tier.versions.count() == 1
    assert (tier.quota_limit, tier.stop_on_quota_reach) == (50, False)


@pytest.mark.django_db
def test_a_free_tier_saved_again_is_unchanged(world):
    tier = make_tier(world.org, name="Free")
    result = services.tier_update(
        tier=tier,
        actor=None,
        name="Free",
        limits=services.TierLimits(),
        price=services.TierPrice(Pricing(model=PricingModel.FREE, currency="eur")),
    )
    assert result.price_outcome == "unchanged"


@pytest.mark.django_db
def test_going_commercial_makes_a_version_and_changes_the_plan(world):
    tier = make_tier(world.org, name="Free")
    api = make_api(world.org, tiers=[tier], publish=True)
    subscribe(api, tier, world.subscriber)
    reprice(tier, "0.001")
    tier.refresh_from_db()
    assert tier.billing_plan == "COMMERCIAL"
    assert [v.pricing_model for v in tier.versions.order_by("number")] == [
        "FREE",
        "PER_UNIT",
    ]


@pytest.mark.django_db
def test_the_edit_view_records_the_choice_for_existing_subscribers(
    world, client_for, tier, api
):
    subscribe(api, tier, world.subscriber)
    client = client_for(world.publisher)
    edit = client.get(url(world.org, f"{tier.pk}/edit/")).content.decode()
    assert "1 live subscription on this tier" in edit

    response = client.post(
        url(world.org, f"{tier.pk}/edit/"),
        commercial(
            "PER_UNIT", name="Metered", unit_price="0.0007", migrate_existing="on"
        ),
        follow=True,
    )
    assert "version 2" in response.content.decode()
    v2 = TierVersion.objects.get(tier=tier, number=2)
    assert v2.migrate_existing and v2.created_by == world.publisher

    page = client.get(url(world.org, f"{tier.pk}/")).content.decode()
    assert "v2" in page and "v1" in page
    assert "moved here at their next period" in page


@pytest.mark.django_db
def test_a_bad_edit_writes_nothing(world, client_for, tier, api):
    subscribe(api, tier, world.subscriber)
    response = client_for(world.publisher).post(
        url(world.org, f"{tier.pk}/edit/"),
        commercial("PER_UNIT", name="Metered", unit_price="-1", quota_limit="7"),
    )
    assert response.status_code == 200
    tier.refresh_from_db()
    assert tier.versions.count() == 1 and tier.quota_limit is None


# -- tier_version_for_next_period (billing asks it when a period opens) --------------


def next_version(sub):
    return services.tier_version_for_next_period(
        tier_id=sub.tier_id, version=sub.tier_version
    )


@pytest.mark.django_db
def test_without_a_newer_version_a_subscription_keeps_its_own(world, tier, api):
    sub = subscribe(api, tier, world.subscriber)
    assert next_version(sub) == tier.current_version


@pytest.mark.django_db
def test_a_newer_version_that_moves_existing_subscribers_is_next(world, tier, api):
    sub = subscribe(api, tier, world.subscriber)
    reprice(tier, "0.0006", migrate=True)
    tier.refresh_from_db()
    assert next_version(sub) == tier.current_version


@pytest.mark.django_db
def test_a_newer_version_that_keeps_existing_subscribers_is_not(world, tier, api):
    sub = subscribe(api, tier, world.subscriber)
    v1 = sub.tier_version
    reprice(tier, "0.0006", migrate=False)
    assert next_version(sub) == v1


@pytest.mark.django_db
def test_a_later_keep_version_does_not_undo_an_earlier_move(world, tier, api):
    sub = subscribe(api, tier, world.subscriber)
    reprice(tier, "0.0006", migrate=True)  # v2: move v1 subscribers
    v2 = tier.versions.get(number=2)
    subscribe(api, tier, world.owner)  # someone on v2, so v3 is a new version
    reprice(tier, "0.0007", migrate=False)  # v3: keep existing subscribers
    assert tier.versions.count() == 3
    assert next_version(sub) == v2
