"""Quota alerts: an email at 80 % and at 100 % of a quota window, once each."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core import mail

from gateway.models import QuotaAlert
from gateway.services import quota_alerts_send
from tests.gateway.conftest import flush_all

URL = "/gateway/acme/weather/v1/fast"
NOW = datetime(2027, 1, 15, 10, 0, 30, tzinfo=UTC)  # the gateway clock's day


def calls(gateway, metering, n):
    return [gateway.get(URL, key=metering.key).status_code for _ in range(n)]


def test_80_and_100_percent_each_send_one_email_per_window(metering, gateway):
    metering.set_tier(quota_limit=10, quota_unit="day", stop_on_quota_reach=True)
    calls(gateway, metering, 7)
    assert quota_alerts_send(now=NOW).sent == 0
    calls(gateway, metering, 1)  # 8 of 10
    flush_all()
    assert quota_alerts_send(now=NOW).sent == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["subscriber@acme.test"]
    assert "80 %" in message.subject
    assert "8 of the 10 requests per day" in message.body
    assert "/store/apis/" in message.body

    assert quota_alerts_send(now=NOW).sent == 0  # nothing new
    calls(gateway, metering, 1)  # 9: no threshold crossed
    assert quota_alerts_send(now=NOW).sent == 0
    assert calls(gateway, metering, 2) == [200, 429]  # 10 of 10, then refused
    assert quota_alerts_send(now=NOW).sent == 1
    assert "whole quota" in mail.outbox[1].subject
    assert "refused (HTTP 429)" in mail.outbox[1].body
    assert len(mail.outbox) == 2
    assert sorted(QuotaAlert.objects.values_list("threshold", flat=True)) == [80, 100]


def test_the_next_window_alerts_again(metering, gateway):
    metering.set_tier(quota_limit=5, quota_unit="day", stop_on_quota_reach=False)
    calls(gateway, metering, 4)
    assert quota_alerts_send(now=NOW).sent == 1
    gateway.clock.now += 86400
    calls(gateway, metering, 4)
    assert quota_alerts_send(now=NOW.replace(day=16)).sent == 1
    assert len(mail.outbox) == 2


def test_jumping_past_both_thresholds_sends_one_email(metering, gateway):
    metering.set_tier(quota_limit=1, quota_unit="day", stop_on_quota_reach=False)
    calls(gateway, metering, 1)
    assert quota_alerts_send(now=NOW).sent == 1
    assert "whole quota" in mail.outbox[0].subject
    assert "still served and billed as overage" in mail.outbox[0].body
    calls(gateway, metering, 3)
    assert quota_alerts_send(now=NOW).sent == 0
    assert QuotaAlert.objects.count() == 2


def test_the_job_and_command_run_the_same_code(metering, gateway):
    from django.core.management import call_command

    from gateway.tasks import send_quota_alerts

    assert send_quota_alerts.delay().get() == {"checked": 0, "sent": 0}
    call_command("send_quota_alerts")
