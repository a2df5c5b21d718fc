"""Fault scenarios shared by the tests (short) and bench/faults.py (long): each
starts from a running stack and a world, injects its fault by stopping, starting or
killing real processes, and returns its figures — requests sent, answered by
status, counted, billed, the difference and the documented bound — plus the list
of broken promises (`problems`, empty when the outcome is the documented one)."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

import redis

from tests.faults.harness import truth
from tests.faults.harness.load import Load
from tests.faults.harness.procs import wait_until

FLUSH_EVERY = 3.0  # apimon.celery: gateway-flush-usage


def settle_usage(stack, *, timeout: float = 60) -> dict[int, int]:
    """Wait until beat's flush has moved every count out of Redis; the rows."""
    wait_until(
        lambda: not truth.unflushed(stack), timeout=timeout, interval=0.5,
        what="the usage flush to empty Redis",
    )  # fmt: skip
    return truth.usage(stack)


def redis_loss(
    stack, world: dict, *, how: str, total: int = 1500, rate: float = 150,
    concurrency: int = 8, down_for: float = 2.0, at_fraction: float = 0.3,
) -> dict[str, Any]:  # fmt: skip
    """Redis loses its memory under gateway traffic: `how` is "restart" (killed,
    started again empty after `down_for` s) or "flushall" (FLUSHALL while up).

    Documented outcome (docs/metering.md, "When Redis loses its data"): while Redis
    is down the gateway answers 503 `metering_unavailable` and serves nothing
    unmetered; it recovers by itself; the usage counted equals what the backend
    answered with a counted status, minus at most the counts that were in Redis and
    not yet flushed when it lost them (plus requests in flight then), and never
    more than it plus those in flight."""
    subs = [s for s in world["subscriptions"] if s["kind"] == "metered"]
    before_served = sum(truth.served_counted(stack, subs).values())
    before_usage = sum(settle_usage(stack).values())
    load = Load(
        webs=stack.web_urls, path=world["path"], subscriptions=subs, total=total,
        concurrency=concurrency, rate=rate,
    ).start()  # fmt: skip
    wait_until(lambda: load.sent >= total * at_fraction, timeout=120, what="traffic")
    at_risk = sum(truth.unflushed(stack).values())
    in_flight = load.in_flight
    fault_at = time.monotonic()
    if how == "restart":
        stack.redis.kill()
        time.sleep(down_for)
        stack.redis.start()
    else:
        client = redis.Redis.from_url(stack.redis_url)
        client.flushall()
        client.close()
    result = load.join(timeout=300)
    fault_seconds = time.monotonic() - fault_at
    usage = settle_usage(stack)
    served = truth.served_counted(stack, subs)
    counted = sum(usage.values()) - before_usage
    answered = sum(served.values()) - before_served
    bound = at_risk + concurrency
    problems = []
    difference = answered - counted
    if not -concurrency <= difference <= bound:
        problems.append(f"difference {difference} outside [-{concurrency}, {bound}]")
    unexpected = result.server_errors(allowed_codes=frozenset({"metering_unavailable"}))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected 5xx: {unexpected[:3]}")
    if how == "restart" and not result.by_code().get("metering_unavailable"):
        problems.append("no 503 metering_unavailable while Redis was down")
    tail = result.outcomes[-max(20, total // 20) :]
    if any(o.code for o in tail if o.status >= 500) or any(o.status == 0 for o in tail):
        problems.append("the gateway had not recovered by the end of the load")
    return {
        "fault": f"Redis {how}"
        + (f" (down {down_for:g} s)" if how == "restart" else ""),
        **result.summary(),
        "answered_counted": answered,
        "counted": counted,
        "difference": difference,
        "bound": bound,
        "at_risk": at_risk,
        "in_flight_at_fault": in_flight,
        "fault_seconds": round(fault_seconds, 1),
        "problems": problems,
    }


def bill_and_check(stack, world: dict, *, timeout: float = 120) -> dict[str, Any]:
    """Close the world's periods (`run_billing --at` just after their end, as an
    operator would), let the workers push and charge, and check exactly-once: one
    invoice per subscription and period, its total the usage counted × price, one
    Stripe invoice and one charge each."""
    end = datetime.fromisoformat(world["period_end"])
    stack.manage("run_billing", "--at", (end + timedelta(seconds=10)).isoformat())
    return wait_billed(stack, world, timeout=timeout)


def wait_billed(stack, world: dict, *, timeout: float = 120) -> dict[str, Any]:
    subs = [s for s in world["subscriptions"] if s["kind"] == "metered"]
    usage = truth.usage(stack)

    def settled():
        local = truth.invoices(stack, world["organization_id"])
        done = [i for i in local if i["status"] in ("paid", "push_failed")]
        billed_subs = {i["subscription"] for i in local}
        wanted = {s["id"] for s in subs if usage.get(s["id"])}
        return local if billed_subs >= wanted and len(done) == len(local) else None

    local = wait_until(settled, timeout=timeout, interval=1, what="invoices paid")
    check = truth.billing_check(stack, world)
    per_sub = {i["subscription"]: i["total_minor"] for i in local}
    for sub in subs:
        want = usage.get(sub["id"], 0) * world.get("unit_minor", 1)
        if want and per_sub.get(sub["id"]) != want:
            check["problems"].append(
                f"subscription {sub['id']}: billed {per_sub.get(sub['id'])}, "
                f"usage {want}"
            )
    return check


def jitter(low: float, high: float) -> float:
    return random.uniform(low, high)
