"""Readiness checks, shared by `/readyz` and `manage.py readyz`.

`/healthz` stays a liveness probe (the database answers a `SELECT 1`); readiness
asks more: the database, Redis when one is configured (the gateway's counters and
Celery's broker), and the background jobs — beat schedules the heartbeat every
minute and a worker runs it, so a fresh heartbeat proves both (the home page shows
it to staff). Each check is cheap: one query, one PING, one cache read."""

from __future__ import annotations

import functools
from datetime import datetime

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

HEARTBEAT_KEY = "apimon:heartbeat"


def readiness() -> dict[str, dict]:
    """{check name: {"ok": bool, "detail": str}}."""
    checks = {"database": _database()}
    if settings.REDIS_URL:
        checks["redis"] = _redis()
    checks["jobs"] = _jobs()
    return checks


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        return {"ok": False, "detail": type(exc).__name__}
    return {"ok": True, "detail": "answers"}


@functools.cache
def _redis_client(url: str) -> redis.Redis:
    # Its own small client: readiness asks the server, not the gateway's pools.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> dict:
    try:
        _redis_client(settings.REDIS_URL).ping()
    except Exception as exc:
        return {"ok": False, "detail": type(exc).__name__}
    return {"ok": True, "detail": "answers"}


def _jobs() -> dict:
    try:
        last = cache.get(HEARTBEAT_KEY)
    except Exception as exc:  # the cache lives in Redis when it is configured
        return {"ok": False, "detail": f"heartbeat unreadable: {type(exc).__name__}"}
    if not last:
        return {"ok": False, "detail": "no heartbeat yet (beat or worker not running)"}
    try:
        age = (timezone.now() - datetime.fromisoformat(last)).total_seconds()
    except (TypeError, ValueError):
        return {"ok": False, "detail": "unreadable heartbeat"}
    limit = settings.READYZ_HEARTBEAT_MAX_AGE
    if age > limit:
        return {
            "ok": False,
            "detail": f"last heartbeat {age:.0f} s ago (> {limit:g} s)",
        }
    return {"ok": True, "detail": f"last heartbeat {age:.0f} s ago"}
