"""The scaled-out layout — two web processes and two workers on one PostgreSQL and
one Redis — counts and invoices exactly, with the billing run sent to both workers
at once."""

import pytest

from tests.faults import scenarios
from tests.faults.harness.stack import Layout

pytestmark = pytest.mark.faults


def test_two_web_processes_and_two_workers_count_and_bill_exactly(stack_factory):
    stack = stack_factory(Layout(webs=2, workers=2))
    world = stack.setup_world(metered=6, period_end_in=20)
    figures = scenarios.scaled_out(stack, world, total=1200)
    print(figures)
    assert figures["problems"] == []
    assert figures["counted"] == figures["answered_counted"] > 0
    assert figures["invoices"] == figures["charges"] == 6
