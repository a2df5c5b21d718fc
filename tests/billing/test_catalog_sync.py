"""Sync afterwards: a new commercial tier version, a newly offered API, a retired API
→ Prices/Products created or archived on the connected account, in Celery, retried
with backoff; never a duplicate."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apimon import stripe_client as sc
from apimon.payment_errors import StripeUnavailable
from billing import catalog as catalog_module
from billing.catalog import FIXED_FEE, catalog_sync, schedule_sync, version_prices
from billing.models import CatalogKind, CatalogObject
from billing.tasks import sync_catalog
from publisher.meters import meters_of
from publisher.models import ApiState, MeterPriceBand, PricingModel
from store.models import Application, Subscription, SubscriptionState
from tests.billing.conftest import make_api, make_tier, make_version, offer
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def monetized(paid_org, owner_client, connected, catalog):
    response = owner_client.post(
        reverse("monetization:enable", args=[paid_org.slug]), {"password": PASSWORD}
    )
    assert response.status_code == 302
    connected.refresh_from_db()
    return connected


def remote_prices(account: str, **filters) -> list:
    options = sc.request_options(account=account)
    return sc.get_client().v1.prices.list({"limit": 100, **filters}, options).data


def remote_products(account: str, **filters) -> list:
    options = sc.request_options(account=account)
    return sc.get_client().v1.products.list({"limit": 100, **filters}, options).data


def sync_now(org, capture):
    """What publisher services do after a change: schedule, then commit."""
    with capture(execute=True) as callbacks:
        schedule_sync(org.pk)
    return callbacks


def live(kind: str) -> int:
    return CatalogObject.objects.filter(kind=kind, retired_at=None).count()


def subscribe(org, api, version, subscriber) -> Subscription:
    application = Application.objects.create(
        organization=org, owner=subscriber, name=f"app {api.pk}-{version.pk}"
    )
    return Subscription.objects.create(
        organization=org,
        application=application,
        api=api,
        tier=version.tier,
        tier_version=version,
        subscriber=subscriber,
        state=SubscriptionState.ACTIVE,
    )


def test_a_new_tier_version_gets_a_price_and_the_unused_old_one_is_archived(
    paid_org, monetized, catalog, django_capture_on_commit_callbacks
):
    gold = catalog["gold"]
    old = gold.current_version
    new = make_version(gold, 2, PricingModel.FLAT, fixed_fee="59")
    gold.current_version = new
    gold.save()

    sync_now(paid_org, django_capture_on_commit_callbacks)

    active = {
        p.metadata["apimon_tier_version_id"]: p
        for p in remote_prices(monetized.account_id, active=True)
    }
    assert active[str(new.pk)].unit_amount == 5900
    assert str(old.pk) not in active
    archived = remote_prices(monetized.account_id, active=False)
    assert [p.metadata["apimon_tier_version_id"] for p in archived] == [str(old.pk)]
    assert live(CatalogKind.PRICE) == 3


def test_a_version_still_in_use_keeps_its_price(
    paid_org, monetized, catalog, world, django_capture_on_commit_callbacks
):
    gold = catalog["gold"]
    old = gold.current_version
    subscribe(paid_org, catalog["weather"], old, world.subscriber)
    new = make_version(gold, 2, PricingModel.FLAT, fixed_fee="59")
    gold.current_version = new
    gold.save()

    sync_now(paid_org, django_capture_on_commit_callbacks)

    active = {
        p.metadata["apimon_tier_version_id"]
        for p in remote_prices(monetized.account_id, active=True)
    }
    assert {str(old.pk), str(new.pk)} <= active
    assert live(CatalogKind.PRICE) == 4


def test_a_version_edited_in_place_gets_a_new_price(
    paid_org, monetized, catalog, django_capture_on_commit_callbacks
):
    version = catalog["metered"].current_version
    before = CatalogObject.objects.get(tier_version=version, retired_at=None)
    # nobody subscribed yet: edited in place
    version.meter_prices.filter(meter="requests").update(unit_price=Decimal("0.0005"))
    version.save()

    sync_now(paid_org, django_capture_on_commit_callbacks)

    now = CatalogObject.objects.get(tier_version=version, retired_at=None)
    assert now.stripe_id != before.stripe_id
    options = sc.request_options(account=monetized.account_id)
    price = sc.get_client().v1.prices.retrieve(now.stripe_id, {}, options)
    assert str(price.unit_amount_decimal) == "0.05"
    old = sc.get_client().v1.prices.retrieve(before.stripe_id, {}, options)
    assert old.active is False


def test_a_newly_offered_api_gets_a_product_and_prices(
    paid_org, monetized, catalog, django_capture_on_commit_callbacks
):
    geo = make_api(paid_org, "Geo")
    offer(geo, catalog["gold"])

    sync_now(paid_org, django_capture_on_commit_callbacks)

    products = {p.name: p for p in remote_products(monetized.account_id)}
    assert "Geo v1" in products
    geo_prices = [
        p
        for p in remote_prices(monetized.account_id)
        if p.product == products["Geo v1"].id
    ]
    assert [p.metadata["apimon_tier_id"] for p in geo_prices] == [
        str(catalog["gold"].pk)
    ]


def test_a_retired_api_is_archived_with_its_prices(
    paid_org, monetized, catalog, django_capture_on_commit_callbacks
):
    weather = catalog["weather"]
    weather.state = ApiState.RETIRED
    weather.save()

    sync_now(paid_org, django_capture_on_commit_callbacks)

    products = {
        p.metadata["apimon_api_id"]: p for p in remote_products(monetized.account_id)
    }
    assert products[str(weather.pk)].active is False
    assert products[str(catalog["maps"].pk)].active is True
    weather_prices = [
        p
        for p in remote_prices(monetized.account_id)
        if p.product == products[str(weather.pk)].id
    ]
    assert len(weather_prices) == 2 and not any(p.active for p in weather_prices)
    assert live(CatalogKind.PRODUCT) == 1 and live(CatalogKind.PRICE) == 1


def test_an_api_offered_again_reactivates_its_product(
    paid_org, monetized, catalog, django_capture_on_commit_callbacks
):
    maps = catalog["maps"]
    maps.offers.all().delete()
    sync_now(paid_org, django_capture_on_commit_callbacks)
    offer(maps, catalog["bands"])

    sync_now(paid_org, django_capture_on_commit_callbacks)

    products = [p for p in remote_products(monetized.account_id) if p.name == "Maps v1"]
    assert len(products) == 1 and products[0].active
    assert len(remote_prices(monetized.account_id)) == 3


def test_a_renamed_api_renames_its_product(
    paid_org, monetized, catalog, django_capture_on_commit_callbacks
):
    catalog["maps"].name = "Atlas"
    catalog["maps"].save()

    sync_now(paid_org, django_capture_on_commit_callbacks)

    names = sorted(p.name for p in remote_products(monetized.account_id))
    assert names == ["Atlas v1", "Weather v1"]


def test_nothing_is_scheduled_while_monetization_is_off(
    paid_org, connected, catalog, django_capture_on_commit_callbacks
):
    callbacks = sync_now(paid_org, django_capture_on_commit_callbacks)

    assert callbacks == []
    assert remote_products(connected.account_id) == []


def test_the_task_skips_an_organization_that_is_not_monetized(paid_org, connected):
    assert sync_catalog.apply(args=[paid_org.pk]).get().startswith("skipped")


def test_the_task_retries_transient_stripe_errors_with_backoff(
    paid_org, monetized, monkeypatch
):
    calls = []
    real = catalog_module.catalog_sync

    def flaky(*, organization):
        calls.append(1)
        if len(calls) < 3:
            raise StripeUnavailable("network down")
        return real(organization=organization)

    monkeypatch.setattr(catalog_module, "catalog_sync", flaky)
    # Let eager retries run as a worker would, instead of raising the first Retry.
    monkeypatch.setitem(sync_catalog.app.conf, "task_eager_propagates", False)

    result = sync_catalog.apply(args=[paid_org.pk])

    assert result.successful()
    assert len(calls) == 3
    assert sync_catalog.retry_backoff is True
    assert StripeUnavailable in sync_catalog.autoretry_for
    assert sync_catalog.max_retries == 8


def test_a_run_interrupted_after_stripe_answered_makes_no_duplicate(
    paid_org, connected, catalog, monkeypatch
):
    real_create = CatalogObject.objects.create
    failures = []

    def crash_once(**kwargs):
        if not failures:
            failures.append(kwargs["stripe_id"])
            raise RuntimeError("worker died")
        return real_create(**kwargs)

    monkeypatch.setattr(CatalogObject.objects, "create", crash_once)
    with pytest.raises(RuntimeError):
        catalog_sync(organization=paid_org)

    catalog_sync(organization=paid_org)

    assert len(remote_products(connected.account_id)) == 2
    assert CatalogObject.objects.filter(stripe_id=failures[0]).exists()


def prices_of(version, api) -> dict:
    """The version's Stripe Prices under the API's Product, by what each charges."""
    meters = {meter.key: meter for meter in meters_of(api)}
    return version_prices(version, api=api, product="prod_x", meters=meters)


def price_params(version, *, api, product="prod_x") -> dict:
    """The one Price of a version that charges one thing."""
    (params,) = prices_of(version, api).values()
    return params


def plus_tier(org):
    """$10 a period with 1,000 requests, then $0.50 per started block of 100."""
    return make_tier(
        org,
        "Plus",
        PricingModel.FLAT_PLUS_OVERAGE,
        fixed_fee="10",
        included_requests=1000,
        overage_price="0.50",
        overage_block_size=100,
    )


def test_volume_and_overage_pricing_map_to_stripe(paid_org, connected):
    volume = make_tier(
        paid_org,
        "Volume",
        PricingModel.VOLUME,
        bands=[(100, "0.02", "1.50"), (None, "0.01", "0")],
    )
    overage = plus_tier(paid_org)
    api = make_api(paid_org, "Both")

    v = price_params(volume.current_version, api=api, product="prod_x")
    assert v["billing_scheme"] == "tiered" and v["tiers_mode"] == "volume"
    assert v["tiers"] == [
        {"up_to": 100, "unit_amount_decimal": "2", "flat_amount": 150},
        {"up_to": "inf", "unit_amount_decimal": "1", "flat_amount": 0},
    ]
    o = prices_of(overage.current_version, api)
    assert set(o) == {FIXED_FEE, "requests"}
    assert o[FIXED_FEE]["unit_amount_decimal"] == "1000"  # $10 a period
    # $0.50 per started block of 100 requests, above the 1,000 included
    requests = o["requests"]
    assert requests["unit_amount_decimal"] == "50"
    assert requests["transform_quantity"] == {"divide_by": 100, "round": "up"}
    assert requests["metadata"]["apimon_included_units"] == "1000"
    assert "tiers" not in requests

    offer(api, volume, overage)
    catalog_sync(organization=paid_org)
    created = remote_prices(connected.account_id)
    assert len(created) == 3
    remote = {p.metadata["apimon_charge"]: p for p in created if p.transform_quantity}
    assert remote["meter"].transform_quantity.divide_by == 100
    assert remote["meter"].transform_quantity.round == "up"
    # Reconciliation reads the transform back as apimon asked for it.
    from billing.reconcile import catalog_reconcile

    checked = catalog_reconcile(organization=paid_org)
    assert checked.checked == 4 and checked.new_drift == 0


def test_a_fee_with_graduated_requests_is_a_fee_price_and_a_tiered_one(paid_org):
    # SPEC §10: the one fixed fee with requests priced by any model.
    scale = make_tier(
        paid_org,
        "Scale",
        PricingModel.GRADUATED,
        fixed_fee="25",
        bands=[(1000, "0.01", "0"), (None, "0.005", "0")],
    )
    api = make_api(paid_org, "Scaled")

    prices = prices_of(scale.current_version, api)

    assert set(prices) == {FIXED_FEE, "requests"}
    assert prices[FIXED_FEE]["unit_amount_decimal"] == "2500"  # $25 a period
    requests = prices["requests"]
    assert (requests["billing_scheme"], requests["tiers_mode"]) == (
        "tiered",
        "graduated",
    )
    assert [t["unit_amount_decimal"] for t in requests["tiers"]] == ["1", "0.5"]


def test_zero_decimal_and_three_decimal_currencies(paid_org):
    api = make_api(paid_org, "Yen")
    jpy = make_tier(
        paid_org, "JPY", PricingModel.PER_UNIT, unit_price="0.5", currency="jpy"
    )
    bhd = make_tier(
        paid_org, "BHD", PricingModel.FLAT, fixed_fee="1.234", currency="bhd"
    )

    assert (
        price_params(jpy.current_version, api=api, product="p")["unit_amount_decimal"]
        == "0.5"
    )
    assert (
        price_params(bhd.current_version, api=api, product="p")["unit_amount_decimal"]
        == "1234"
    )


def test_a_weekly_tier_with_a_trial(paid_org):
    api = make_api(paid_org, "Weekly")
    tier = make_tier(
        paid_org,
        "Week",
        PricingModel.FLAT,
        fixed_fee="5",
        billing_cycle="week",
        trial_days=14,
    )

    params = price_params(tier.current_version, api=api, product="p")

    assert params["recurring"] == {
        "interval": "week",
        "interval_count": 1,
        "usage_type": "licensed",
        "trial_period_days": 14,
    }


def test_bands_keep_their_order(paid_org):
    api = make_api(paid_org, "Ordered")
    tier = make_tier(
        paid_org,
        "G",
        PricingModel.GRADUATED,
        bands=[(10, "1", "0"), (20, "0.5", "0"), (None, "0.25", "0")],
    )
    assert (
        MeterPriceBand.objects.filter(price__version=tier.current_version).count() == 3
    )

    tiers = price_params(tier.current_version, api=api, product="p")["tiers"]

    assert [t["up_to"] for t in tiers] == [10, 20, "inf"]


# --- Through the publisher's own services ------------------------------------------


def flat_price(fee: str):
    from pricing.rating import Pricing
    from pricing.rating import PricingModel as Model
    from publisher.services import TierPrice

    return TierPrice(
        pricing=Pricing(model=Model.FLAT, currency="usd", fixed_fee=Decimal(fee))
    )


def test_a_price_change_in_the_console_reaches_stripe(
    paid_org, monetized, catalog, world, django_capture_on_commit_callbacks
):
    from publisher import services as publisher
    from publisher.services import TierLimits

    gold = catalog["gold"]
    subscribe(paid_org, catalog["weather"], gold.current_version, world.subscriber)

    with django_capture_on_commit_callbacks(execute=True):
        update = publisher.tier_update(
            tier=gold, actor=world.owner, name="Gold", limits=TierLimits(),
            price=flat_price("59.00"),
        )  # fmt: skip

    assert update.price_outcome == "new_version"
    amounts = sorted(
        p.unit_amount
        for p in remote_prices(monetized.account_id, active=True)
        if p.metadata["apimon_tier_id"] == str(gold.pk)
    )
    assert amounts == [4900, 5900]  # the old one stays: a subscriber is on it


def test_renaming_a_tier_relabels_its_price_without_replacing_it(
    paid_org, monetized, catalog, world, django_capture_on_commit_callbacks
):
    from publisher import services as publisher
    from publisher.services import TierLimits

    gold = catalog["gold"]
    before = a_live_price(gold)

    with django_capture_on_commit_callbacks(execute=True):
        publisher.tier_update(
            tier=gold, actor=world.owner, name="Platinum", limits=TierLimits(),
            price=flat_price("49.00"),
        )  # fmt: skip

    after = a_live_price(gold)
    assert after.stripe_id == before.stripe_id
    remote = sc.get_client().v1.prices.retrieve(
        after.stripe_id, {}, sc.request_options(account=monetized.account_id)
    )
    assert remote.nickname.startswith("Platinum v1")


def test_retiring_an_api_in_the_console_archives_its_product(
    paid_org, monetized, catalog, world, django_capture_on_commit_callbacks
):
    from publisher import services as publisher
    from publisher.models import LifecycleAction

    maps = catalog["maps"]
    with django_capture_on_commit_callbacks(execute=True):
        publisher.api_transition(api=maps, action=LifecycleAction.DEPRECATE, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        publisher.api_transition(api=maps, action=LifecycleAction.RETIRE, actor=None)

    products = {p.name: p.active for p in remote_products(monetized.account_id)}
    assert products == {"Weather v1": True, "Maps v1": False}


def test_offering_an_api_in_the_console_creates_its_product(
    paid_org, monetized, catalog, world, django_capture_on_commit_callbacks
):
    from publisher import services as publisher

    with django_capture_on_commit_callbacks(execute=True):
        publisher.api_set_tiers(
            api=catalog["status"],
            tiers=[catalog["free"], catalog["metered"]],
            actor=None,
        )

    assert "Status v1" in {p.name for p in remote_products(monetized.account_id)}


def a_live_price(tier) -> CatalogObject:
    return CatalogObject.objects.get(
        kind=CatalogKind.PRICE, tier_version=tier.current_version, retired_at=None
    )


# --- A Price per meter ---------------------------------------------------------------


def token_tier(org, api_with_tokens):
    """$20 a period, 1,000,000 tokens at $0.002 per 1K then $0.001 per 1K, requests
    free: the publisher's service, as the tier form saves it."""
    from pricing.rating import Band, Pricing
    from pricing.rating import PricingModel as Model
    from publisher import services as publisher
    from publisher.services import MeterPriceSpec, TierPrice

    tier = publisher.tier_create(
        organization=org,
        actor=None,
        name="Tokens",
        price=TierPrice(
            pricing=Pricing(model=Model.FLAT, currency="usd", fixed_fee=Decimal("20")),
            meters=(
                MeterPriceSpec(
                    meter="tokens",
                    pricing=Pricing(
                        model=Model.GRADUATED,
                        currency="usd",
                        bands=(
                            Band(1_000_000, Decimal("0.000002"), Decimal(0)),
                            Band(None, Decimal("0.000001"), Decimal(0)),
                        ),
                    ),
                ),
            ),
        ),
    )
    return tier


def test_a_fee_and_a_token_price_are_two_prices_named_by_what_they_charge(
    paid_org, monetized, catalog
):
    from tests.billing.test_meters import add_meter

    llm = make_api(paid_org, "Text")
    add_meter(llm, "tokens", "Tokens", "token", scale=1000)
    tier = token_tier(paid_org, llm)
    offer(llm, tier)

    catalog_sync(organization=paid_org)

    prices = {
        p.metadata["apimon_charge"]: p
        for p in remote_prices(monetized.account_id, active=True)
        if p.metadata["apimon_tier_id"] == str(tier.pk)
    }
    assert set(prices) == {"fixed_fee", "meter"}
    fee, tokens = prices["fixed_fee"], prices["meter"]
    assert fee.unit_amount == 2000 and fee.recurring.interval == "month"
    assert fee.nickname == "Tokens v1 · fixed fee"
    # Per token, in cents, exact: $0.002 per 1K tokens = 0.0002 cents a token.
    assert tokens.billing_scheme == "tiered" and tokens.tiers_mode == "graduated"
    assert tokens.metadata["apimon_meter"] == "tokens"
    assert tokens.metadata["apimon_unit"] == "token"
    assert tokens.nickname == "Tokens v1 · Tokens"
    full = sc.get_client().v1.prices.retrieve(
        tokens.id,
        {"expand": ["tiers"]},
        sc.request_options(account=monetized.account_id),
    )
    assert [(t.up_to, str(t.unit_amount_decimal)) for t in full.tiers] == [
        (1_000_000, "0.0002"),
        (None, "0.0001"),
    ]
    rows = CatalogObject.objects.filter(tier_version=tier.current_version)
    assert {r.meter: r.charge_label for r in rows} == {
        "": "Fixed fee",
        "tokens": "Tokens",
    }
    # A second run finds everything in place.
    assert not catalog_sync(organization=paid_org).changed


def test_a_tier_that_charges_only_tokens_gets_a_price_and_an_api_without_tokens_none(
    paid_org, monetized, catalog
):
    from pricing.rating import Pricing
    from pricing.rating import PricingModel as Model
    from publisher import services as publisher
    from publisher.services import MeterPriceSpec, TierPrice
    from tests.billing.test_meters import add_meter

    llm = make_api(paid_org, "Text")
    add_meter(llm, "tokens", "Tokens", "token", scale=1000)
    plain = make_api(paid_org, "Plain")
    tier = publisher.tier_create(
        organization=paid_org,
        actor=None,
        name="Pay per token",
        price=TierPrice(
            pricing=Pricing(model=Model.FREE, currency="usd"),
            meters=(
                MeterPriceSpec(
                    meter="tokens",
                    pricing=Pricing(
                        model=Model.PER_UNIT,
                        currency="usd",
                        unit_price=Decimal("0.000003"),
                    ),
                ),
            ),
        ),
    )
    offer(llm, tier)
    offer(plain, tier)

    catalog_sync(organization=paid_org)

    ours = [
        p
        for p in remote_prices(monetized.account_id, active=True)
        if p.metadata["apimon_tier_id"] == str(tier.pk)
    ]
    assert [
        (p.metadata["apimon_api_id"], p.metadata["apimon_meter"]) for p in ours
    ] == [(str(llm.pk), "tokens")]
    assert str(ours[0].unit_amount_decimal) == "0.0003"
    # The plain API is offered on a commercial tier, so it has its product, but
    # the tier charges nothing there.
    names = {p.name for p in remote_products(monetized.account_id, active=True)}
    assert {"Text v1", "Plain v1"} <= names


def test_a_price_set_up_before_meters_is_replaced_by_one_per_charge(
    paid_org, monetized, catalog
):
    """A version priced when one Price held the fee and the requests' overage
    (its included requests in the metadata) gets a fee Price and a requests Price
    at the next sync; the old one is archived."""
    plus = plus_tier(paid_org)
    offer(catalog["weather"], plus)
    catalog_sync(organization=paid_org)
    rows = CatalogObject.objects.filter(tier_version=plus.current_version)
    fee = rows.get(meter="")
    # What the catalog looked like before: one Price with the fee, no requests'.
    rows.filter(meter="requests").delete()
    fee.synced_data["metadata"]["apimon_included_requests"] = "1000"
    fee.fingerprint = "before"
    fee.save()

    catalog_sync(organization=paid_org)

    live_rows = rows.filter(retired_at=None)
    assert sorted(live_rows.values_list("meter", flat=True)) == ["", "requests"]
    fee.refresh_from_db()
    assert fee.retired_at is not None


def test_the_emulator_refuses_a_quantity_transform_on_tiered_prices(
    paid_org, monetized
):
    """Stripe: quantity transformation isn't compatible with tiered pricing."""
    from apimon.payment_errors import StripeInvalidRequest

    options = sc.request_options(account=monetized.account_id)
    client = sc.get_client()
    product = client.v1.products.create({"name": "X"}, options)
    with pytest.raises(StripeInvalidRequest) as refused:
        client.v1.prices.create(
            {
                "product": product.id,
                "currency": "usd",
                "recurring": {"interval": "month"},
                "billing_scheme": "tiered",
                "tiers_mode": "graduated",
                "tiers": [{"up_to": "inf", "unit_amount": 1}],
                "transform_quantity": {"divide_by": 10, "round": "up"},
            },
            options,
        )
    assert "transform_quantity" in str(refused.value)
