"""The scaled-out layout — two web processes and two workers on one PostgreSQL and
one Redis — under a short soak with many subscriptions, some at their quota and
rate limits: no 5xx from apimon, usage exactly what the backend answered with a
counted status, memory flat; then billing sent to both workers at once: one
invoice and one charge each (bench/faults.py soaks for minutes)."""

import os

import pytest

from tests.faults import scenarios
from tests.faults.harness.stack import Layout

pytestmark = pytest.mark.faults

SOAK_SECONDS = float(os.environ.get("APIMON_FAULTS_SOAK_SECONDS", "15"))


def test_two_web_processes_and_two_workers_soak_count_and_bill_exactly(
    stack_factory,
):
    stack = stack_factory(Layout(webs=2, workers=2))
    world = stack.setup_world(metered=6, limited=6, quota=40, rate=3, period_end_in=35)
    soak = scenarios.soak(stack, world | {"quota": 40}, seconds=SOAK_SECONDS, rate=150)
    print(soak)
    assert soak["problems"] == []
    assert soak["by_code"].get("quota_exceeded") and soak["by_code"].get("rate_limited")
    # A short run only catches a gross leak; bench/faults.py reports minutes.
    assert all(kib < 100 * 1024 for kib in soak["rss_growth_kib"].values())
    scaled = scenarios.scaled_out(stack, world, total=900)
    print(scaled)
    assert scaled["problems"] == []
    assert scaled["counted"] == scaled["answered_counted"] > 0
    assert scaled["invoices"] == scaled["charges"] == 6
