"""The emulator's hosted Checkout page in a real browser, as subscribers will see it."""

import pytest

from apimon import stripe_client as sc
from tests.browser.conftest import screenshot
from tests.fixtures.stripe import connect_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_card_typed_on_the_checkout_page_is_saved_to_the_customer(
    page, live_server, live_stripe_emulator
):
    account = connect_account(live_stripe_emulator.emulator)
    client = sc.get_client()
    options = sc.request_options(account=account)
    customer = client.v1.customers.create({"email": "dev@example.test"}, options)
    session = client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "customer": customer.id,
            "currency": "usd",
            "success_url": live_server.url + "/healthz?session={CHECKOUT_SESSION_ID}",
            "cancel_url": live_server.url + "/",
        },
        options,
    )
    assert session.url.startswith(live_stripe_emulator.url)

    page.goto(session.url)
    page.fill("input[name=cardnumber]", "4242 4242 4242 4242")
    page.fill("input[name=exp-date]", "12 / 34")
    page.fill("input[name=cvc]", "123")
    screenshot(page, "emulator-checkout")
    page.get_by_role("button", name="Save card").click()
    page.wait_for_url(f"**/healthz?session={session.id}")

    done = client.v1.checkout.sessions.retrieve(session.id, {}, options)
    assert done.status == "complete"
    methods = client.v1.customers.payment_methods.list(customer.id, {}, options)
    assert [pm.card.last4 for pm in methods.data] == ["4242"]
