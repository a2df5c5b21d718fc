"""`/healthz` (liveness) stays a single cheap query; `/readyz` (readiness) checks the
database, Redis when configured and the background jobs' heartbeat, answering 200 or
503 with small JSON; `manage.py readyz` runs the same checks for processes without
HTTP."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apimon.health import HEARTBEAT_KEY
from apimon.tasks import heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_heartbeat():
    cache.delete(HEARTBEAT_KEY)
    yield
    cache.delete(HEARTBEAT_KEY)


def test_healthz_is_one_query(client, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok")


def test_readyz_is_ready_when_the_jobs_beat(client):
    heartbeat()  # what beat schedules and a worker runs every minute
    response = client.get("/readyz", headers={"Host": "10.0.0.7:8000"})
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["jobs"]["ok"]
    assert response["Cache-Control"] == "no-store"


def test_readyz_is_503_without_a_heartbeat_and_says_why(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "no heartbeat yet" in response.json()["checks"]["jobs"]["detail"]


def test_a_stale_heartbeat_means_the_jobs_are_down(client, settings):
    settings.READYZ_HEARTBEAT_MAX_AGE = 180
    cache.set(HEARTBEAT_KEY, (timezone.now() - timedelta(minutes=5)).isoformat())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "300 s ago" in response.json()["checks"]["jobs"]["detail"]


def test_readyz_checks_redis_when_it_is_configured(client, settings):
    heartbeat()
    settings.REDIS_URL = None
    assert "redis" not in client.get("/readyz").json()["checks"]
    from gateway import redis as gateway_redis

    # A Redis that refuses connections (nothing listens on port 1).
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    gateway_redis.reset_clients()
    try:
        response = client.get("/readyz")
    finally:
        gateway_redis.reset_clients()
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == {
        "ok": False,
        "detail": "ConnectionError",
    }


def test_the_command_exits_non_zero_until_ready(capsys):
    with pytest.raises(CommandError, match="not ready: jobs"):
        call_command("readyz")
    heartbeat()
    call_command("readyz")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["jobs"]["ok"]
