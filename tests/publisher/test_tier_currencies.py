"""The tier form and the tier services refuse a COMMERCIAL tier in a currency Stripe
cannot charge (IQD, LYD) with an error next to the currency field, offer only the
currencies Stripe can charge, and keep previewing the three-decimal ones it can."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from publisher import services
from publisher.models import BillingPlan, Tier, TierVersion
from tests.publisher.helpers import make_tier, per_unit
from tests.publisher.test_tiers import amounts, commercial, form_data, preview, url

pytestmark = pytest.mark.django_db


def currency_field(html: str) -> str:
    """The currency field's block: its label, select, help and errors."""
    start = html.rindex("<div", 0, html.index('id="field-currency"'))
    return html[start : html.index('id="field-', start + 30)]


def offered(html: str) -> list[str]:
    return re.findall(r'<option value="([a-z]{3})"', currency_field(html))


@pytest.mark.parametrize(
    ("currency", "name"), [("iqd", "IQD (Iraqi Dinar)"), ("lyd", "LYD (Libyan Dinar)")]
)
def test_a_commercial_tier_stripe_cannot_charge_is_refused_next_to_the_currency(
    world, client_for, currency, name
):
    response = client_for(world.publisher).post(
        url(world.org, "new/"),
        commercial(fixed_fee="5.000", currency=currency),
    )

    assert response.status_code == 200
    field = currency_field(response.content.decode())
    assert "has-error" in field
    assert f"Stripe cannot charge in {name}" in field
    assert "Choose another currency, or make the tier free." in field
    assert "Select a valid choice" not in field
    assert (Tier.objects.count(), TierVersion.objects.count()) == (0, 0)


def test_a_free_tier_does_not_charge_so_its_currency_does_not_matter(world, client_for):
    response = client_for(world.publisher).post(
        url(world.org, "new/"), form_data(currency="iqd")
    )

    assert response.status_code == 302
    assert Tier.objects.get().billing_plan == BillingPlan.FREE


def test_the_currency_list_offers_only_what_stripe_can_charge(world, client_for):
    html = client_for(world.publisher).get(url(world.org, "new/")).content.decode()

    codes = offered(html)
    assert "iqd" not in codes and "lyd" not in codes
    for code in ("usd", "eur", "jpy", "isk", "bhd", "kwd", "jod", "omr", "tnd"):
        assert code in codes
    assert "Currencies Stripe can charge" in currency_field(html)


def test_an_unknown_currency_is_still_not_a_choice(world, client_for):
    response = client_for(world.publisher).post(
        url(world.org, "new/"), commercial(fixed_fee="5", currency="xyz")
    )
    assert "Select a valid choice" in currency_field(response.content.decode())
    assert Tier.objects.count() == 0


def test_a_tier_priced_before_the_rule_shows_its_currency_and_must_change_it(
    world, client_for
):
    tier = make_tier(world.org, price=per_unit("0.01"))
    TierVersion.objects.filter(tier=tier).update(currency="iqd")
    client = client_for(world.publisher)

    html = client.get(url(world.org, f"{tier.pk}/edit/")).content.decode()
    # Shown as it is (not silently switched to the first currency), and marked.
    assert re.search(r'<option value="iqd" selected>[^<]*Stripe cannot charge it', html)
    assert offered(html).count("iqd") == 1

    unchanged = commercial("PER_UNIT", unit_price="0.01", currency="iqd")
    response = client.post(url(world.org, f"{tier.pk}/edit/"), unchanged)
    assert "Stripe cannot charge in IQD" in currency_field(response.content.decode())

    fixed = commercial("PER_UNIT", unit_price="0.01", currency="usd")
    response = client.post(url(world.org, f"{tier.pk}/edit/"), fixed)
    assert response.status_code == 302
    tier.refresh_from_db()
    assert tier.current_version.currency == "usd"


def test_the_services_refuse_it_too(world):
    with pytest.raises(ValidationError) as excinfo:
        make_tier(world.org, price=per_unit("0.01", currency="lyd"))
    assert "Stripe cannot charge in LYD" in str(excinfo.value.message_dict["currency"])

    tier = make_tier(world.org, name="Metered", price=per_unit("0.01"))
    with pytest.raises(ValidationError) as excinfo:
        services.tier_update(
            tier=tier,
            actor=None,
            name="Metered",
            limits=services.TierLimits(),
            price=per_unit("0.01", currency="iqd"),
        )
    assert "currency" in excinfo.value.message_dict
    tier.refresh_from_db()
    assert tier.current_version.currency == "usd"


def test_the_preview_explains_a_currency_stripe_cannot_charge(world, client_for):
    response = preview(
        client_for(world.publisher),
        world.org,
        commercial("PER_UNIT", unit_price="0.0001", currency="iqd"),
    )
    assert "Stripe cannot charge in IQD" in response.content.decode()
    assert "preview" not in response.context


@pytest.mark.parametrize("currency", ["bhd", "kwd", "jod", "omr", "tnd"])
def test_the_preview_of_three_decimal_currencies_stripe_charges(
    world, client_for, currency
):
    client = client_for(world.publisher)
    code = currency.upper()
    exact = commercial("PER_UNIT", unit_price="0.0001", currency=currency)
    assert amounts(preview(client, world.org, exact)) == [
        f"{code} 0.010",
        f"{code} 0.100",
        f"{code} 1.000",
        f"{code} 10.000",
        f"{code} 100.000",
    ]
    # 10,000 × 0.0000123 = 0.123, invoiced (and charged by Stripe) as 0.120;
    # 100 × 0.0000123 = 0.00123, as 0.000
    stepped = commercial("PER_UNIT", unit_price="0.0000123", currency=currency)
    assert amounts(preview(client, world.org, stepped)) == [
        f"{code} 0.000",
        f"{code} 0.010",
        f"{code} 0.120",
        f"{code} 1.230",
        f"{code} 12.300",
    ]

    response = client.post(url(world.org, "new/"), exact)
    assert response.status_code == 302
    assert Tier.objects.get().current_version.currency == currency
