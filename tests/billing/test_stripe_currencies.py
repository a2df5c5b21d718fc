"""Currencies Stripe cannot charge (IQD, LYD), for tiers made before the tier form
refused them: the push refuses their invoices before calling Stripe, the catalog sync
creates no Price for them and the Monetization pages name them; the price preview
of the three-decimal currencies Stripe does charge shows what the invoice will say."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apimon import stripe_client as sc
from billing import push
from billing.catalog import catalog_sync
from billing.engine import billing_run
from billing.models import CatalogKind, CatalogObject, Invoice, InvoiceStatus
from pricing.rating import Pricing, PricingModel, price_preview
from pricing.stripe_money import (
    NotChargeableOnStripe,
    chargeable_price_preview,
    stripe_can_charge,
    to_stripe_amount,
)
from publisher.models import TierVersion
from tests.billing.conftest import flat, make_tier, offer, utc
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def priced_before_the_rule(tier, currency: str) -> None:
    """What a tier saved before the tier form refused the currency looks like."""
    TierVersion.objects.filter(tier=tier).update(currency=currency)
    tier.refresh_from_db()


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("usd", True),
        ("BHD", True),
        ("kwd", True),
        ("jod", True),
        ("omr", True),
        ("tnd", True),
        ("isk", True),
        ("mga", True),
        ("iqd", False),
        ("LYD", False),
        ("xyz", False),
        ("", False),
        (None, False),
    ],
)
def test_one_rule_says_which_currencies_stripe_can_charge(currency, expected):
    assert stripe_can_charge(currency) is expected


@pytest.mark.parametrize("currency", ["iqd", "lyd"])
def test_the_push_refuses_an_invoice_stripe_cannot_charge_before_calling_stripe(
    shop, stripe, currency
):
    customer = stripe.customer(shop)
    tier = shop.tier(flat("49.00"), name="Gold")
    priced_before_the_rule(tier, currency)
    shop.subscribe(tier, at=utc(2027, 1, 1), customer=customer)
    billing_run(now=utc(2027, 1, 1, 0, 1), flush=False, enqueue_push=False)
    invoice = Invoice.objects.get()
    assert invoice.currency == currency

    result = push.invoice_push(invoice_id=invoice.pk)

    assert result.status == InvoiceStatus.PUSH_FAILED
    assert result.last_push_error == (
        f"Stripe does not accept {currency.upper()}: invoices in it cannot be "
        "charged through Stripe."
    )
    assert result.stripe_invoice_id is None
    remote = sc.get_client().v1.invoices.list(
        {"customer": customer.stripe_customer_id},
        sc.request_options(account=stripe.account),
    )
    assert remote.data == []  # no draft left behind on Stripe
    with pytest.raises(NotChargeableOnStripe):
        to_stripe_amount(49_000, currency)


@pytest.fixture
def monetized(paid_org, owner_client, connected, catalog):
    response = owner_client.post(
        reverse("monetization:enable", args=[paid_org.slug]), {"password": PASSWORD}
    )
    assert response.status_code == 302
    return connected


def test_the_catalog_sync_creates_no_price_in_a_currency_stripe_cannot_charge(
    paid_org, monetized, catalog
):
    dinar = make_tier(paid_org, "Dinar", PricingModel.FLAT, fixed_fee="5.000")
    priced_before_the_rule(dinar, "iqd")
    offer(catalog["weather"], dinar)

    result = catalog_sync(organization=paid_org)

    assert result.not_chargeable == ["Dinar v1 (IQD)"]
    assert "No Stripe price for Dinar v1 (IQD)" in result.not_chargeable_note
    assert not CatalogObject.objects.filter(
        kind=CatalogKind.PRICE, tier_version=dinar.current_version
    ).exists()
    remote = sc.get_client().v1.prices.list(
        {"limit": 100}, sc.request_options(account=monetized.account_id)
    )
    assert {p.currency for p in remote.data} == {"usd"}


def test_enabling_with_such_a_tier_works_and_says_which_tier_has_no_price(
    paid_org, owner_client, connected, catalog
):
    dinar = make_tier(paid_org, "Dinar", PricingModel.FLAT, fixed_fee="5.000")
    priced_before_the_rule(dinar, "lyd")
    offer(catalog["weather"], dinar)

    response = owner_client.post(
        reverse("monetization:enable", args=[paid_org.slug]),
        {"password": PASSWORD},
        follow=True,
    )

    page = response.content.decode()
    assert "No Stripe price for Dinar v1 (LYD)" in page
    connected.refresh_from_db()
    assert connected.monetization_enabled


@pytest.mark.parametrize("name", ["status", "catalog"])
def test_the_monetization_pages_name_the_tiers_stripe_cannot_charge(
    paid_org, owner_client, monetized, catalog, name
):
    dinar = make_tier(paid_org, "Dinar", PricingModel.FLAT, fixed_fee="5.000")
    priced_before_the_rule(dinar, "iqd")
    url = reverse(f"monetization:{name}", args=[paid_org.slug])

    page = owner_client.get(url).content.decode()

    assert 'id="not-chargeable"' in page
    assert "Stripe cannot charge this tier's currency" in page
    assert "Dinar</a> v1 in IQD" in page
    edit = reverse("publisher:tier-edit", args=[paid_org.slug, dinar.pk])
    assert f'href="{edit}"' in page


def test_the_monetization_page_says_nothing_when_every_tier_can_be_charged(
    paid_org, owner_client, monetized, catalog
):
    page = owner_client.get(
        reverse("monetization:status", args=[paid_org.slug])
    ).content.decode()
    assert 'id="not-chargeable"' not in page


def test_an_archived_tier_nobody_uses_is_not_reported(
    paid_org, owner_client, monetized
):
    from django.utils import timezone

    dinar = make_tier(paid_org, "Dinar", PricingModel.FLAT, fixed_fee="5.000")
    priced_before_the_rule(dinar, "iqd")
    dinar.archived_at = timezone.now()
    dinar.save(update_fields=["archived_at"])

    page = owner_client.get(
        reverse("monetization:status", args=[paid_org.slug])
    ).content.decode()
    assert 'id="not-chargeable"' not in page


@pytest.mark.parametrize("currency", ["bhd", "kwd", "jod", "omr", "tnd"])
def test_the_price_preview_of_three_decimal_currencies_is_what_stripe_charges(
    currency,
):
    # 10,000 × 0.0000123 = 0.123: ISO rounding keeps 0.123; Stripe charges
    # multiples of 10 fils, so the invoice (and the preview) says 0.120.
    pricing = Pricing(
        model=PricingModel.PER_UNIT,
        currency=currency,
        unit_price=Decimal("0.0000123"),
    )
    assert price_preview(pricing)[0] == (10_000, 123)
    assert chargeable_price_preview(pricing) == [
        (10_000, 120),
        (100_000, 1_230),
        (1_000_000, 12_300),
    ]
    fee = Pricing(
        model=PricingModel.FLAT, currency=currency, fixed_fee=Decimal("1.235")
    )
    assert chargeable_price_preview(fee, quantities=[0]) == [(0, 1_240)]


def test_the_price_preview_is_unchanged_for_currencies_with_a_step_of_one():
    pricing = Pricing(
        model=PricingModel.PER_UNIT, currency="usd", unit_price=Decimal("0.00123")
    )
    assert chargeable_price_preview(pricing) == price_preview(pricing)
