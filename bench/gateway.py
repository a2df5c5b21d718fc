"""Gateway benchmarks: prints figures, asserts nothing. See bench/README.md.

    .venv/bin/python bench/gateway.py [--seconds 10] [--rounds 5] [--only 1b]

Runs against real PostgreSQL (database apimon_bench) and Redis (DB 4). Servers: the
sample API (1 aiohttp process) as the backend, apimon under uvicorn with 1 worker
(uvloop + httptools); load from wrk, a second process on loopback.
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import _setup

GW_PATH = "/gateway/{org}/bench/v1"
METERED_PATH = "/gateway/{org}/metered/v1"
# The same backend answer for both APIs: one header that the metered API counts as
# tokens (and the other strips).
REPORTING = "/headers?Apimon-Meter-tokens=100"


def fixtures() -> tuple[str, str]:
    """A fresh organization with an API on the sample backend, a tier with a burst
    limit and a quota too large to reach (so the admit script does all its work), and
    one subscribed key. Returns (org slug, raw key)."""
    from datetime import UTC, datetime

    from apimon.models import User
    from apimon.services import organization_create
    from publisher.models import Api, ApiTier, Meter, MeterPrice, Tier, TierVersion
    from store.keys import generate_key
    from store.models import ApiKey, Application, Subscription

    stamp = int(time.time())
    owner = User.objects.create_user(email=f"bench{stamp}@bench.test", password=None)
    org = organization_create(user=owner, name=f"Bench {stamp}")
    api = Api.objects.create(
        organization=org, name="Bench", version="v1", context="bench",
        backend_url=f"http://127.0.0.1:{_setup.BACKEND_PORT}/_bench", state="PUBLISHED",
    )  # fmt: skip
    tier = Tier.objects.create(
        organization=org, name="Unlimited-ish", rate_limit=1_000_000,
        rate_unit="second", quota_limit=10**12, quota_unit="month",
    )  # fmt: skip
    version = TierVersion.objects.create(tier=tier, number=1)
    ApiTier.objects.create(api=api, tier=tier)
    app = Application.objects.create(organization=org, owner=owner, name="bench")
    key = generate_key()
    ApiKey.objects.create(organization=org, application=app, prefix=key.prefix,
                          key_hash=key.key_hash)  # fmt: skip
    Subscription.objects.create(
        organization=org, application=app, api=api, tier=tier, tier_version=version,
        subscriber=owner, state="ACTIVE", started_at=datetime.now(UTC),
    )  # fmt: skip
    # The same on an API with two meters (weighted operations, response-reported),
    # each with a quota too large to reach: ADMIT checks and counts both.
    metered = Api.objects.create(
        organization=org, name="Metered", version="v1", context="metered",
        backend_url=f"http://127.0.0.1:{_setup.BACKEND_PORT}/_bench", state="PUBLISHED",
    )  # fmt: skip
    Meter.objects.create(
        api=metered, key="credits", display_name="Credits", unit_label="credit",
        source="operations", operations=[{"method": "GET", "path": "/headers", "units": 3}],
    )  # fmt: skip
    Meter.objects.create(
        api=metered, key="tokens", display_name="Tokens", unit_label="token",
        source="response",
    )  # fmt: skip
    for meter in ("credits", "tokens"):
        MeterPrice.objects.create(
            version=version, meter=meter, quota_limit=10**15, quota_unit="month"
        )
    ApiTier.objects.create(api=metered, tier=tier)
    Subscription.objects.create(
        organization=org, application=app, api=metered, tier=tier,
        tier_version=version, subscriber=owner, state="ACTIVE",
        started_at=datetime.now(UTC),
    )  # fmt: skip
    return org.slug, key.raw


def interleaved(targets: dict[str, tuple[str, dict]], seconds: float) -> dict:
    """Latencies of several URLs measured in turn, one request each, over one
    keep-alive connection per URL (the order rotates every turn): the machine's
    load, which drifts between wrk runs on a shared machine, weighs on all of them
    alike. Returns per name the median and p90 in ms and the number of requests."""
    import http.client
    from urllib.parse import urlsplit

    conns, paths, times = {}, {}, {name: [] for name in targets}
    for name, (url, headers) in targets.items():
        parts = urlsplit(url)
        conns[name] = http.client.HTTPConnection(parts.hostname, parts.port)
        paths[name] = (f"{parts.path}?{parts.query}" if parts.query else parts.path,
                       headers)  # fmt: skip
    names = list(targets)
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        turn += 1
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            path, headers = paths[name]
            started = time.perf_counter()
            conns[name].request("GET", path, headers=headers)
            answer = conns[name].getresponse()
            answer.read()
            times[name].append(time.perf_counter() - started)
            if answer.status != 200:
                raise RuntimeError(f"{name}: {answer.status}")
    for conn in conns.values():
        conn.close()
    out = {}
    for name, values in times.items():
        values.sort()
        out[name] = {
            "p50": values[len(values) // 2] * 1000,
            "p90": values[len(values) * 9 // 10] * 1000,
            "requests": len(values),
        }
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    import os
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def row(name: str, r: dict) -> str:
    extra = f"  non-2xx {r['non2xx']}" if r["non2xx"] else ""
    extra += f"  errors {r['errors']}" if r["errors"] else ""
    extra += f"  CPU {r['cpu_us']:.0f} µs/req" if "cpu_us" in r else ""
    return (
        f"  {name:<44} {r['rps']:>9.0f} req/s   p50 {r['p50']:>7.2f} ms   "
        f"p99 {r['p99']:>7.2f} ms   (load {r['load']}){extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="section 1b alternates its three runs this many times (the machine's "
        "load drifts between runs; the medians compare like with like)",
    )
    parser.add_argument(
        "--only",
        choices=("1b",),
        help="run only this section (1b: the meters' added latency), e.g. to "
        "alternate runs of two checkouts",
    )
    args = parser.parse_args()
    secs, conns = args.seconds, args.connections

    _setup.django_setup()
    from django.db.models import Sum

    from gateway.models import UsageRecord
    from gateway.redis import get_redis
    from gateway.services import usage_flush

    get_redis().flushdb()  # DB 4 only
    slug, key = fixtures()
    auth = [f"X-API-Key: {key}"]
    direct = f"http://127.0.0.1:{_setup.BACKEND_PORT}/_bench"
    base = f"http://127.0.0.1:{_setup.APIMON_PORT}"
    gw = base + GW_PATH.format(org=slug)
    gw_metered = base + METERED_PATH.format(org=slug)
    counted_by_wrk = 0
    in_flight_bound: list[int] = []

    print(f"machine: {_setup.machine()}")
    print(
        "servers: sample API = 1 aiohttp process (uvloop); apimon = uvicorn, 1 worker, "
        "uvloop + httptools; load = wrk, 1 thread, separate process, loopback"
    )
    print(f"database: {_setup.DATABASE_URL}   redis: {_setup.REDIS_URL}")
    print(f"each run: {secs} s after a 2 s warm-up\n")

    def run(name, url, c, headers=(), through_gateway=False, *, warm=True):
        nonlocal counted_by_wrk
        if warm:
            warm_up = _setup.wrk(url, connections=c, seconds=2, headers=headers)
            if through_gateway:
                counted_by_wrk += warm_up["requests"]
                in_flight_bound.append(c)
        load = _setup.loadavg()
        cpu = cpu_seconds(server.p.pid) if through_gateway else 0.0
        r = _setup.wrk(url, connections=c, seconds=secs, headers=headers)
        r["load"] = load
        if through_gateway:
            counted_by_wrk += r["requests"]
            in_flight_bound.append(c)
            # CPU time of the gateway's process per request: unlike latency, hardly
            # moved by other work on the machine (in-flight requests aside).
            r["cpu_us"] = (cpu_seconds(server.p.pid) - cpu) / r["requests"] * 1e6
        print(row(name, r), flush=True)
        return r

    backend = _setup.backend()
    server = _setup.apimon()
    try:
        if not args.only:
            print("1. fast backend, one client at a time (added latency)")
            d1 = run("backend direct, 1 connection", f"{direct}/fast", 1)
            g1 = run("through the gateway, 1 connection", f"{gw}/fast", 1, auth, True)
            print(f"  → added p50 latency: {g1['p50'] - d1['p50']:.2f} ms "
                  f"(target ≤ 2 ms); added p99: {g1['p99'] - d1['p99']:.2f} ms\n")  # fmt: skip

        print(
            "1b. meters: a backend answer reporting tokens, one client at a time "
            f"({args.rounds} rounds of direct, requests only, two meters, in turn)"
        )
        added_plain, added_both, ratios = [], [], []
        cpu_plain, cpu_both = [], []
        for k in range(args.rounds):
            warm = k == 0
            dm = run("backend direct, 1 connection", f"{direct}{REPORTING}", 1,
                     warm=warm)  # fmt: skip
            gr = run("requests only, 1 connection", f"{gw}{REPORTING}", 1, auth, True,
                     warm=warm)  # fmt: skip
            gm = run("two meters, 1 connection", f"{gw_metered}{REPORTING}", 1, auth,
                     True, warm=warm)  # fmt: skip
            cpu_plain.append(gr["cpu_us"])
            cpu_both.append(gm["cpu_us"])
            added_plain.append(gr["p50"] - dm["p50"])
            added_both.append(gm["p50"] - dm["p50"])
            ratios.append(added_both[-1] / added_plain[-1] - 1)
        plain, both = median(added_plain), median(added_both)
        print(f"  → added p50, median of {args.rounds} rounds: requests only "
              f"{plain:.2f} ms, two meters {both:.2f} ms; two meters vs requests "
              f"only, median of the rounds: {median(ratios):+.0%} (target ≤ 1 ms and "
              f"within 10 %; rounds: {', '.join(f'{r:+.0%}' for r in ratios)})")  # fmt: skip
        cpu_p, cpu_b = median(cpu_plain), median(cpu_both)
        print(f"  → gateway process CPU per request, median of the rounds: requests "
              f"only {cpu_p:.0f} µs, two meters {cpu_b:.0f} µs "
              f"({cpu_b / cpu_p - 1:+.0%})\n")  # fmt: skip
        # The same three, request by request in turn (load drift weighs on each).
        key_header = {"X-API-Key": key}
        load = _setup.loadavg()
        it = interleaved(
            {
                "direct": (f"{direct}{REPORTING}", {}),
                "requests only": (f"{gw}{REPORTING}", key_header),
                "two meters": (f"{gw_metered}{REPORTING}", key_header),
            },
            secs * args.rounds,
        )
        for name, r in it.items():
            print(f"  interleaved: {name:<31} {r['requests']:>7} requests   p50 "
                  f"{r['p50']:>7.3f} ms   p90 {r['p90']:>7.3f} ms   (load {load})")  # fmt: skip
            if name != "direct":
                counted_by_wrk += r["requests"]
                in_flight_bound.append(0)
        plain = it["requests only"]["p50"] - it["direct"]["p50"]
        both = it["two meters"]["p50"] - it["direct"]["p50"]
        print(f"  → interleaved, added p50: requests only {plain:.3f} ms, two meters "
              f"{both:.3f} ms ({both / plain - 1:+.0%}; target ≤ 1 ms and within "
              f"10 %)\n")  # fmt: skip
        if not args.only:
            print(f"2. fast backend under load ({conns} connections)")
            d2 = run(f"backend direct, {conns} connections", f"{direct}/fast", conns)
            g2 = run(
                f"through the gateway, {conns} connections",
                f"{gw}/fast",
                conns,
                auth,
                True,
            )
            print(f"  → gateway/direct throughput: {g2['rps'] / d2['rps']:.2f}; "
                  f"added p50: {g2['p50'] - d2['p50']:.2f} ms\n")  # fmt: skip

            print("3. slow backend (200 ms), 200 concurrent clients")
            d3 = run("backend direct, 200 connections", f"{direct}/slow?ms=200", 200)
            g3 = run(
                "through the gateway, 200 connections",
                f"{gw}/slow?ms=200",
                200,
                auth,
                True,
            )
            print(f"  → gateway / backend capacity: {g3['rps'] / d3['rps']:.2f} "
                  f"(target ≥ 0.8; ideal capacity 200 / 0.2 s = 1000 req/s)\n")  # fmt: skip
    finally:
        server.stop()

    # Every request wrk completed through the gateway answered 200 and must be counted
    # once. Requests still in flight when a wrk run stops were counted by the gateway
    # but not by wrk: at most one per connection per run.
    time.sleep(0.5)
    usage_flush()
    counted = UsageRecord.objects.filter(
        subscription__api__organization__slug=slug, meter="requests"
    )
    counted = counted.aggregate(n=Sum("count"))["n"] or 0
    print(f"meter check: {counted} requests counted in UsageRecord; wrk completed "
          f"{counted_by_wrk} through the gateway (warm-ups included); the "
          f"difference {counted - counted_by_wrk} must lie in [0, "
          f"{sum(in_flight_bound)}] (requests in flight when runs stopped)\n")  # fmt: skip
    metered_rows = UsageRecord.objects.filter(
        subscription__api__organization__slug=slug, subscription__api__context="metered"
    )
    per_meter = dict(
        metered_rows.values_list("meter").annotate(n=Sum("count")).order_by("meter")
    )
    print(f"meters check (two-meter API): {per_meter}; tokens must be 100 × requests "
          f"({100 * per_meter.get('requests', 0)}) and credits 3 × requests "
          f"({3 * per_meter.get('requests', 0)})\n")  # fmt: skip

    if args.only:
        backend.stop()
        return
    server = _setup.apimon("bench.instant_asgi:application")
    try:
        print(
            f"4. the gateway's own cost, {conns} connections, backend answered instantly in process"
        )
        b4 = run("bare Django view returning 204", f"{base}/bench/204", conns)
        g4 = run("gateway hot path (auth + limits + count)", f"{gw}/fast", conns, auth)
        print(
            f"  → hot path / bare Django view: {g4['rps'] / b4['rps']:.2f} (target ≥ 0.6)"
        )
    finally:
        server.stop()
    # The same, with Django at its best: WhiteNoise (sync-only) out of the stack.
    server = _setup.apimon("bench.instant_asgi:application", BENCH_NO_WHITENOISE="1")
    try:
        b5 = run(
            "bare Django view, middleware without WhiteNoise",
            f"{base}/bench/204",
            conns,
        )
        g5 = run("gateway hot path (same server)", f"{gw}/fast", conns, auth)
        print(
            f"  → hot path / bare Django view without WhiteNoise: {g5['rps'] / b5['rps']:.2f}\n"
        )
    finally:
        server.stop()
        backend.stop()


if __name__ == "__main__":
    main()
