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
from tests.faults.harness.procs import HarnessError, wait_until

FLUSH_EVERY = 3.0  # apimon.celery: gateway-flush-usage


def readyz_status(stack) -> tuple[int, str]:
    """(status of /readyz, the first failing check) of the first web process."""
    import httpx

    try:
        answer = httpx.get(f"{stack.web_url()}/readyz", timeout=15)
    except httpx.HTTPError as exc:
        return 0, type(exc).__name__
    failing = [n for n, c in answer.json()["checks"].items() if not c["ok"]]
    return answer.status_code, failing[0] if failing else ""


def settle_usage(stack, *, timeout: float = 180) -> dict[int, int]:
    """Wait until beat's flush has moved every count out of Redis; the rows."""
    wait_until(
        lambda: not truth.unflushed(stack), timeout=timeout, interval=0.5,
        what="the usage flush to empty Redis",
    )  # fmt: skip
    return truth.usage(stack)


def metered(world: dict) -> list[dict]:
    return [s for s in world["subscriptions"] if s["kind"] == "metered"]


def totals(stack, subs: list[dict]) -> tuple[int, int]:
    """(answered with a counted status by the backend, counted in the rows), summed,
    once the flush has emptied Redis."""
    usage = settle_usage(stack)
    counted = sum(usage.get(s["id"], 0) for s in subs)
    return sum(truth.served_counted(stack, subs).values()), counted


def traffic(stack, world: dict, subs: list[dict], **load: Any) -> Load:
    """Start a Load over `subs` through every web process."""
    return Load(
        webs=stack.web_urls, path=world["path"], subscriptions=subs, **load
    ).start()


def wait_period_end(world: dict) -> None:
    end = datetime.fromisoformat(world["period_end"])
    wait_until(
        lambda: datetime.now(end.tzinfo) > end + timedelta(seconds=2),
        timeout=max(1.0, (end - datetime.now(end.tzinfo)).total_seconds() + 30),
        interval=0.5, what="the period to end",
    )  # fmt: skip


def per_subscription_problems(stack, subs: list[dict]) -> list[str]:
    """Each subscription's rows against what the backend answered it."""
    usage = truth.usage(stack)
    served = truth.served_counted(stack, subs)
    return [
        f"subscription {s['id']}: counted {usage.get(s['id'], 0)},"
        f" answered {served[s['id']]}"
        for s in subs
        if usage.get(s["id"], 0) != served[s["id"]]
    ]


def redis_loss(
    stack, world: dict, *, how: str, total: int = 1500, rate: float = 150,
    concurrency: int = 8, down_for: float = 2.0, at_fraction: float = 0.3,
) -> dict[str, Any]:  # fmt: skip
    """Redis loses its memory under gateway traffic: `how` is "restart" (killed,
    started again empty after `down_for` s) or "flushall" (FLUSHALL while up).

    Documented outcome (docs/metering.md, "When Redis or PostgreSQL fails"): while Redis
    is down the gateway answers 503 `metering_unavailable` and serves nothing
    unmetered; it recovers by itself; the usage counted equals what the backend
    answered with a counted status, minus at most the counts that were in Redis and
    not yet flushed when it lost them (plus requests in flight then), never more."""
    subs = metered(world)
    before_served, before_usage = totals(stack, subs)
    load = traffic(stack, world, subs, total=total, concurrency=concurrency, rate=rate)
    wait_until(lambda: load.sent >= total * at_fraction, timeout=120, what="traffic")
    client = redis.Redis.from_url(stack.redis_url)
    fault_at = time.monotonic()
    readyz = None
    if how == "restart":
        at_risk = truth.unflushed_total(client)
        stack.redis.kill()
        readyz = readyz_status(stack)
        time.sleep(down_for)
        stack.redis.start()
    else:
        at_risk = truth.unflushed_total(client, then_flushall=True)
    client.close()
    in_flight = load.in_flight
    result = load.join(timeout=300)
    fault_seconds = time.monotonic() - fault_at
    answered, counted = totals(stack, subs)
    answered, counted = answered - before_served, counted - before_usage
    bound = at_risk + concurrency
    problems = []
    difference = answered - counted
    if not 0 <= difference <= bound:
        problems.append(f"difference {difference} outside [0, {bound}]")
    unexpected = result.server_errors(allowed_codes=frozenset({"metering_unavailable"}))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected 5xx: {unexpected[:3]}")
    if how == "restart" and not result.by_code().get("metering_unavailable"):
        problems.append("no 503 metering_unavailable while Redis was down")
    if how == "restart" and readyz != (503, "redis"):
        problems.append(f"/readyz while Redis was down: {readyz}")
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
        "readyz_during": readyz,
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
    subs = metered(world)
    usage = truth.usage(stack, before=datetime.fromisoformat(world["period_end"]))

    def settled():
        local = truth.invoices(stack, world["organization_id"])
        done = [i for i in local if i["status"] in ("paid", "push_failed")]
        billed_subs = {i["subscription"] for i in local}
        wanted = {s["id"] for s in subs if usage.get(s["id"])}
        return local if billed_subs >= wanted and len(done) == len(local) else None

    late = []
    try:
        local = wait_until(settled, timeout=timeout, interval=1, what="invoices")
    except HarnessError:
        local = truth.invoices(stack, world["organization_id"])
        late = [
            f"not settled after {timeout:g} s: "
            + ", ".join(
                f"{i['id']}:{i['status']}:{i['last_push_error'][:60]}"
                for i in local
                if i["status"] != "paid"
            )
            + f"; webhooks unprocessed: {unprocessed_webhooks(stack, timeout=0)}"
        ]
    check = truth.billing_check(stack, world)
    check["problems"] += late
    per_sub = {i["subscription"]: i["total_minor"] for i in local}
    for sub in subs:
        want = usage.get(sub["id"], 0) * world.get("unit_minor", 1)
        if want and per_sub.get(sub["id"]) != want:
            check["problems"].append(
                f"subscription {sub['id']}: billed {per_sub.get(sub['id'])}, "
                f"usage {want}"
            )
    return check


FLUSH_LOCK = 7_207_001  # gateway.services._FLUSH_LOCK_ID


def postgres_restart_during_flush(
    stack, world: dict, *, total: int = 900, rate: float = 150,
    concurrency: int = 8, down_for: float = 1.0, mode: str = "immediate",
) -> dict[str, Any]:  # fmt: skip
    """PostgreSQL goes down (pg_ctl stop -m immediate: a crash) while a usage flush
    is inside its transaction — held there by the harness taking the flush's
    advisory lock first — under gateway traffic, and comes back `down_for` s later.

    Documented outcome (docs/metering.md, "The flush protocol"): the flush's
    transaction rolls back, its batches stay pending in Redis, the next flush applies
    them: nothing lost, nothing doubled — usage equals what the backend answered
    with a counted status, exactly. The gateway keeps serving from Redis meanwhile."""
    subs = metered(world)
    before_served, before_usage = totals(stack, subs)
    load = traffic(stack, world, subs, total=total, concurrency=concurrency, rate=rate)
    wait_until(lambda: load.sent >= total * 0.2, timeout=120, what="traffic")
    with stack.holding(f"SELECT pg_advisory_lock({FLUSH_LOCK})"):
        wait_until(
            stack.lock_waiters, timeout=30, interval=0.2,
            what="a usage flush waiting inside its transaction",
        )  # fmt: skip
        at_risk = sum(truth.unflushed(stack).values())
        stack.postgres.stop(mode)
        readyz = readyz_status(stack)
        time.sleep(down_for)
        stack.postgres.start()
    result = load.join(timeout=300)
    answered, counted = totals(stack, subs)
    answered, counted = answered - before_served, counted - before_usage
    problems = []
    if counted != answered:
        problems.append(f"counted {counted} for {answered} answered")
    if readyz != (503, "database"):
        problems.append(f"/readyz while PostgreSQL was down: {readyz}")
    unexpected = result.server_errors(allowed_codes=frozenset({"metering_unavailable"}))
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected 5xx: {unexpected[:3]}")
    return {
        "fault": f"PostgreSQL crash ({mode}, down {down_for:g} s) during a usage flush",
        "readyz_during": readyz,
        **result.summary(),
        "answered_counted": answered,
        "counted": counted,
        "difference": answered - counted,
        "bound": 0,
        "at_risk": at_risk,
        "problems": problems,
    }


def postgres_restart_during_billing(
    stack, world: dict, *, down_for: float = 1.0, mode: str = "immediate",
    timeout: float = 180,
) -> dict[str, Any]:  # fmt: skip
    """PostgreSQL goes down while the worker's billing run is inside a batch's
    transaction (held there by the harness locking the invoice-number table, which
    every batch writes before its invoices), then comes back; beat's next run (sent
    here at once instead of waiting a minute) finishes the job.

    Documented outcome (docs/billing.md, "The job"): the batch rolls back whole,
    the next run redoes it; one invoice per subscription and period, one Stripe
    invoice and one charge each."""
    wait_period_end(world)
    settle_usage(stack)
    with stack.holding("BEGIN; LOCK TABLE billing_invoicesequence IN EXCLUSIVE MODE"):
        stack.send_task("billing.tasks.run_billing")
        wait_until(
            stack.lock_waiters, timeout=60, interval=0.2,
            what="the billing run waiting inside its transaction",
        )  # fmt: skip
        written = len(truth.invoices(stack, world["organization_id"]))
        stack.postgres.restart(mode=mode, down_for=down_for)
    stack.send_task("billing.tasks.run_billing")
    check = wait_billed(stack, world, timeout=timeout)
    check["fault"] = (
        f"PostgreSQL crash ({mode}, down {down_for:g} s) during a billing run"
    )
    check["invoices_before_restart"] = written
    if written:
        check["problems"].append(f"{written} invoices committed before the crash")
    return check


TASK_KINDS = {
    "gateway.tasks.flush_usage": "flush",
    "billing.tasks.run_billing": "billing",
    "billing.tasks.push_invoice": "push",
    "billing.tasks.process_webhook_event": "webhook",
}


def running_tasks(worker) -> list[str]:
    """The kinds of the tasks a worker had started and not finished, from its log
    ("Task <name>[<id>] received" … "succeeded" / "raised" / "retry")."""
    import re

    text = worker.tail(150_000).rsplit("==== start #", 1)[-1]
    started: dict[str, str] = {}
    for name, task_id, what in re.findall(
        r"Task ([\w.]+)\[([0-9a-f-]+)\] (received|succeeded|raised|retry)", text
    ):
        if what == "received":
            started[task_id] = name
        else:
            started.pop(task_id, None)
    return [TASK_KINDS.get(name, name.rsplit(".", 1)[-1]) for name in started.values()]


def unprocessed_webhooks(stack, *, timeout: float = 30) -> list:
    """Webhook events still unprocessed after `timeout` s (those in flight get
    that long to be processed): (type, status, attempts, received) each."""
    sql = (
        "SELECT type, status, attempts, received_at FROM billing_webhookevent"
        " WHERE processed_at IS NULL ORDER BY id"
    )
    try:
        wait_until(lambda: not stack.query(sql), timeout=timeout, interval=1)
    except HarnessError:
        return stack.query(sql)
    return []


def _kill_during(worker, kinds: set[str], rng, *, wait: float = 8.0) -> str:
    """SIGKILL the worker a random 0–100 ms after it starts a task of one of
    `kinds` (or after `wait` s if none comes), restart it; what it was running."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not kinds & set(running_tasks(worker)):
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.1))
    running = ",".join(running_tasks(worker)) or "idle"
    worker.kill()
    worker.start()
    return running


def worker_kills(
    stack, world: dict, *, kills: int = 20, rate: float = 60, seed: int | None = None,
    timeout: float = 300,
) -> dict[str, Any]:  # fmt: skip
    """The Celery worker killed with SIGKILL (with its forked children) `kills`
    times at random points while it flushes usage under traffic, then while it bills,
    pushes invoices to Stripe and processes Stripe's webhooks; restarted each time.

    Documented outcome: every job is idempotent and a lost one is picked up again
    (the flush by beat every 3 s, billing by beat every minute, pushes and webhook
    events by the billing job's sweeps): afterwards every usage row equals the
    counters (what the backend answered with a counted status), every invoice exists
    once, every Stripe charge once."""
    rng = random.Random(seed)
    worker = stack.workers[0]
    subs = metered(world)
    end = datetime.fromisoformat(world["period_end"])
    seconds_left = (end - datetime.now(end.tzinfo)).total_seconds()
    load = traffic(
        stack,
        world,
        subs,
        total=max(60, int((seconds_left - 3) * rate)),
        concurrency=4,
        rate=rate,
    )
    hit: list[str] = []
    flush_kills = kills // 2
    for _ in range(flush_kills):  # while the gateway counts and beat flushes
        hit.append(_kill_during(worker, {"flush"}, rng))
    result = load.join(timeout=timeout)
    wait_period_end(world)
    wanted = [{"billing"}, {"push"}, {"webhook"}]
    for n in range(kills - flush_kills):  # while it bills, pushes, takes webhooks
        stack.send_task("billing.tasks.run_billing")  # as beat does; idempotent
        hit.append(_kill_during(worker, wanted[n % 3], rng))
    # What a crash left half-done is picked up by the sweeps of later billing runs
    # (invoices left as drafts, webhook events whose task was lost): run them as
    # beat would minutes later, until nothing is left (at most three times).
    for _ in range(3):
        stack.manage(
            "run_billing", "--at",
            (datetime.now(end.tzinfo) + timedelta(minutes=6)).isoformat(),
        )  # fmt: skip
        check = wait_billed(stack, world, timeout=timeout)
        if not check["problems"] and not unprocessed_webhooks(stack, timeout=15):
            break
    answered, counted = totals(stack, subs)
    check["problems"] += per_subscription_problems(stack, subs)
    stuck = unprocessed_webhooks(stack)
    if stuck:
        check["problems"].append(f"webhook events never processed: {stuck}")
    from collections import Counter

    return {
        "fault": f"Celery worker SIGKILLed {kills} times",
        **result.summary(),
        "killed_during": dict(Counter(k for h in hit for k in h.split(","))),
        "answered_counted": answered,
        "counted": counted,
        "difference": answered - counted,
        "bound": 0,
        **check,
    }


def jitter(low: float, high: float) -> float:
    return random.uniform(low, high)


def _stripe_fault(stack, how: str):
    """Start a Stripe outage: "error" (500s), "timeout" (requests held past
    STRIPE_TIMEOUT, then carried out) or "down" (the emulator stopped)."""
    if how == "error":
        stack.emulator_control("faults", mode="error")
    elif how == "timeout":
        held = float(stack.env["STRIPE_TIMEOUT"]) + 2
        stack.emulator_control("faults", mode="timeout", delay=str(held))
    elif how == "down":
        stack.emulator.stop()
    else:
        raise ValueError(how)


def _stripe_back(stack, how: str) -> None:
    if how == "down":
        stack.emulator.start()
    else:
        stack.emulator_control("faults", mode="off")


def stripe_outage_during_push(
    stack, world: dict, *, how: str, down_for: float = 10.0, timeout: float = 240,
) -> dict[str, Any]:  # fmt: skip
    """Stripe unavailable (`how`: "error", "timeout", "down") for `down_for` s while
    the worker pushes the period's invoices.

    Documented outcome (docs/billing.md, "The push"): the push task retries with
    backoff; meanwhile each waiting invoice says "Stripe unavailable, retrying" (in
    the admin's list); when Stripe is back every invoice is pushed and paid once:
    one Stripe invoice and one charge each."""
    subs = metered(world)
    end = datetime.fromisoformat(world["period_end"])
    result = traffic(stack, world, subs, total=200, concurrency=4, rate=100).join()
    if datetime.now(end.tzinfo) >= end:
        raise HarnessError("the traffic ended after the period: make it end later")
    wait_period_end(world)
    settle_usage(stack)
    _stripe_fault(stack, how)
    started = time.monotonic()
    stack.send_task("billing.tasks.run_billing")
    waiting = wait_until(
        lambda: [
            i for i in truth.invoices(stack, world["organization_id"])
            if i["last_push_error"].startswith("Stripe unavailable")
        ],
        timeout=max(60.0, down_for + 30), interval=0.5,
        what="an invoice waiting for Stripe",
    )  # fmt: skip
    time.sleep(max(0.0, down_for - (time.monotonic() - started)))
    _stripe_back(stack, how)
    back = time.monotonic()
    check = wait_billed(stack, world, timeout=timeout)
    check.update(
        fault=f"Stripe {how} for {down_for:g} s during the push",
        **{"load_" + k: v for k, v in result.summary().items()},
        waiting_shown=len(waiting),
        recovered_seconds=round(time.monotonic() - back, 1),
    )
    if not waiting:
        check["problems"].append("no invoice showed that it waits for Stripe")
    return check


def stripe_outage_during_checkout(
    stack, world: dict, *, how: str, shopper: int = 0
) -> dict[str, Any]:
    """A subscriber subscribes to a paid tier (the store's Subscribe button, which
    opens a Stripe Checkout Session) while Stripe is unavailable, then again once
    it is back.

    Documented outcome (docs/billing.md, "Checkout while Stripe is unavailable"):
    the store answers within STRIPE_TIMEOUT × tries with "The payment provider is
    not reachable; try again." next to the form and writes nothing; the next try,
    with Stripe back, goes to Checkout with one Stripe customer for the subscriber."""
    from tests.faults.harness.browser import StoreSession

    shopper = world["shoppers"][shopper]
    session = StoreSession(stack.web_url(), shopper["email"], shopper["password"])
    problems = []
    _stripe_fault(stack, how)
    try:
        started = time.monotonic()
        refused = session.subscribe(world["org"], world["api_id"], shopper)
        waited = time.monotonic() - started
    finally:
        _stripe_back(stack, how)
    message = "The payment provider is not reachable; try again."
    if refused.status_code != 200 or message not in refused.text:
        problems.append(f"during the outage the store answered {refused.status_code}")
    written = stack.query(
        "SELECT count(*) FROM store_subscription WHERE application_id = %s",
        [shopper["application"]],
    )[0][0]
    if written:
        problems.append(f"{written} subscriptions written during the outage")
    accepted = session.subscribe(world["org"], world["api_id"], shopper)
    if accepted.status_code != 302 or "/c/pay/" not in accepted.headers["location"]:
        problems.append(f"after the outage the store answered {accepted.status_code}")
    customers = [
        c for c in truth._stripe_list(stack, world["account"], "/v1/customers")
        if c.get("email") == shopper["email"]
    ]  # fmt: skip
    if len(customers) != 1:
        problems.append(f"{len(customers)} Stripe customers for the subscriber")
    pending = stack.query(
        "SELECT state FROM store_subscription WHERE application_id = %s",
        [shopper["application"]],
    )
    if [row[0] for row in pending] != ["PENDING_PAYMENT"]:
        problems.append(f"subscriptions after the outage: {pending}")
    return {
        "fault": f"Stripe {how} during Checkout",
        "refused_status": refused.status_code,
        "refused_after_seconds": round(waited, 1),
        "message_shown": message in refused.text,
        "then": accepted.status_code,
        "stripe_customers": len(customers),
        "problems": problems,
    }


def scaled_out(
    stack, world: dict, *, total: int = 1500, rate: float = 200, concurrency: int = 16
) -> dict[str, Any]:
    """The scaled-out layout (several web processes and workers on one PostgreSQL
    and Redis): traffic spread over every web process, then the billing run sent
    to the workers twice at once (each job is safe to run twice at once).

    Documented outcome (README, "Running at scale"): counts exact — usage equals
    what the backend answered with a counted status — and one invoice and one
    charge per subscription and period."""
    subs = metered(world)
    end = datetime.fromisoformat(world["period_end"])
    result = traffic(
        stack, world, subs, total=total, concurrency=concurrency, rate=rate
    ).join()
    if datetime.now(end.tzinfo) >= end:
        raise HarnessError("the traffic ended after the period: make it end later")
    answered, counted = totals(stack, subs)
    wait_period_end(world)
    stack.send_task("billing.tasks.run_billing")
    stack.send_task("billing.tasks.run_billing")
    check = wait_billed(stack, world)
    check["problems"] += per_subscription_problems(stack, subs)
    unexpected = result.server_errors()
    if unexpected:
        check["problems"].append(f"{len(unexpected)} 5xx from apimon")
    return {
        "fault": f"{len(stack.webs)} web processes and {len(stack.workers)} workers",
        **result.summary(),
        "answered_counted": answered,
        "counted": counted,
        "difference": answered - counted,
        "bound": 0,
        **check,
    }


def soak(
    stack, world: dict, *, seconds: float = 30, rate: float = 200,
    concurrency: int = 16, warmup: float = 3,
) -> dict[str, Any]:  # fmt: skip
    """Steady traffic through the gateway for `seconds` over every subscription of
    the world — metered ones and limited ones at their burst rate limit and daily
    quota — then exact accounting.

    Documented outcome: apimon answers no 5xx of its own (the backend's own 500s of
    the mix pass through); refusals (429) are never counted; a limited subscription
    never has more counted requests than its quota; every subscription's usage equals
    what the backend answered it with a counted status; each process's memory stays
    flat (RSS reported at the start and the end)."""
    subs = world["subscriptions"]
    traffic(
        stack, world, subs, total=int(rate * warmup), concurrency=concurrency, rate=rate
    ).join(timeout=600)
    rss_start = stack.rss()
    result = traffic(
        stack,
        world,
        subs,
        total=int(rate * seconds),
        concurrency=concurrency,
        rate=rate,
        timeout=30,
    ).join(timeout=600)
    answered, counted = totals(stack, subs)
    rss_end = stack.rss()
    served = truth.served_counted(stack, subs)
    problems = per_subscription_problems(stack, subs)[:5]
    quota = world.get("quota", 50)
    over = [s["id"] for s in subs if s["kind"] == "limited" and served[s["id"]] > quota]
    if over:
        problems.append(f"over quota: {over}")
    if result.server_errors():
        problems.append(f"{len(result.server_errors())} 5xx from apimon")
    if result.by_status().get(0):
        problems.append(f"{result.by_status()[0]} requests got no answer")
    growth = {
        name: rss_end.get(name, 0) - kib
        for name, kib in rss_start.items()
        if name not in ("redis",)
    }
    return {
        "fault": f"soak, {seconds:g} s at {rate:g} requests/s",
        **result.summary(),
        "achieved_rate": round(result.sent / result.seconds, 1),
        "answered_counted": answered,
        "counted": counted,
        "difference": answered - counted,
        "bound": 0,
        "rss_start_kib": rss_start,
        "rss_end_kib": rss_end,
        "rss_growth_kib": growth,
        "problems": problems,
    }
