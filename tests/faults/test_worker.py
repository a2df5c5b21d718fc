"""The Celery worker SIGKILLed at random points of the usage flush, billing, the
push to Stripe and webhook processing: afterwards every usage row equals the
counters, every invoice exists once and every Stripe charge once."""

import os

import pytest

from tests.faults import scenarios

pytestmark = pytest.mark.faults

# bench/faults.py kills it 20 times; CI, where time is short, fewer.
KILLS = int(os.environ.get("APIMON_FAULTS_KILLS", "6"))


def test_worker_killed_at_random_points_of_every_job(stack_factory):
    stack = stack_factory()
    world = stack.setup_world(metered=16, period_end_in=20)
    figures = scenarios.worker_kills(stack, world, kills=KILLS)
    print(figures)
    assert figures["problems"] == []
    assert figures["invoices"] == figures["charges"] == 16
