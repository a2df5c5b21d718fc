"""Enable Monetization (password, rate limit, the catalog on the connected account),
Disable and Disconnect."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from apimon import stripe_client as sc
from apimon.payment_errors import StripeAccessDenied
from billing.models import CatalogKind, CatalogObject, StripeConnection
from billing.models import monetization_enabled as is_monetized
from tests.conftest import PASSWORD
from tests.helpers import field_error

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    cache.clear()


def enable(client, org, password=PASSWORD):
    return client.post(
        reverse("monetization:enable", args=[org.slug]), {"password": password}
    )


def stripe_products(account: str) -> list:
    options = sc.request_options(account=account)
    return sc.get_client().v1.products.list({"limit": 100}, options).data


def stripe_prices(account: str) -> list:
    options = sc.request_options(account=account)
    return (
        sc.get_client()
        .v1.prices.list({"limit": 100, "expand": ["data.tiers"]}, options)
        .data
    )


def test_a_wrong_password_enables_nothing(paid_org, owner_client, connected, catalog):
    response = enable(owner_client, paid_org, "not-my-password")

    assert response.status_code == 200
    assert "That is not your password." in response.content.decode()
    connected.refresh_from_db()
    assert not connected.monetization_enabled
    assert stripe_products(connected.account_id) == []
    assert not CatalogObject.objects.exists()


def test_password_attempts_are_rate_limited(paid_org, owner_client, connected, catalog):
    for _ in range(5):
        enable(owner_client, paid_org, "wrong")

    response = enable(owner_client, paid_org)  # even the right password now

    assert "Too many wrong passwords" in response.content.decode()
    connected.refresh_from_db()
    assert not connected.monetization_enabled
    cache.clear()  # the window passes
    assert enable(owner_client, paid_org).status_code == 302


def test_enabling_creates_one_product_per_api_and_one_price_per_tier_version(
    paid_org, owner_client, connected, catalog
):
    response = enable(owner_client, paid_org)

    assert response.status_code == 302
    page = owner_client.get(response["Location"]).content.decode()
    assert (
        "The configurations required for monetization have been added to your "
        "organization." in page
    )
    connected.refresh_from_db()
    assert connected.monetization_enabled and connected.monetization_enabled_at
    assert is_monetized(paid_org)

    products = {
        p.metadata["apimon_api_id"]: p for p in stripe_products(connected.account_id)
    }
    # Weather (Gold + Metered) and Maps (Bands); not Status (free only) nor Draft.
    assert set(products) == {str(catalog["weather"].pk), str(catalog["maps"].pk)}
    weather = products[str(catalog["weather"].pk)]
    assert weather.name == "Weather v1"
    assert weather.metadata["apimon_org_id"] == str(paid_org.pk)

    prices = stripe_prices(connected.account_id)
    by_version = {p.metadata["apimon_tier_version_id"]: p for p in prices}
    gold = by_version[str(catalog["gold"].current_version_id)]
    metered = by_version[str(catalog["metered"].current_version_id)]
    bands = by_version[str(catalog["bands"].current_version_id)]
    assert len(prices) == 3
    assert gold.product == weather.id and metered.product == weather.id
    assert bands.product == products[str(catalog["maps"].pk)].id
    assert gold.metadata["apimon_tier_id"] == str(catalog["gold"].pk)
    # Gold charges a fixed fee; Metered and Bands price requests.
    assert gold.metadata["apimon_charge"] == "fixed_fee"
    assert metered.metadata["apimon_meter"] == "requests"
    assert metered.metadata["apimon_pricing_model"] == "PER_UNIT"
    assert bands.metadata["apimon_pricing_model"] == "GRADUATED"

    assert CatalogObject.objects.filter(kind=CatalogKind.PRODUCT).count() == 2
    assert CatalogObject.objects.filter(kind=CatalogKind.PRICE).count() == 3


def test_each_pricing_model_becomes_an_exact_stripe_price(
    paid_org, owner_client, connected, catalog
):
    enable(owner_client, paid_org)
    by_version = {
        p.metadata["apimon_tier_version_id"]: p
        for p in stripe_prices(connected.account_id)
    }

    gold = by_version[str(catalog["gold"].current_version_id)]
    assert (gold.currency, gold.unit_amount, gold.billing_scheme) == (
        "usd",
        4900,
        "per_unit",
    )
    assert gold.recurring.interval == "month"
    assert gold.recurring.usage_type == "licensed"

    metered = by_version[str(catalog["metered"].current_version_id)]
    # $0.0004 per request = 0.04 cents, exact.
    assert str(metered.unit_amount_decimal) == "0.04"
    assert metered.unit_amount is None
    assert metered.metadata["apimon_unit"] == "request"

    bands = by_version[str(catalog["bands"].current_version_id)]
    assert (bands.billing_scheme, bands.tiers_mode) == ("tiered", "graduated")
    tiers = [(t.up_to, str(t.unit_amount_decimal), t.flat_amount) for t in bands.tiers]
    assert tiers == [(1000, "1", 500), (None, "0.5", 0)]


def test_enabling_twice_creates_nothing_more(
    paid_org, owner_client, connected, catalog
):
    enable(owner_client, paid_org)
    before = {p.id for p in stripe_prices(connected.account_id)}

    response = enable(owner_client, paid_org)

    assert response.status_code == 302
    assert {p.id for p in stripe_prices(connected.account_id)} == before
    assert len(stripe_products(connected.account_id)) == 2
    assert CatalogObject.objects.count() == 5


def test_enable_needs_a_connected_account(paid_org, owner_client):
    response = owner_client.get(reverse("monetization:enable", args=[paid_org.slug]))

    assert response.status_code == 302
    assert not StripeConnection.objects.exists()


def test_disabling_stops_new_paid_subscriptions_and_keeps_the_catalog(
    paid_org, owner_client, connected, catalog
):
    enable(owner_client, paid_org)

    response = owner_client.post(reverse("monetization:disable", args=[paid_org.slug]))

    assert response.status_code == 302
    connected.refresh_from_db()
    assert not connected.monetization_enabled
    assert connected.is_connected
    paid_org.refresh_from_db()
    assert not is_monetized(paid_org)
    assert all(p.active for p in stripe_prices(connected.account_id))
    page = owner_client.get(response["Location"]).content.decode()
    assert "Existing paid subscriptions run to the end of their period" in page


def disconnect(client, org, password=PASSWORD):
    return client.post(
        reverse("monetization:disconnect", args=[org.slug]), {"password": password}
    )


def test_disconnect_needs_the_password(paid_org, owner_client, connected):
    response = disconnect(owner_client, paid_org, "wrong")

    assert "That is not your password." in response.content.decode()
    connected.refresh_from_db()
    assert connected.is_connected
    sc.get_client().v1.customers.list(
        {}, sc.request_options(account=connected.account_id)
    )


def test_disconnect_deauthorizes_and_pauses_billing(
    paid_org, owner_client, connected, catalog
):
    enable(owner_client, paid_org)

    response = disconnect(owner_client, paid_org)

    assert response.status_code == 302
    connected.refresh_from_db()
    assert connected.disconnected_at is not None
    assert not connected.monetization_enabled and connected.billing_paused
    paid_org.refresh_from_db()
    assert not is_monetized(paid_org)
    with pytest.raises(StripeAccessDenied):
        sc.get_client().v1.customers.list(
            {}, sc.request_options(account=connected.account_id)
        )
    page = owner_client.get(response["Location"]).content.decode()
    assert "Connect with Stripe" in page
    assert f"Stripe account {connected.account_id} was disconnected" in page
    assert mail.outbox == []  # the owner did it: no email about it


def test_the_same_account_can_be_connected_again_and_reuses_its_catalog(
    paid_org, owner_client, connected, catalog, stripe_emulator
):
    from stripe_emulator import testing
    from tests.billing.conftest import path_of, start_connect

    enable(owner_client, paid_org)
    disconnect(owner_client, paid_org)
    url = start_connect(owner_client, paid_org)
    back = testing.authorize(
        stripe_emulator, url, existing_account=connected.account_id
    )
    assert owner_client.get(path_of(back)).status_code == 302

    enable(owner_client, paid_org)

    assert len(stripe_prices(connected.account_id)) == 3
    assert CatalogObject.objects.filter(retired_at=None).count() == 5


def test_the_status_page_shows_where_the_organization_stands(
    paid_org, owner_client, connected, catalog, django_assert_max_num_queries
):
    enable(owner_client, paid_org)
    url = reverse("monetization:status", args=[paid_org.slug])

    # 17: one of them looks for tiers priced in a currency Stripe cannot charge, one
    # whether the owner has two-factor authentication (the prompt to set it up).
    with django_assert_max_num_queries(17):
        html = owner_client.get(url).content.decode()

    assert "Starter" in html
    assert connected.account_id in html
    assert "<strong>2</strong> products" in html and "<strong>3</strong> prices" in html
    assert "In sync" in html
    assert "Disable monetization" in html


def test_only_owners_see_monetization(paid_org, world, client_for):
    url = reverse("monetization:status", args=[paid_org.slug])

    assert client_for(world.publisher).get(url).status_code == 403
    assert client_for(world.subscriber).get(url).status_code == 403
    assert client_for(world.outsider).get(url).status_code == 404
    publisher_menu = client_for(world.publisher).get(
        reverse("publisher:dashboard", args=[paid_org.slug])
    )
    assert url not in publisher_menu.content.decode()


def test_the_owner_sets_the_grace_period_after_a_failed_payment(paid_org, owner_client):
    url = reverse("monetization:dunning", args=[paid_org.slug])
    page = owner_client.get(reverse("monetization:status", args=[paid_org.slug]))
    assert 'name="dunning_grace_days" value="3"' in page.content.decode()

    response = owner_client.post(url, {"dunning_grace_days": "7"}, follow=True)

    paid_org.refresh_from_db()
    assert paid_org.dunning_grace_days == 7
    assert "served for 7 more days, then blocked" in response.content.decode()


def test_a_grace_period_out_of_range_is_an_error_next_to_the_field(
    paid_org, owner_client
):
    url = reverse("monetization:dunning", args=[paid_org.slug])
    for bad in ("61", "-1", "three"):
        response = owner_client.post(url, {"dunning_grace_days": bad})
        assert response.status_code == 400
        assert field_error(response.content, "dunning_grace_days")
    paid_org.refresh_from_db()
    assert paid_org.dunning_grace_days == 3


def test_only_the_owner_of_this_organization_sets_the_grace_period(world, client_for):
    url = reverse("monetization:dunning", args=[world.org.slug])
    publisher = client_for(world.publisher).post(url, {"dunning_grace_days": "9"})
    outsider = client_for(world.outsider).post(url, {"dunning_grace_days": "9"})
    assert (publisher.status_code, outsider.status_code) == (403, 404)
    world.org.refresh_from_db()
    assert world.org.dunning_grace_days == 3
