"""What the Checkout page says about money is true for each case: apimon sends it
as Stripe's custom_text[submit][message] and the page shows it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apimon import stripe_client as sc
from billing.models import Invoice, InvoiceKind, InvoiceStatus
from pricing.rating import Pricing, PricingModel
from store.models import Subscription
from stripe_emulator import testing
from tests.publisher.helpers import make_tier
from tests.store.conftest import flat, store_url, subscribe_paid

D = Decimal


def session_text(account: str, subscription: Subscription) -> str:
    session = sc.get_client().v1.checkout.sessions.retrieve(
        subscription.checkout_session_id, {}, sc.request_options(account=account)
    )
    return session.custom_text.submit.message


def start(client, shop, app, tier) -> Subscription:
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": tier.pk},
    )
    assert response.status_code == 302
    return Subscription.objects.get(application=app, api=shop.api)


def test_a_fee_in_advance_is_charged_now_and_the_page_says_so(
    world, shop, app, monetized, stripe_emulator, client_for
):
    sub = start(client_for(world.subscriber), shop, app, shop.gold)

    text = session_text(monetized, sub)
    assert (
        text
        == "You will be charged $19.00 now for the first month, then $19.00 every month."
    )
    url = (
        sc.get_client()
        .v1.checkout.sessions.retrieve(
            sub.checkout_session_id, {}, sc.request_options(account=monetized)
        )
        .url
    )
    _status, _type, page = testing.get_page(stripe_emulator, url)
    assert text in page and "You will not be charged" not in page


def test_a_trial_charges_nothing_until_it_ends(world, shop, app, monetized, client_for):
    trial = make_tier(world.org, "Trial Gold", price=flat(trial=14))
    from publisher import services as publisher_services

    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, shop.metered, trial], actor=None
    )
    sub = start(client_for(world.subscriber), shop, app, trial)

    assert session_text(monetized, sub) == (
        "Your 14-day free trial starts now: nothing is charged until it ends."
    )


def test_usage_only_charges_nothing_now(world, shop, app, monetized, client_for):
    sub = start(client_for(world.subscriber), shop, app, shop.metered)

    assert session_text(monetized, sub) == (
        "Nothing is charged now. Usage is charged at the end of each month."
    )


def test_a_fee_with_per_request_usage_is_charged_now_and_usage_later(
    world, shop, app, monetized, client_for
):
    from publisher import services as publisher_services

    fee_and_usage = make_tier(
        world.org,
        "Fee and usage",
        price=publisher_services.TierPrice(
            pricing=Pricing(
                PricingModel.PER_UNIT, "usd", fixed_fee=D("10"), unit_price=D("0.001")
            )
        ),
    )
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[*shop.api.tiers.all(), fee_and_usage], actor=None
    )
    sub = start(client_for(world.subscriber), shop, app, fee_and_usage)

    assert session_text(monetized, sub) == (
        "You will be charged $10.00 now for the first month, then $10.00 every "
        "month. Usage is charged at the end of each month."
    )


@pytest.mark.parametrize(
    "failed, message",
    [
        (False, "Nothing is charged now: this card pays your next invoices."),
        (True, "Saving this card pays your failed payment of $19.00 at once."),
    ],
)
def test_a_card_update_says_whether_it_pays_a_failed_payment_now(
    world, shop, app, monetized, stripe_emulator, client_for, failed, message
):
    client = client_for(world.subscriber)
    sub = subscribe_paid(client, shop, app, stripe_emulator)
    if failed:
        now = timezone.now()
        Invoice.objects.create(
            organization=shop.org,
            subscription=sub,
            kind=InvoiceKind.START,
            number="ACME-000001",
            status=InvoiceStatus.OPEN,
            period_start=now,
            period_end=now,
            currency="usd",
            total_minor=1900,
            payment_failed_at=now,
        )
    client.post(store_url(shop.org, f"subscriptions/{sub.pk}/checkout/"))
    sub.refresh_from_db()

    assert session_text(monetized, sub) == message


def test_a_change_of_tier_through_checkout_charges_nothing_now(
    world, shop, app, monetized, client_for
):
    client = client_for(world.subscriber)
    sub = start(client, shop, app, shop.free)
    response = client.post(
        store_url(shop.org, f"subscriptions/{sub.pk}/change/"), {"tier": shop.gold.pk}
    )
    assert response.status_code == 302
    sub.refresh_from_db()

    assert session_text(monetized, sub) == (
        "Nothing is charged now: the change to Gold is billed on your next invoice."
    )
