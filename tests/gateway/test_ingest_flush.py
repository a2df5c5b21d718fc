"""Ingested usage reaches UsageRecord through the flush, exactly once: a batch's
units wait as PendingUsage rows, which the flush deletes in the transaction that adds
them to the usage rows. A flush killed at any step, batches committed while a flush
runs, and readers in the middle of it all count each unit once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from billing.engine import meter_usage_for_range, usage_for_ranges
from gateway import meter
from gateway.ingest import ingest_events
from gateway.models import PendingUsage
from gateway.selectors import usage_for_period, usage_in_window
from gateway.services import FLUSH_STEPS, usage_flush
from publisher import meters
from tests.gateway.conftest import usage_total
from tests.gateway.test_flush import Killed, kill_at, redis_is_drained
from tests.gateway.test_ingest import (  # noqa: F401 - fixture
    NOW,
    STARTED,
    event,
    ingest,
)

PERIOD = (STARTED, NOW + timedelta(hours=1))


def batch(metering, prefix: str, n: int, *, count: int = 2) -> list[dict]:
    return [
        event(metering, f"{prefix}-{i}", count=count, hours_ago=i % 5) for i in range(n)
    ]


def post(ingest, events) -> int:  # noqa: F811
    """Ingest a batch as the view does; the units accepted."""
    result = ingest_events(token=ingest.token, events=events)
    return sum(e["count"] for e, r in zip(events, result.results, strict=True)
               if r["status"] == "accepted")  # fmt: skip


def counted(metering) -> int:
    return usage_for_period(metering.subscription, *PERIOD)


@pytest.mark.parametrize("step", FLUSH_STEPS)
def test_a_flush_killed_at_any_step_adds_ingested_units_once(
    metering,
    ingest,  # noqa: F811
    redis_db,
    step,
):
    sub = metering.subscription
    # The gateway's counts of this hour wait in Redis, as the gateway leaves them.
    hour = meter.hour_start_us(meter.epoch_us(NOW), meter.epoch_us(STARTED))
    redis_db.hincrby(meter.LIVE, meter.usage_field(sub.pk, hour), 3)
    sent = post(ingest, batch(metering, "a", 20))
    assert counted(metering) == sent  # billing's read: pending rows included
    with pytest.raises(Killed):
        usage_flush(hook=kill_at(step))
    assert counted(metering) in (sent, sent + 3)  # neither lost nor doubled
    sent += post(ingest, batch(metering, "b", 10))  # ingest goes on meanwhile
    usage_flush()
    usage_flush()
    assert usage_total(sub) == sent + 3 == 63
    assert counted(metering) == sent + 3
    assert not PendingUsage.objects.exists()
    assert redis_is_drained(redis_db)


def test_readers_count_ingested_units_before_and_after_the_flush(
    metering,
    ingest,  # noqa: F811
):
    """Billing's reads, the quota window and the usage rows agree: before the flush
    from the pending rows, after it from the usage rows."""
    meters.meter_create(api=metering.api, actor=None, key="tokens",
                        display_name="Tokens", unit_label="token", source="ingest")  # fmt: skip
    sub = metering.subscription
    post(ingest, batch(metering, "r", 6, count=3))
    tokens = [{**event(metering, f"t-{i}", hours_ago=i), "meter": "tokens",
               "count": 1000 + i} for i in range(3)]  # fmt: skip
    post(ingest, tokens)
    day = (NOW - timedelta(hours=24), NOW + timedelta(hours=1))

    def reads():
        return (
            usage_for_ranges([(sub.pk, *PERIOD)])[(sub.pk, *PERIOD)],
            meter_usage_for_range((sub.pk, *PERIOD)),
            usage_in_window(subscription_id=sub.pk, start=day[0], end=day[1]),
            usage_in_window(
                subscription_id=sub.pk,
                start=day[0],
                end=day[1],
                subscription=sub,
                now=NOW,
                meter_key="tokens",
            ),
        )

    before = reads()
    assert before == (18, {"tokens": 3003}, 18, 3003)
    assert usage_total(sub) == 0
    assert usage_flush().pending > 0
    assert reads() == before
    assert usage_total(sub) == 18 + 3003
    assert not PendingUsage.objects.exists()


def test_a_subscription_deleted_before_the_flush_loses_only_its_own_units(
    metering,
    ingest,  # noqa: F811
):
    other = metering.subscribe(
        metering.make_app(), metering.make_api(context="quotes"), metering.tier,
        started_at=STARTED,
    )  # fmt: skip
    other.current_period_start = STARTED
    other.save()
    kept = post(ingest, batch(metering, "k", 4))
    assert post(ingest, [{**event(metering, "gone"), "subscription": other.pk}]) == 1
    other.delete()
    usage_flush()
    assert usage_total(metering.subscription) == kept
    assert not PendingUsage.objects.exists()


# -- concurrency (PostgreSQL: real connections in threads) ----------------------


def needs_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (CI)")


@pytest.mark.parametrize("step", ["locked", "applied", "aggregated"])
def test_a_batch_committed_while_a_flush_stands_in_its_transaction_counts_once(
    metering,
    ingest,  # noqa: F811
    step,
):
    """Another connection commits an ingest batch while the flush holds its lock
    (before or after it took the pending rows): that batch is added by this flush
    or by the next, once."""
    needs_postgresql()
    from django.db import connections

    sent = post(ingest, batch(metering, "before", 10))
    late: list[int] = []

    def ingest_elsewhere():
        try:
            late.append(post(ingest, batch(metering, "during", 7, count=5)))
        finally:
            connections.close_all()

    def hook(name: str) -> None:
        if name == step:
            thread = threading.Thread(target=ingest_elsewhere)
            thread.start()
            thread.join(30)

    usage_flush(hook=hook)
    assert late == [35]
    assert counted(metering) == sent + 35
    usage_flush()
    assert usage_total(metering.subscription) == sent + 35
    assert not PendingUsage.objects.exists()


def test_ingest_flushers_and_billing_reads_at_once_count_everything_once(
    metering,
    ingest,  # noqa: F811
):
    """Two ingest writers, two flushers and a reader of billing's usage in their own
    connections: the reader's figure never goes down and never exceeds what was
    ingested; at the end the rows hold exactly what was accepted."""
    needs_postgresql()
    from django.db import connections

    stop = threading.Event()
    errors: list[BaseException] = []
    accepted: list[int] = []
    seen: list[int] = []

    def guarded(body):
        def run():
            try:
                body()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connections.close_all()

        return threading.Thread(target=run)

    def writer(name: str):
        def body():
            for b in range(15):
                accepted.append(post(ingest, batch(metering, f"{name}{b}", 40)))

        return body

    def flusher():
        while not stop.is_set():
            usage_flush()

    def reader():
        while not stop.is_set():
            seen.append(counted(metering))

    writers = [guarded(writer("w1-")), guarded(writer("w2-"))]
    others = [guarded(flusher), guarded(flusher), guarded(reader)]
    for thread in writers + others:
        thread.start()
    for thread in writers:
        thread.join(120)
    stop.set()
    for thread in others:
        thread.join(60)
    usage_flush()

    assert errors == []
    total = sum(accepted)
    assert total == 2 * 15 * 40 * 2
    assert seen == sorted(seen)
    assert max(seen, default=0) <= total
    assert usage_total(metering.subscription) == total
    assert counted(metering) == total
    assert not PendingUsage.objects.exists()
