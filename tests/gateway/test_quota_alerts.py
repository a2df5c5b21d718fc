"""Quota alerts: an email at 80 % and at 100 % of a quota window, once each."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core import mail

from gateway.models import QuotaAlert
from gateway.services import quota_alerts_send
from publisher import meters
from publisher.models import MeterSource
from tests.gateway.conftest import flush_all
from tests.gateway.test_meters import credits, quota, tokens

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


# ---- meter quotas ------------------------------------------------------------------

BASE = "/gateway/acme/weather/v1"


def test_a_weighted_meter_quota_alerts_at_80_and_100_percent(metering, gateway):
    credits(metering, ops="GET /fast 4")
    quota(metering, "credits", 10)
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200  # 4
    assert quota_alerts_send(now=NOW).sent == 0
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200  # 8
    assert quota_alerts_send(now=NOW).sent == 1
    assert "80 % of your credits quota" in mail.outbox[0].subject
    assert "8 of the 10 credits per day" in mail.outbox[0].body
    assert quota_alerts_send(now=NOW).sent == 0  # nothing new
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200  # 12
    assert quota_alerts_send(now=NOW).sent == 1
    assert "whole quota" in mail.outbox[1].subject
    assert "12 of the 10 credits per day" in mail.outbox[1].body
    assert "refused (HTTP 429)" in mail.outbox[1].body
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 429
    assert quota_alerts_send(now=NOW).sent == 0
    assert len(mail.outbox) == 2
    assert sorted(QuotaAlert.objects.values_list("meter", "threshold")) == [
        ("credits", 80),
        ("credits", 100),
    ]


def test_a_reported_meter_quota_alerts_once_its_report_crosses(metering, gateway):
    tokens(metering)
    quota(metering, "tokens", 2_000, stop=False)
    report = {"Apimon-Meter-tokens": "1500"}
    assert gateway.get(f"{BASE}/headers", params=report, key=metering.key)
    assert quota_alerts_send(now=NOW).sent == 0  # 1,500 of 2,000: 75 %
    gateway.get(f"{BASE}/headers", params={"Apimon-Meter-tokens": "100"},
                key=metering.key)  # fmt: skip
    assert quota_alerts_send(now=NOW).sent == 1  # 1,600: 80 %
    assert "1600 of the 2000 tokens per day" in mail.outbox[0].body
    gateway.get(f"{BASE}/headers", params=report, key=metering.key)  # 3,100
    assert quota_alerts_send(now=NOW).sent == 1
    assert "still served and billed as overage" in mail.outbox[1].body


def test_requests_and_meter_quotas_alert_apart(metering, gateway):
    """A requests quota and a meter quota of one subscription each alert once at
    their own threshold, in the same run."""
    metering.set_tier(quota_limit=2, quota_unit="day", stop_on_quota_reach=False)
    credits(metering, ops="GET /fast 5")
    quota(metering, "credits", 5, stop=False)
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
    # 1 of 2 requests (50 %), 5 of 5 credits (100 %).
    assert quota_alerts_send(now=NOW).sent == 1
    assert "of your credits quota" not in mail.outbox[0].subject
    assert "5 of the 5 credits" in mail.outbox[0].body
    assert gateway.get(f"{BASE}/fast", key=metering.key).status_code == 200
    # 2 of 2 requests now; credits already alerted at 100 %.
    assert quota_alerts_send(now=NOW).sent == 1
    assert "2 of the 2 requests per day" in mail.outbox[1].body
    assert sorted(QuotaAlert.objects.values_list("meter", "threshold")) == [
        ("credits", 80),
        ("credits", 100),
        ("requests", 80),
        ("requests", 100),
    ]


def test_an_ingested_meter_quota_alerts_without_a_refusal(metering, redis_db):
    from gateway.ingest import ingest_events, ingest_token_create

    meters.meter_create(api=metering.api, actor=None, key="pages",
                        display_name="Pages", unit_label="page",
                        source=MeterSource.INGEST)  # fmt: skip
    quota(metering, "pages", 100)  # hard, but the gateway never sees these units
    token = ingest_token_create(organization=metering.org, actor=None).token
    event = {"subscription": metering.subscription.pk, "at": NOW.isoformat(),
             "meter": "pages", "quantity": 90, "idempotency_key": "a"}  # fmt: skip
    result = ingest_events(token=token, events=[event], now=NOW)
    assert result.count("accepted") == 1
    assert quota_alerts_send(now=NOW).sent == 1
    assert "90 of the 100 pages per day" in mail.outbox[0].body
    assert "refused" not in mail.outbox[0].body
