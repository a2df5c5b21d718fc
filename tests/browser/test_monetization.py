"""Monetization end to end in a real browser against the Stripe emulator: a trial owner
clicks Monetization → told to upgrade → OK → Select a plan → billing and contact
information → Proceed → Checkout (card) → on the Starter plan → Connect with Stripe →
the authorize page → password → Enable Monetization → the confirmation."""

from __future__ import annotations

import pytest

from apimon import stripe_client as sc
from apimon.models import Organization
from apimon.services import organization_create
from billing.models import CatalogObject, PlatformSubscription, StripeConnection
from tests.billing.conftest import make_api, make_tier, offer
from tests.browser.conftest import fill_billing_details, log_in, screenshot
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_trial_owner_upgrades_connects_stripe_and_enables_monetization(
    page, live_server, live_stripe_emulator, settings
):
    # The OAuth redirect URI is built from SITE_URL: here, the live server.
    settings.SITE_URL = live_server.url
    owner = make_user("founder@weather.test")
    org = organization_create(user=owner, name="Weather Works")
    api = make_api(org, "Forecast", description="Hourly forecasts for any place.")
    offer(api, make_tier(org, "Pro", fixed_fee="19.00"))
    log_in(page, owner.email, PASSWORD)

    page.goto(f"/t/{org.slug}/publisher/")
    page.locator("nav.subnav").get_by_role("link", name="Monetization").click()
    prompt = page.locator("#upgrade-prompt")
    assert prompt.get_by_text("Upgrade to monetize your APIs").is_visible()
    screenshot(page, "monetization-trial")
    # The prompt says where its button leads (not a bare "OK").
    prompt.get_by_role("link", name="Choose a paid plan").click()

    page.wait_for_url(f"**/t/{org.slug}/publisher/monetization/plans/")
    screenshot(page, "monetization-plans")
    page.get_by_role("link", name="Select Starter").click()

    page.get_by_role("button", name="Proceed").click()  # empty: errors next to fields
    assert page.locator("#field-line1 .errorlist").is_visible()
    fill_billing_details(page)
    screenshot(page, "monetization-billing-details")
    page.get_by_role("button", name="Proceed").click()

    page.wait_for_url(f"{live_stripe_emulator.url}/c/pay/**")
    page.fill("input[name=cardnumber]", "4242 4242 4242 4242")
    page.fill("input[name=exp-date]", "12 / 34")
    page.fill("input[name=cvc]", "123")
    screenshot(page, "monetization-checkout")
    page.get_by_role("button", name="Save card").click()

    page.wait_for_url(f"**/t/{org.slug}/publisher/monetization/")
    assert page.get_by_text("You are on the Starter plan").is_visible()
    screenshot(page, "monetization-upgraded")

    page.get_by_role("button", name="Connect with Stripe").click()
    page.wait_for_url(f"{live_stripe_emulator.url}/oauth/authorize**")
    page.fill("input[name=business_name]", "Weather Works")
    page.select_option("select[name=country]", "US")
    screenshot(page, "monetization-stripe-authorize")
    page.get_by_role("button", name="Authorize access to this account").click()

    page.wait_for_url(f"**/t/{org.slug}/publisher/monetization/")
    assert page.get_by_text("is connected to Weather Works").is_visible()
    screenshot(page, "monetization-connected")
    page.get_by_role("link", name="Enable Monetization").click()

    page.fill("input[name=password]", "not-my-password")
    page.get_by_role("button", name="Enable Monetization").click()
    assert page.get_by_text("That is not your password.").is_visible()
    page.fill("input[name=password]", PASSWORD)
    screenshot(page, "monetization-password")
    page.get_by_role("button", name="Enable Monetization").click()

    page.wait_for_url(f"**/t/{org.slug}/publisher/monetization/")
    assert page.get_by_text(
        "The configurations required for monetization have been added to your "
        "organization."
    ).is_visible()
    screenshot(page, "monetization-enabled")

    # What the owner saw is what apimon and Stripe now hold.
    org = Organization.objects.get(pk=org.pk)
    assert org.plan.slug == "starter"
    subscription = PlatformSubscription.objects.get(organization=org)
    assert subscription.card_last4 == "4242"
    connection = StripeConnection.objects.get(organization=org)
    assert connection.monetization_enabled and connection.charges_enabled
    options = sc.request_options(account=connection.account_id)
    products = sc.get_client().v1.products.list({}, options).data
    assert [p.name for p in products] == ["Forecast v1"]
    assert CatalogObject.objects.filter(organization=org).count() == 2

    # Someone archives the price in the Stripe Dashboard: the check shows it.
    price = CatalogObject.objects.get(organization=org, kind="price")
    sc.get_client().v1.prices.update(price.stripe_id, {"active": False}, options)
    page.get_by_role("link", name="Catalog and drift").click()
    page.get_by_role("button", name="Check now").click()
    assert page.get_by_text("1 differs from apimon").is_visible()
    assert page.locator("#drift code").get_by_text(price.stripe_id).is_visible()
    screenshot(page, "monetization-drift")
    page.locator("#drift").get_by_role("button", name="Repair").click()
    assert (
        page.locator("#messages")
        .get_by_text(f"Re-activated {price.stripe_id}")
        .is_visible()
    )
    screenshot(page, "monetization-drift-repaired")
    assert sc.get_client().v1.prices.retrieve(price.stripe_id, {}, options).active

    # The settings icon leads back to Monetization.
    page.goto(f"/t/{org.slug}/settings/members/")
    page.locator("#settings-menu summary").click()
    page.locator("#settings-menu").get_by_role("link", name="Monetization").click()
    page.wait_for_url(f"**/t/{org.slug}/publisher/monetization/")
    page.locator("#settings-menu summary").click()
    screenshot(page, "monetization-settings-menu")
