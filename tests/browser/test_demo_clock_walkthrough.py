"""The walk-through in a real browser: a subscriber with two applications pays each
subscription with its own card, changes one to a card that declines, the demo clock
moves a month, billing invoices both, and only the subscription whose card declined
goes on hold — what the subscriber sees at each step."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import Invoice, InvoiceKind, InvoiceStatus
from store.models import Subscription
from tests.browser.conftest import screenshot, sign_up
from tests.browser.test_store import PASSWORD, make_store

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DECLINES_ON_CHARGE = "4000 0000 0000 0341"


def manage(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def type_card(page, emulator_url: str, card: str) -> None:
    page.wait_for_url(f"{emulator_url}/c/pay/**")
    page.fill("input[name=cardnumber]", card)
    page.fill("input[name=exp-date]", "12 / 34")
    page.fill("input[name=cvc]", "123")
    page.get_by_role("button", name="Save card").click()
    page.wait_for_url("**/store/subscriptions/*/")


def subscribe(page, store: str, emulator_url: str, application: str) -> Subscription:
    page.goto(store + "applications/new/")
    page.fill("input[name=name]", application)
    page.get_by_role("button", name="Create application").click()
    page.goto(store)
    page.get_by_role("link", name="Weather API").first.click()
    page.locator("select[name=application]").select_option(label=application)
    page.locator("label.tier-option", has_text="Gold").click()
    page.get_by_role("button", name="Subscribe").click()
    type_card(page, emulator_url, "4242 4242 4242 4242")
    return Subscription.objects.get(application__name=application)


def test_two_cards_a_month_later_only_the_declined_one_is_on_hold(
    page, live_server, live_stripe_emulator
):
    org = make_store(live_stripe_emulator.emulator)
    store = f"/t/{org.slug}/store/"
    emulator_url = live_stripe_emulator.url
    page.goto(store)
    page.get_by_role("link", name="Sign up").first.click()
    sign_up(page, "dev@example.test", PASSWORD)
    page.wait_for_url(f"**{store}")

    dashboard = subscribe(page, store, emulator_url, "Dashboard")
    mobile = subscribe(page, store, emulator_url, "Mobile app")
    manage("demo_clock", "advance", "1", "minute")
    manage("run_billing")  # the first month of each, paid with its card
    assert {i.status for i in Invoice.objects.all()} == {InvoiceStatus.PAID}

    # The mobile app's subscription gets another card, one that declines.
    page.goto(f"{store}subscriptions/{mobile.pk}/")
    page.locator("#card").get_by_role("button", name="change").click()
    type_card(page, emulator_url, DECLINES_ON_CHARGE)
    assert "Visa •••• 0341" in page.locator("#card").inner_text()
    page.goto(f"{store}subscriptions/{dashboard.pk}/")
    assert "Visa •••• 4242" in page.locator("#card").inner_text()

    out = manage("demo_clock", "advance", "1", "month")
    assert "Demo clock:" in out
    manage("run_billing")

    renewals = {
        i.subscription_id: i for i in Invoice.objects.filter(kind=InvoiceKind.RENEWAL)
    }
    assert renewals[dashboard.pk].status == InvoiceStatus.PAID
    assert renewals[mobile.pk].status == InvoiceStatus.OPEN
    page.goto(f"{store}invoices/")
    table = page.inner_text("table")
    assert renewals[dashboard.pk].number in table
    assert renewals[mobile.pk].number in table
    assert "demo clock:" in page.inner_text(".emulator-banner")

    page.goto(f"{store}subscriptions/{mobile.pk}/")
    assert page.locator("#state").inner_text() == "ON HOLD (PAYMENT FAILED)"
    assert "Visa •••• 0341 (was Visa •••• 4242)" in page.content()
    screenshot(page, "store-subscription-own-card-on-hold")
    page.goto(f"{store}subscriptions/{dashboard.pk}/")
    assert page.locator("#state").inner_text() == "ACTIVE"
    assert "0341" not in page.content()
