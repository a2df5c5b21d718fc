"""Stripe unavailable — answering 500, timing out, or down — while invoices are
pushed and while a subscriber goes to Checkout: retries with backoff, nothing
charged twice, the waiting invoices visible, a clear message for the subscriber.
(CI keeps the emulator down for seconds; bench/faults.py for a minute.)"""

import pytest

from tests.faults import scenarios

pytestmark = pytest.mark.faults


def test_stripe_outages_during_the_push_and_during_checkout(stack_factory):
    stack = stack_factory()
    world = stack.setup_world(metered=3, shoppers=3, period_end_in=15)
    push = scenarios.stripe_outage_during_push(stack, world, how="down", down_for=8)
    print(push)
    assert push["problems"] == []
    assert push["invoices"] == push["charges"] == 3
    for n, how in enumerate(("error", "timeout", "down")):
        checkout = scenarios.stripe_outage_during_checkout(
            stack, world, how=how, shopper=n
        )
        print(checkout)
        assert checkout["problems"] == []
