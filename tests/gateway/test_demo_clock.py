"""The gateway's quota windows follow the demo clock: a subscriber who used up this
month's quota is served again once `manage.py demo_clock advance 1 month` has moved
apimon into the next month, as in the real next month."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from tests.gateway.conftest import serving

URL = "/gateway/acme/weather/v1/fast"


def test_the_next_months_quota_opens_when_the_demo_clock_gets_there(metering, redis_db):
    metering.set_tier(quota_limit=2, quota_unit="month", stop_on_quota_reach=True)
    with serving(apimon_clock=True) as gateway:
        answers = [gateway.get(URL, key=metering.key).status_code for _ in range(3)]
        assert answers == [200, 200, 429]

        call_command("demo_clock", "advance", "1", "month", stdout=StringIO())

        assert gateway.get(URL, key=metering.key).status_code == 200
