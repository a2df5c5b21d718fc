"""The gateway's quota windows follow the demo clock: a subscriber who used up this
month's quota is served again once `manage.py demo_clock advance 1 month` has moved
apimon into the next month, as in the real next month."""

from __future__ import annotations

import threading
from io import StringIO

from django.core.management import call_command

from apimon import clock
from apimon.models import DemoClock
from tests.gateway.conftest import serving

URL = "/gateway/acme/weather/v1/fast"


def test_the_next_months_quota_opens_when_the_demo_clock_gets_there(metering, redis_db):
    metering.set_tier(quota_limit=2, quota_unit="month", stop_on_quota_reach=True)
    with serving(apimon_clock=True) as gateway:
        answers = [gateway.get(URL, key=metering.key).status_code for _ in range(3)]
        assert answers == [200, 200, 429]

        call_command("demo_clock", "advance", "1", "month", stdout=StringIO())

        assert gateway.get(URL, key=metering.key).status_code == 200


def test_a_clock_moved_by_another_process_reaches_the_gateway(metering, redis_db):
    """The command ran elsewhere (only the row changed): the gateway never reads the
    database on a request; a thread refreshes its copy, and the next requests use it."""
    metering.set_tier(quota_limit=1, quota_unit="month", stop_on_quota_reach=True)
    with serving(apimon_clock=True) as gateway:
        assert gateway.get(URL, key=metering.key).status_code == 200
        assert gateway.get(URL, key=metering.key).status_code == 429

        DemoClock.objects.create(pk=1, offset_seconds=32 * 86400)
        clock.forget()  # this process's copy is stale, as after clock.TTL
        answers = []
        for _ in range(200):  # until the refreshing thread has read the row
            answers.append(gateway.get(URL, key=metering.key).status_code)
            if answers[-1] == 200:
                break
            threading.Event().wait(0.05)
        assert answers[-1] == 200 and set(answers[:-1]) <= {429}
