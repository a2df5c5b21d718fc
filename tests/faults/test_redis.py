"""Redis loses its memory under gateway traffic (killed and started again empty,
then FLUSHALL): 503 metering_unavailable while it is down, recovery without
restarting apimon, and the usage billed within the documented bound of what the
backend answered with a counted status."""

import pytest

from tests.faults import scenarios

pytestmark = pytest.mark.faults


def test_redis_restarted_then_flushed_under_traffic(stack_factory):
    stack = stack_factory()
    world = stack.setup_world(metered=4)
    restart = scenarios.redis_loss(stack, world, how="restart", total=900, rate=150)
    print(restart)
    assert restart["problems"] == []
    assert restart["by_code"]["metering_unavailable"] > 0
    flushed = scenarios.redis_loss(stack, world, how="flushall", total=900, rate=150)
    print(flushed)
    assert flushed["problems"] == []
    billing = scenarios.bill_and_check(stack, world)
    print(billing)
    assert billing["problems"] == []
    assert billing["invoices"] == 4
