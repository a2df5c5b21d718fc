"""The usage flush (docs/metering.md): a flush killed between any two steps loses
nothing, and two flushers at once count nothing twice.

Each test counts requests through the real admit script, stops a flush at a named
step (the hook raises there, as a killed worker would stop), runs flushes again, and
checks the rows against the requests the gateway counted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import meter
from gateway.models import FlushBatch, UsageRecord
from gateway.services import FLUSH_STEPS, usage_flush
from store.keys import hash_key
from store.models import ApiKey
from tests.gateway.conftest import T0, usage_total

URL = "/gateway/acme/weather/v1/fast"


class Killed(Exception):
    pass


def kill_at(step_name: str):
    def hook(step: str) -> None:
        if step == step_name:
            raise Killed(step)

    return hook


def traffic(gateway, metering, n: int) -> None:
    for _ in range(n):
        assert gateway.get(URL, key=metering.key).status_code == 200


def redis_is_drained(client) -> bool:
    return (
        client.zcard(meter.PENDING) == 0
        and not client.exists(meter.LIVE)
        and not client.keys(meter.P + "batch:*")
    )


@pytest.mark.parametrize("step", FLUSH_STEPS)
def test_a_flush_killed_at_any_step_loses_and_doubles_nothing(
    metering, gateway, redis_db, step
):
    traffic(gateway, metering, 3)
    usage_flush()  # an earlier, complete flush
    traffic(gateway, metering, 4)
    with pytest.raises(Killed):
        usage_flush(hook=kill_at(step))
    traffic(gateway, metering, 2)  # the gateway keeps counting meanwhile
    usage_flush()
    usage_flush()
    assert usage_total(metering.subscription) == 9
    assert redis_is_drained(redis_db)


@pytest.mark.parametrize("step", FLUSH_STEPS)
def test_two_crashes_in_a_row_still_count_once(metering, gateway, redis_db, step):
    traffic(gateway, metering, 2)
    with pytest.raises(Killed):
        usage_flush(hook=kill_at(step))
    traffic(gateway, metering, 1)
    with pytest.raises(Killed):
        usage_flush(hook=kill_at(step))
    usage_flush()
    assert usage_total(metering.subscription) == 3


@pytest.mark.parametrize("step", ["sealed", "listed", "committed", "forgot"])
def test_a_second_flusher_running_in_between_counts_nothing_twice(
    metering, gateway, redis_db, step
):
    """Flusher B runs completely while flusher A stands at `step` (outside A's
    transaction); then A goes on. The rows still say what the gateway counted."""
    traffic(gateway, metering, 5)
    ran = []

    def hook(name: str) -> None:
        if name == step and not ran:
            ran.append(name)
            traffic(gateway, metering, 1)
            usage_flush()

    usage_flush(hook=hook)
    usage_flush()
    assert ran == [step]
    assert usage_total(metering.subscription) == 6
    assert redis_is_drained(redis_db)


def test_a_batch_is_applied_once_even_if_redis_still_lists_it(
    metering, gateway, redis_db
):
    traffic(gateway, metering, 2)
    with pytest.raises(Killed):
        usage_flush(hook=kill_at("committed"))
    assert FlushBatch.objects.count() == 1
    assert redis_db.zcard(meter.PENDING) == 1  # the batch is still there
    result = usage_flush()
    assert (result.batches, result.requests) == (0, 0)
    assert usage_total(metering.subscription) == 2


def test_a_failed_answer_after_a_flush_is_taken_back_in_a_later_batch(
    metering, gateway, redis_db
):
    """The gateway counts a request when it admits it and takes it back when the
    answer does not count; a flush may fall in between."""
    from gateway.proxy import Grant

    grant_field = meter.usage_field(metering.subscription.pk, 0)
    redis_db.hincrby(meter.LIVE, grant_field, 1)  # admitted
    usage_flush()  # the +1 is flushed
    redis_db.eval(meter.RELEASE, 2, "", meter.LIVE, grant_field)  # answer was a 500
    usage_flush()
    assert usage_total(metering.subscription) == 0
    assert Grant  # the bucket of the field is the anchor-aligned hour


def test_flush_groups_counts_per_subscription_and_hour(metering, gateway):
    other_app = metering.make_app()
    raw, _ = metering.make_key(other_app)
    other_sub = metering.subscribe(other_app, metering.api, metering.tier)
    traffic(gateway, metering, 3)
    gateway.clock.now = T0 + 3600
    traffic(gateway, metering, 2)
    assert gateway.get(URL, key=raw).status_code == 200
    result = usage_flush()
    assert (result.batches, result.rows, result.requests) == (1, 3, 6)
    rows = set(UsageRecord.objects.values_list("subscription_id", "hour", "count"))
    h10 = datetime(2027, 1, 15, 10, tzinfo=UTC)
    h11 = datetime(2027, 1, 15, 11, tzinfo=UTC)
    assert rows == {
        (metering.subscription.pk, h10, 3),
        (metering.subscription.pk, h11, 2),
        (other_sub.pk, h11, 1),
    }
    assert all(r.organization_id == metering.org.pk for r in UsageRecord.objects.all())


def test_flush_records_when_keys_were_last_used(metering, gateway):
    traffic(gateway, metering, 1)
    usage_flush()
    key = ApiKey.objects.get(key_hash=hash_key(metering.key))
    assert key.last_used_at == datetime.fromtimestamp(T0, UTC)


def test_the_flush_job_and_command_run_the_same_code(metering, gateway):
    from django.core.management import call_command

    from gateway.tasks import flush_usage

    traffic(gateway, metering, 2)
    assert flush_usage.delay().get()["requests"] == 2
    traffic(gateway, metering, 1)
    call_command("flush_usage")
    assert usage_total(metering.subscription) == 3


def test_flushers_in_parallel_threads_count_everything_once(metering, redis_db):
    """Real concurrency: two flushers in their own threads and database connections,
    while counts keep arriving."""
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL (CI): SQLite's shared in-memory test database locks tables"
        )
    field = meter.usage_field(metering.subscription.pk, 0)
    stop = threading.Event()
    errors = []

    def flusher():
        try:
            while not stop.is_set():
                usage_flush()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flusher) for _ in range(2)]
    for t in threads:
        t.start()
    added = 0
    for _ in range(300):
        redis_db.hincrby(meter.LIVE, field, 3)
        added += 3
    stop.set()
    for t in threads:
        t.join(30)
    usage_flush()
    assert errors == []
    assert usage_total(metering.subscription) == added
    assert redis_is_drained(redis_db)
