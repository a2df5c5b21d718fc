"""Two billing jobs at once write each invoice once: on PostgreSQL the claim
(`select_for_update(skip_locked=True)`) keeps them apart; where rows cannot be
locked (SQLite) or a run read stale rows, the invoices' unique constraints make the
second writer fail, and the engine redoes its batch one subscription at a time."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction

from billing import engine
from billing.engine import billing_run
from billing.models import Invoice
from tests.billing.conftest import add_usage, flat, per_unit, utc

AT = utc(2027, 2, 1, 0, 1)


@pytest.mark.django_db
def test_a_run_that_read_stale_rows_cannot_write_a_second_invoice(shop):
    sub = shop.subscribe(shop.tier(per_unit("0.01")), at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 2), 10)

    def snapshot():
        return list(engine.due_subscriptions(now=AT).select_related("customer"))

    first, stale = snapshot(), snapshot()
    with transaction.atomic():
        engine._invoice_batch(first, now=AT, failed=set())

    with pytest.raises(IntegrityError), transaction.atomic():
        engine._invoice_batch(stale, now=AT, failed=set())
    assert Invoice.objects.count() == 1


@pytest.mark.django_db
def test_a_batch_that_collides_is_redone_one_by_one_from_fresh_rows(shop, monkeypatch):
    subs = [
        shop.subscribe(shop.tier(flat("10.00"), name=f"T{i}"), at=utc(2027, 1, 1))
        for i in range(3)
    ]
    real = engine.write_steps
    calls = []

    def write_after_another_run(steps, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            # Another job runs now, between our read and our write.
            monkeypatch.setattr(engine, "write_steps", real)
            billing_run(now=utc(2027, 1, 1, 0, 5), flush=False, enqueue_push=False)
        return real(steps, **kwargs)

    monkeypatch.setattr(engine, "write_steps", write_after_another_run)

    result = billing_run(now=utc(2027, 1, 1, 0, 5), flush=False, enqueue_push=False)

    assert Invoice.objects.count() == 3
    assert sorted(Invoice.objects.values_list("subscription_id", flat=True)) == [
        s.pk for s in subs
    ]
    # Our batch failed on the constraint and was redone subscription by
    # subscription (the other run's rows were in our rolled-back savepoint here).
    assert result.batches > 1
    assert len(set(Invoice.objects.values_list("number", flat=True))) == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL"
)
def test_two_jobs_in_parallel_on_postgresql_write_each_invoice_once(shop):
    subs = [
        shop.subscribe(
            shop.tier(per_unit("0.01"), name=f"T{i}"),
            at=utc(2027, 1, 1),
            app_name=f"a{i}",
        )
        for i in range(40)
    ]
    for sub in subs:
        add_usage(sub, utc(2027, 1, 2), 5)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def job():
        try:
            barrier.wait()
            results.append(
                billing_run(now=AT, flush=False, batch_size=3, enqueue_push=False)
            )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert Invoice.objects.count() == 40
    assert sum(r.invoices for r in results) == 40
    assert Invoice.objects.values("number").distinct().count() == 40
