"""Flush benchmark: does the flush job keep up with 5,000 counted requests/s?

    .venv/bin/python bench/flush.py [--rate 5000] [--seconds 30] [--subscriptions 5000]
                                    [--meters]

A producer process runs the gateway's own ADMIT script (pipelined, paced to --rate)
for requests spread over --subscriptions subscriptions, so each batch has up to that
many distinct (subscription, hour) rows. Meanwhile this process runs
`gateway.services.usage_flush` every 3 s, as Celery beat does. Real PostgreSQL
(apimon_bench) and Redis (DB 4). At the end the rows must add up to what the producer
counted, exactly.

With --meters every request also counts three meters besides requests, as the gateway
does: two weighted operations in the same ADMIT (`credits`, 1–5 units, with a quota
counter; `searches`, 0 or 1 unit) and one response-reported (`tokens`, 1–4,000 units,
added by the REPORT script after the answer), so a batch holds up to four rows per
(subscription, hour). Each meter's rows must add up to what was counted, exactly.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import time

import _setup

FLUSH_EVERY = 3.0


METERS = ("requests", "credits", "searches", "tokens")


def produce(rate: int, seconds: float, sub_ids: list[int], done, meters: bool) -> None:
    import redis

    from gateway import meter

    client = redis.Redis.from_url(_setup.REDIS_URL)
    client.set(meter.api_key("bench/flush/v1"), "{}")
    client.set(meter.ent_key("k", "bench/flush/v1"), "{}")
    sha = client.script_load(meter.ADMIT)
    report = client.script_load(meter.REPORT)
    keys = [meter.api_key("bench/flush/v1"), meter.ent_key("k", "bench/flush/v1"),
            meter.P + "r:none", meter.P + "q:none", meter.LIVE, meter.ALERTS,
            meter.LAST_USED]  # fmt: skip
    counted = dict.fromkeys(METERS, 0)
    sent = 0
    chunk = 100
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate)
        if sent >= due:
            time.sleep(0.002)
            continue
        bucket = int(time.time() // 3600 * 3600 * 1_000_000)
        pipe = client.pipeline(transaction=False)
        for _ in range(min(chunk, due - sent)):
            sub = random.choice(sub_ids)
            args = [0, 1000, 0, 60, 0, meter.usage_field(sub, bucket), -1, sub, "k",
                    int(time.time())]  # fmt: skip
            if not meters:
                pipe.evalsha(sha, len(keys), *keys, *args)
                sent += 1
                continue
            credits, searches = random.randint(1, 5), random.randint(0, 1)
            quota = meter.quota_key(sub, "bench", 0, "credits")
            # credits: a quota too large to reach (its counter seeded at 0), so
            # ADMIT checks and counts it as the gateway does; searches: no quota.
            pipe.evalsha(sha, len(keys) + 2, *keys, quota, "",
                         *args, 2,
                         10**12, 3600, 1, meter.usage_field(sub, bucket, "credits"),
                         credits, 0,
                         0, 0, 0, meter.usage_field(sub, bucket, "searches"),
                         searches, -1)  # fmt: skip
            tokens = random.randint(1, 4000)
            pipe.evalsha(report, 3, meter.LIVE, meter.ALERTS, "",
                         meter.usage_field(sub, bucket, "tokens"), tokens, 0,
                         sub)  # fmt: skip
            counted["credits"] += credits
            counted["searches"] += searches
            counted["tokens"] += tokens
            sent += 1
        pipe.execute()
    counted["requests"] = sent
    for key, value in counted.items():
        done[key] = value


def fixtures(n: int) -> list[int]:
    from datetime import UTC, datetime

    from apimon.models import User
    from apimon.services import organization_create
    from publisher.models import Api, Tier, TierVersion
    from store.models import Application, Subscription

    stamp = int(time.time())
    owner = User.objects.create_user(email=f"flush{stamp}@bench.test", password=None)
    org = organization_create(user=owner, name=f"Flush {stamp}")
    api = Api.objects.create(organization=org, name="Flush", version="v1",
                             context="flush", backend_url="http://127.0.0.1:1/",
                             state="PUBLISHED")  # fmt: skip
    tier = Tier.objects.create(organization=org, name="Free")
    version = TierVersion.objects.create(tier=tier, number=1)
    apps = Application.objects.bulk_create(
        Application(organization=org, owner=owner, name=f"app {i}") for i in range(n)
    )
    subs = Subscription.objects.bulk_create(
        Subscription(
            organization=org,
            application=a,
            api=api,
            tier=tier,
            tier_version=version,
            subscriber=owner,
            state="ACTIVE",
            started_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        for a in apps
    )
    return [s.pk for s in subs], org


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--subscriptions", type=int, default=5000)
    parser.add_argument(
        "--meters", action="store_true", help="count three meters besides requests"
    )
    args = parser.parse_args()

    _setup.django_setup()
    from django.db.models import Count, Sum

    from gateway.models import UsageRecord
    from gateway.redis import get_redis
    from gateway.services import usage_flush

    get_redis().flushdb()  # DB 4 only
    sub_ids, org = fixtures(args.subscriptions)
    print(f"machine: {_setup.machine()}")
    print(f"database: {_setup.DATABASE_URL}   redis: {_setup.REDIS_URL}")
    print(f"load average: {_setup.loadavg()}")
    print(f"producer: 1 process, the ADMIT script pipelined, target {args.rate} "
          f"counted requests/s over {args.subscriptions} subscriptions for "
          f"{args.seconds:.0f} s; flusher: this process, every {FLUSH_EVERY:.0f} s")  # fmt: skip
    if args.meters:
        print("meters: requests, credits and searches (ADMIT), tokens (REPORT)")
    print()

    done = multiprocessing.Manager().dict()
    producer = multiprocessing.Process(
        target=produce, args=(args.rate, args.seconds, sub_ids, done, args.meters)
    )
    producer.start()
    flushes = []
    while producer.is_alive():
        t = time.monotonic()
        result = usage_flush()
        flushes.append((time.monotonic() - t, result))
        time.sleep(max(0.0, FLUSH_EVERY - (time.monotonic() - t)))
    producer.join()
    t = time.monotonic()
    final = usage_flush()
    flushes.append((time.monotonic() - t, final))

    durations = [d for d, r in flushes if r.requests]
    rows = [r.rows for d, r in flushes if r.requests]
    requests = done["requests"]
    in_db = dict(
        UsageRecord.objects.filter(organization=org)
        .values_list("meter")
        .annotate(n=Sum("count"))
        .values_list("meter", "n")
    )
    db_rows = UsageRecord.objects.filter(organization=org).aggregate(n=Count("pk"))
    busy = sum(durations)
    print(
        f"  produced:  {requests} counted requests in {args.seconds:.0f} s "
        f"= {requests / args.seconds:.0f} req/s"
    )
    print(
        f"  flushes:   {len(durations)} with data; rows per flush mean "
        f"{statistics.mean(rows):.0f}, max {max(rows)}; {db_rows['n']} rows in all"
    )
    print(
        f"  duration:  mean {statistics.mean(durations) * 1000:.0f} ms, max "
        f"{max(durations) * 1000:.0f} ms (interval {FLUSH_EVERY * 1000:.0f} ms)"
    )
    print(
        f"  capacity:  {requests / busy:.0f} counted requests flushed per second "
        f"of flushing ({requests / busy / args.rate:.1f}× the target rate)"
    )
    exact = True
    for key in METERS if args.meters else ("requests",):
        ok = in_db.get(key, 0) == done[key]
        exact &= ok
        print(
            f"  exactness: {key:>8}: {in_db.get(key, 0)} in UsageRecord for "
            f"{done[key]} counted → {'exact' if ok else 'MISMATCH'}"
        )
    keeps_up = max(durations) < FLUSH_EVERY
    print(f"  → keeps up with {args.rate} req/s: {'yes' if keeps_up else 'NO'}; "
          f"exact: {'yes' if exact else 'NO'}\n")  # fmt: skip
    if not exact:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
