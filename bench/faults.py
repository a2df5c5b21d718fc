"""Faults survived, measured: each fault scenario of tests/faults at full length, on
apimon's real processes with their own PostgreSQL and Redis, printing a table of
requests sent, answered by status, counted, billed, the difference and the
documented bound (bench/README.md, "Faults").

    .venv/bin/python bench/faults.py                 # everything, ~15 min
    .venv/bin/python bench/faults.py --only soak --soak-seconds 600
    .venv/bin/python bench/faults.py --quick         # the CI sizes

Nothing shared is touched: the script starts its own PostgreSQL cluster (initdb, as
the `postgres` user when run as root) and its own redis-server on free ports, and
stops only what it started. Needs PostgreSQL's server binaries and redis-server.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._setup import loadavg, machine  # noqa: E402
from tests.faults import scenarios  # noqa: E402
from tests.faults.harness.stack import Layout, Stack, migrated_postgres  # noqa: E402


def run(args) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="apimon-bench-faults-"))
    cluster, template = migrated_postgres(root)
    results: list[dict] = []

    def scenario(name, layout, world_spec, body):
        if args.only and name not in args.only:
            return
        load = loadavg()
        started = time.monotonic()
        with Stack(layout=layout, postgres=cluster, database=template) as stack:
            try:
                world = stack.setup_world(**world_spec)
                for figures in body(stack, world):
                    figures.update(
                        scenario=name, load=load,
                        seconds_total=round(time.monotonic() - started),
                    )  # fmt: skip
                    results.append(figures)
                    print(json.dumps(figures, default=str), flush=True)
            except Exception:
                traceback.print_exc()
                print(stack.logs_tail(3000), file=sys.stderr)
                results.append({"scenario": name, "problems": ["crashed"]})

    q = args.quick
    scenario(
        "redis", Layout(), {"metered": 8},
        lambda s, w: [
            scenarios.redis_loss(
                s, w, how="restart", total=900 if q else 6000, rate=150 if q else 200,
                down_for=2 if q else 5,
            ),
            scenarios.redis_loss(
                s, w, how="flushall", total=900 if q else 6000, rate=150 if q else 200
            ),
            scenarios.bill_and_check(s, w) | {"fault": "Redis faults, then billing"},
        ],
    )  # fmt: skip
    scenario(
        "postgres", Layout(), {"metered": 8, "period_end_in": 25 if q else 60},
        lambda s, w: [
            scenarios.postgres_restart_during_flush(
                s, w, total=600 if q else 6000, rate=150 if q else 200,
                down_for=1 if q else 5,
            ),
            scenarios.postgres_restart_during_billing(s, w, down_for=1 if q else 5),
        ],
    )  # fmt: skip
    scenario(
        "worker", Layout(), {"metered": 16 if q else 40, "period_end_in": 20 if q else 60},
        lambda s, w: [scenarios.worker_kills(s, w, kills=6 if q else args.kills)],
    )  # fmt: skip
    scenario(
        "stripe", Layout(), {"metered": 3 if q else 10, "shoppers": 3,
                             "period_end_in": 15 if q else 25},
        lambda s, w: [
            scenarios.stripe_outage_during_push(
                s, w, how="down", down_for=8 if q else args.stripe_down,
                timeout=240 if q else 600,
            ),
            *(
                scenarios.stripe_outage_during_checkout(s, w, how=how, shopper=n)
                for n, how in enumerate(("error", "timeout", "down"))
            ),
        ],
    )  # fmt: skip
    for how in () if q else ("error", "timeout"):
        scenario(
            f"stripe-{how}", Layout(), {"metered": 10, "period_end_in": 20},
            lambda s, w, how=how: [
                scenarios.stripe_outage_during_push(s, w, how=how, down_for=30)
            ],
        )  # fmt: skip
    scenario(
        "scaled-out", Layout(webs=2, workers=2),
        {"metered": 6 if q else 20, "period_end_in": 20 if q else 45},
        lambda s, w: [scenarios.scaled_out(s, w, total=1200 if q else 6000)],
    )  # fmt: skip
    scenario(
        "soak", Layout(),
        {"metered": 6 if q else 20, "limited": 6 if q else 20, "quota": 40, "rate": 3},
        lambda s, w: [
            scenarios.soak(
                s, w | {"quota": 40}, seconds=20 if q else args.soak_seconds,
                rate=150 if q else 200,
            )
        ],
    )  # fmt: skip
    cluster.destroy()
    shutil.rmtree(root, ignore_errors=True)
    return results


def table(results: list[dict]) -> str:
    head = (
        "| fault | sent | answered (status: requests) | answered, counted status |"
        " counted | billed | difference | bound | outcome |"
    )
    rows = [head, "|" + " --- |" * 9]
    for r in results:
        statuses = r.get("by_status") or r.get("load_by_status") or {}
        codes = r.get("by_code") or {}
        answered = ", ".join(f"{k}: {v:,}" for k, v in statuses.items())
        if codes:
            answered += " (" + ", ".join(f"{k} {v:,}" for k, v in codes.items()) + ")"
        billed = (
            f"{r['invoices']} invoices, {r['charges']} charges, {r['billed_minor']:,}¢"
            if "invoices" in r else ""
        )  # fmt: skip
        outcome = "✅" if not r.get("problems") else "❌ " + "; ".join(r["problems"])
        rows.append(
            f"| {r.get('fault', r['scenario'])} | {r.get('sent', r.get('load_sent', ''))}"
            f" | {answered} | {r.get('answered_counted', '')} | {r.get('counted', '')}"
            f" | {billed} | {r.get('difference', '')} | {r.get('bound', '')}"
            f" | {outcome} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CI sizes")
    parser.add_argument("--only", nargs="*", help="scenario names to run")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument(
        "--stripe-down", type=float, default=60, help="seconds the emulator is down"
    )
    parser.add_argument("--soak-seconds", type=float, default=180)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    print(f"Machine: {machine()}; load average {loadavg()}", flush=True)
    results = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print()
    print(table(results))
    if any(r.get("problems") for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
