"""The owner's Billing page in a real browser: a plan bought through Checkout (whose
page says the first month is charged now), its invoice on the Billing page with
Stripe's links, and a card change through Checkout (which charges nothing now)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apimon.services import organization_create
from billing.engine import platform_billing_run
from billing.models import Invoice
from billing.push import invoice_push
from tests.browser.conftest import fill_billing_details, log_in, screenshot
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_owner_sees_the_plans_invoice_and_changes_the_card(
    page, live_server, live_stripe_emulator, settings
):
    settings.SITE_URL = live_server.url
    owner = make_user("founder@weather.test")
    org = organization_create(user=owner, name="Weather Works")
    log_in(page, owner.email, PASSWORD)

    page.goto(f"/t/{org.slug}/publisher/monetization/plans/")
    page.get_by_role("link", name="Select Starter").click()
    fill_billing_details(page)
    page.get_by_role("button", name="Proceed").click()
    page.wait_for_url(f"{live_stripe_emulator.url}/c/pay/**")
    # The page says what happens: the first month is charged at once.
    assert page.get_by_text(
        "You will be charged $29.00 now for the first month of the Starter plan"
    ).is_visible()
    assert page.get_by_text("You will not be charged").count() == 0
    page.fill("input[name=cardnumber]", "4242 4242 4242 4242")
    page.fill("input[name=exp-date]", "12 / 34")
    page.fill("input[name=cvc]", "123")
    page.get_by_role("button", name="Save card").click()
    page.wait_for_url(f"**/t/{org.slug}/publisher/monetization/")

    # The billing job invoices the first month and charges it (beat, every minute).
    platform_billing_run(now=timezone.now(), enqueue_push=False)
    invoice = invoice_push(invoice_id=Invoice.objects.get(organization=org).pk)

    page.locator("#settings-menu summary").click()
    page.locator("#settings-menu").get_by_role("link", name="Billing").click()
    page.wait_for_url(f"**/t/{org.slug}/settings/billing/")
    row = page.locator(f"#invoice-{invoice.number}")
    assert row.is_visible()
    assert "$29.00" in row.inner_text() and "paid" in row.inner_text().lower()
    assert row.get_by_role("link", name="PDF").get_attribute("href") == (
        invoice.invoice_pdf
    )
    assert page.locator("#card-on-file").inner_text().startswith("Visa •••• 4242")
    assert "$29.00 on" in page.locator("#next-charge").inner_text()
    screenshot(page, "platform-billing")

    page.get_by_role("button", name="Change card").click()
    page.wait_for_url(f"{live_stripe_emulator.url}/c/pay/**")
    assert page.get_by_text("Nothing is charged now").is_visible()
    page.fill("input[name=cardnumber]", "5555 5555 5555 4444")
    page.fill("input[name=exp-date]", "03 / 31")
    page.fill("input[name=cvc]", "123")
    page.get_by_role("button", name="Save card").click()
    page.wait_for_url(f"**/t/{org.slug}/settings/billing/")
    assert page.get_by_text("Your new card Mastercard •••• 4444 is saved.").is_visible()
    assert "expires 03/2031" in page.locator("#card-on-file").inner_text()
    screenshot(page, "platform-billing-new-card")
