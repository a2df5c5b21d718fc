"""Redis loses its memory under gateway traffic (killed and started again empty,
then FLUSHALL), then PostgreSQL crashes inside a usage flush and inside a billing
run, on one stack:

- Redis down: 503 metering_unavailable (and /readyz 503), recovery without
  restarting apimon, usage within the documented bound of what the backend answered
  with a counted status;
- PostgreSQL down: nothing lost, nothing doubled; one invoice and one charge per
  subscription and period, their totals the usage counted."""

import pytest

from tests.faults import scenarios

pytestmark = pytest.mark.faults


def test_redis_then_postgres_fail_under_traffic_and_billing(stack_factory):
    stack = stack_factory()
    world = stack.setup_world(metered=4, period_end_in=50)
    restart = scenarios.redis_loss(stack, world, how="restart", total=750, rate=150)
    print(restart)
    assert restart["problems"] == []
    assert restart["by_code"]["metering_unavailable"] > 0
    flushed = scenarios.redis_loss(stack, world, how="flushall", total=600, rate=150)
    print(flushed)
    assert flushed["problems"] == []
    flush = scenarios.postgres_restart_during_flush(stack, world, total=600)
    print(flush)
    assert flush["problems"] == []
    assert flush["counted"] == flush["answered_counted"] > 0
    billing = scenarios.postgres_restart_during_billing(stack, world)
    print(billing)
    assert billing["problems"] == []
    assert billing["invoices"] == billing["charges"] == 4
