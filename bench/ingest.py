"""Ingest benchmark: batches of 1,000 usage events with meters into PostgreSQL.

    .venv/bin/python bench/ingest.py [--batches 40] [--subscriptions 1000]

Each batch is a JSON body of 1,000 events over --subscriptions subscriptions of one
API with two meters besides requests (`tokens`, `credits`), a third of the events
each, posted to `POST /api/usage/events` through Django's whole request path
(middleware, the ingest token, the JSON body, `gateway.ingest.ingest_events`: one
transaction storing each `UsageEvent`, not yet aggregated). The reference, in the
same run and on the same table: a raw `COPY` of the same rows (the `UsageEvent`s of
each batch, other idempotency keys) in one transaction per batch. After each round
the usage flush adds the round's events to the hourly `UsageRecord` rows (timed
apart: it runs in the Celery worker, not in the request). At the end every meter's
`UsageRecord` rows must equal the events' quantities. Real PostgreSQL (apimon_bench)
and Redis (DB 4).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _setup

BATCH = 1000
METERS = ("requests", "tokens", "credits")


def fixtures(n: int):
    from apimon.models import User
    from apimon.services import organization_create
    from gateway.ingest import ingest_token_create
    from publisher.meters import meter_create
    from publisher.models import Api, Tier, TierVersion
    from store.models import Application, Subscription

    stamp = int(time.time())
    owner = User.objects.create_user(email=f"ingest{stamp}@bench.test", password=None)
    org = organization_create(user=owner, name=f"Ingest {stamp}")
    api = Api.objects.create(organization=org, name="Ingest", version="v1",
                             context="ingest", backend_url="http://127.0.0.1:1/",
                             state="PUBLISHED")  # fmt: skip
    for key in METERS[1:]:
        meter_create(api=api, actor=owner, key=key, display_name=key.title(),
                     unit_label=key[:-1], source="ingest")  # fmt: skip
    tier = Tier.objects.create(organization=org, name="Free")
    version = TierVersion.objects.create(tier=tier, number=1)
    apps = Application.objects.bulk_create(
        Application(organization=org, owner=owner, name=f"app {i}") for i in range(n)
    )
    started = datetime.now(UTC) - timedelta(days=1)
    subs = Subscription.objects.bulk_create(
        Subscription(
            organization=org,
            application=a,
            api=api,
            tier=tier,
            tier_version=version,
            subscriber=owner,
            state="ACTIVE",
            started_at=started,
            current_period_start=started,
        )
        for a in apps
    )
    issued = ingest_token_create(organization=org, actor=owner, name="bench")
    return org, [s.pk for s in subs], issued


def batches(count: int, sub_ids: list[int], prefix: str) -> list[list[dict]]:
    now = datetime.now(UTC)
    out = []
    for b in range(count):
        events = []
        for i in range(BATCH):
            meter = METERS[i % 3]
            at = now - timedelta(seconds=random.randint(0, 3 * 3600))
            events.append({
                "subscription": random.choice(sub_ids),
                "at": at.isoformat(),
                "meter": meter,
                "quantity": 1 if meter == "requests" else random.randint(1, 4000),
                "idempotency_key": f"{prefix}-{b}-{i}",
            })  # fmt: skip
        out.append(events)
    return out


def copy_batches(org, token, batches_: list[list[dict]], cpu: Cpu) -> list[float]:
    """COPY the same UsageEvent rows, one transaction per batch; seconds per batch."""
    from django.db import connection, transaction

    from gateway.models import UsageEvent

    table = UsageEvent._meta.db_table
    columns = ("organization_id, idempotency_key, subscription_id, at, meter, count, "
               "token_id, received_at")  # fmt: skip
    times = []
    for events in batches_:
        cpu.start()
        t = time.perf_counter()
        received = datetime.now(UTC).isoformat()
        buf = io.StringIO()
        for e in events:
            buf.write(f"{org.pk}\tcopy-{e['idempotency_key']}\t{e['subscription']}\t"
                      f"{e['at']}\t{e['meter']}\t{e['quantity']}\t{token.pk}\t"
                      f"{received}\n")  # fmt: skip
        buf.seek(0)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buf)
        times.append(time.perf_counter() - t)
        cpu.stop()
    return times


class Cpu:
    """CPU seconds spent by this process and by the PostgreSQL backend serving its
    connection (from /proc: the server is local), between start() and stop(). On a
    machine shared with other work, wall times stretch with the load; these do much
    less, so they compare two versions run under different loads."""

    def __init__(self) -> None:
        self.client = self.server = 0.0
        self._backend = None

    def _server(self) -> float:
        from django.db import connection

        if self._backend is None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self._backend = cursor.fetchone()[0]
        try:
            fields = Path(f"/proc/{self._backend}/stat").read_text().rsplit(")", 1)[1]
        except OSError:
            return 0.0
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self._t = (time.process_time(), self._server())

    def stop(self) -> None:
        self.client += time.process_time() - self._t[0]
        self.server += self._server() - self._t[1]


def post_batches(issued, batches_: list[list[dict]], cpu: Cpu) -> list[float]:
    """POST each batch to the ingest API (Django's whole path); seconds per batch."""
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    headers = {"Authorization": f"Bearer {issued.raw}"}
    times = []
    for events in batches_:
        body = json.dumps(events)
        cpu.start()
        t = time.perf_counter()
        response = client.post("/api/usage/events", body,
                               content_type="application/json", headers=headers)  # fmt: skip
        times.append(time.perf_counter() - t)
        cpu.stop()
        result = response.json()
        if response.status_code != 200 or result["accepted"] != len(events):
            raise SystemExit(f"ingest refused events: {response.status_code} "
                             f"{json.dumps(result)[:500]}")  # fmt: skip
    return times


def rate(times: list[float]) -> float:
    return BATCH * len(times) / sum(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    _setup.django_setup()
    from django.db.models import Sum

    from gateway.models import UsageRecord

    org, sub_ids, issued = fixtures(args.subscriptions)
    # As the web process does once started (apimon.asgi): what lives as long as the
    # process stays out of the cyclic GC, whose passes would land in the timings.
    gc.collect()
    gc.freeze()
    print(f"machine: {_setup.machine()}")
    print(f"database: {_setup.DATABASE_URL}")
    print(f"load average: {_setup.loadavg()}")
    print(f"{args.rounds} rounds of {args.batches} batches of {BATCH} events over "
          f"{args.subscriptions} subscriptions, meters {', '.join(METERS)}; "
          "ingest and COPY alternate\n")  # fmt: skip

    from gateway.services import usage_flush

    ingested = dict.fromkeys(METERS, 0)
    ingest_times, copy_times, flush_times = [], [], []
    ingest_cpu, copy_cpu = Cpu(), Cpu()
    for r in range(args.rounds):
        todo = batches(args.batches, sub_ids, f"r{r}")
        for events in todo:
            for e in events:
                ingested[e["meter"]] += e["quantity"]
        ingest_times += post_batches(issued, todo, ingest_cpu)
        t = time.perf_counter()
        flushed = usage_flush().pending
        flush_times.append(time.perf_counter() - t)
        copy_times += copy_batches(org, issued.token, todo, copy_cpu)
        print(f"  round {r + 1}: ingest {rate(ingest_times[-args.batches:]):,.0f} "
              f"events/s, COPY {rate(copy_times[-args.batches:]):,.0f} events/s, "
              f"flush of the round's {flushed:,} pending rows {flush_times[-1]:.2f} s "
              f"(load average {_setup.loadavg()})")  # fmt: skip

    in_db = dict(
        UsageRecord.objects.filter(organization=org)
        .values_list("meter")
        .annotate(n=Sum("count"))
        .values_list("meter", "n")
    )
    ms = [t * 1000 for t in ingest_times]
    print(f"\n  ingest API: {rate(ingest_times):,.0f} events/s; per batch of {BATCH} "
          f"median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms")  # fmt: skip
    print(f"  raw COPY:   {rate(copy_times):,.0f} events/s of the same rows")
    for name, cpu, times in (("ingest API", ingest_cpu, ingest_times),
                             ("raw COPY", copy_cpu, copy_times)):  # fmt: skip
        n = len(times)
        print(f"  CPU per batch, {name}: this process {cpu.client / n * 1000:.1f} ms "
              f"+ its PostgreSQL backend {cpu.server / n * 1000:.1f} ms = "
              f"{(cpu.client + cpu.server) / n * 1000:.1f} ms "
              f"({BATCH * n / (cpu.client + cpu.server):,.0f} events per CPU second)")  # fmt: skip
    print(f"  ratio:      ingest / COPY = {rate(ingest_times) / rate(copy_times):.2f}")
    aggregated = BATCH * len(ingest_times) / sum(flush_times)
    print(f"  flush:      {aggregated:,.0f} events/s aggregated into UsageRecord")
    target = rate(ingest_times) >= 25_000
    print(f"  → ≥ 25,000 events/s: {'yes' if target else 'NO'}")
    exact = True
    for key in METERS:
        ok = in_db.get(key, 0) == ingested[key]
        exact &= ok
        print(f"  exactness: {key:>8}: {in_db.get(key, 0)} in UsageRecord for "
              f"{ingested[key]} ingested → {'exact' if ok else 'MISMATCH'}")  # fmt: skip
    if not exact:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
