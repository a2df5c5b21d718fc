"""A short soak through the gateway with many subscriptions, some at their quota and
rate limit: no 5xx from apimon, usage exactly what the backend answered with a
counted status, memory flat (bench/faults.py runs it for minutes)."""

import os

import pytest

from tests.faults import scenarios

pytestmark = pytest.mark.faults

SECONDS = float(os.environ.get("APIMON_FAULTS_SOAK_SECONDS", "20"))


def test_a_soak_counts_exactly_and_keeps_memory_flat(stack_factory):
    stack = stack_factory()
    world = stack.setup_world(metered=6, limited=6, quota=40, rate=3)
    world["quota"] = 40
    figures = scenarios.soak(stack, world, seconds=SECONDS, rate=150)
    print(figures)
    assert figures["problems"] == []
    assert figures["by_code"].get("quota_exceeded") and figures["by_code"].get(
        "rate_limited"
    )
    # A short run only catches a gross leak; bench/faults.py reports minutes.
    assert all(kib < 100 * 1024 for kib in figures["rss_growth_kib"].values())
