"""PostgreSQL crashes and comes back during a usage flush (under gateway traffic)
and during a billing run: retried, nothing lost, nothing doubled; one invoice and
one charge per period."""

import pytest

from tests.faults import scenarios

pytestmark = pytest.mark.faults


def test_postgres_crash_during_a_flush_then_during_a_billing_run(stack_factory):
    stack = stack_factory()
    world = stack.setup_world(metered=4, period_end_in=25)
    flush = scenarios.postgres_restart_during_flush(stack, world, total=600)
    print(flush)
    assert flush["problems"] == []
    assert flush["counted"] == flush["answered_counted"] > 0
    billing = scenarios.postgres_restart_during_billing(stack, world)
    print(billing)
    assert billing["problems"] == []
    assert billing["invoices"] == billing["charges"] == 4
