"""Billing benchmark: 10,000 active subscriptions across 50 organizations,
30 days of hourly usage each (7.2 million usage rows), on PostgreSQL.

1. Rate and write the local invoices of every subscription whose period just ended
   (`billing.engine.billing_run`, exactly what the beat job runs), and print usage
   rows/s, subscriptions/s and the SQL query count.
2. Push the invoices to the Stripe emulator, run as a real process on a free port
   (webhooks off), with a few threads, and print the push rate.

    .venv/bin/python bench/billing.py               # everything (~10 min)
    .venv/bin/python bench/billing.py --push 2000   # push only the first 2,000
    .venv/bin/python bench/billing.py --reuse       # keep the generated data

Database: `apimon_bench_billing` (dropped and re-created unless --reuse; override
with BENCH_BILLING_DATABASE_URL). See bench/README.md, "Billing", for the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get(
    "BENCH_BILLING_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/apimon_bench_billing",
)
ORGS, SUBS_PER_ORG, SUBSCRIBERS_PER_ORG, HOURS = 50, 200, 10, 720
# Periods of 30 days: April 2027 (anchors spread over the first hour of April 1).
ANCHOR = datetime(2027, 4, 1, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(drop: bool) -> None:
    import psycopg2

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = psycopg2.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        if drop:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def setup_django(emulator_url: str) -> None:
    os.environ.update(
        DATABASE_URL=DATABASE_URL,
        DJANGO_SETTINGS_MODULE="apimon.settings",
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
        ALLOWED_HOSTS="127.0.0.1",
        STRIPE_EMULATOR_URL=emulator_url,
        STRIPE_EMULATOR_IN_PROCESS="0",
        # DEBUG=0 closes the emulator: apimon and the emulator process (which
        # inherits this environment) share these two secrets.
        STRIPE_EMULATOR_CONTROL_SECRET="bench-only-control-secret-0123456789",
        STRIPE_WEBHOOK_SECRET="whsec_bench_only_not_a_secret",
        CELERY_TASK_ALWAYS_EAGER="1",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("STRIPE_SECRET_KEY", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- data ---------------------------------------------------------------------------

# (tier, its version's fixed fee, the requests' MeterPrice: model and fields)
PRICES = [
    ("Per request", "0", ("PER_UNIT", {"unit_price": "0.0004"})),
    (
        "Overage",
        "29.00",
        (
            "FLAT_PLUS_OVERAGE",
            {
                "included_units": 20_000,
                "overage_price": "0.002",
                "overage_block_size": 100,
            },
        ),
    ),
    ("Graduated", "0", ("GRADUATED", {})),
    ("Volume", "0", ("VOLUME", {})),
    ("Flat", "49.00", None),
]


def generate() -> None:
    from decimal import Decimal

    from django.db import connection, transaction

    from apimon.models import Membership, Organization, PlatformPlan, Role, User
    from publisher.models import (
        Api,
        ApiTier,
        MeterPrice,
        MeterPriceBand,
        Tier,
        TierVersion,
    )
    from store.models import Application, Subscription

    started = time.perf_counter()
    plan = PlatformPlan.objects.create(
        name="Bench", slug="bench", commission_percent=Decimal("7.5"),
        allows_monetization=True, monthly_price_minor=9900,
    )  # fmt: skip
    with transaction.atomic():
        users = User.objects.bulk_create(
            User(email=f"sub{o}-{u}@bench.test", password="!")
            for o in range(ORGS)
            for u in range(SUBSCRIBERS_PER_ORG)
        )
        orgs = Organization.objects.bulk_create(
            Organization(name=f"Org {o}", slug=f"org{o}", plan=plan)
            for o in range(ORGS)
        )
        Membership.objects.bulk_create(
            Membership(user=users[o * SUBSCRIBERS_PER_ORG + u], organization=org,
                       role=Role.SUBSCRIBER)
            for o, org in enumerate(orgs) for u in range(SUBSCRIBERS_PER_ORG)
        )  # fmt: skip
        apis = Api.objects.bulk_create(
            Api(organization=org, name="Bench API", version="v1", context="bench",
                backend_url="http://127.0.0.1:9/", state="PUBLISHED")
            for org in orgs
        )  # fmt: skip
        tiers, versions = [], []
        for org in orgs:
            for name, _fee, _requests in PRICES:
                tiers.append(
                    Tier(organization=org, name=name, billing_plan="COMMERCIAL")
                )
        Tier.objects.bulk_create(tiers)
        for i, tier in enumerate(tiers):
            _name, fee, _requests = PRICES[i % len(PRICES)]
            versions.append(
                TierVersion(tier=tier, number=1, currency="usd",
                            billing_cycle="month", fixed_fee=fee)
            )  # fmt: skip
        TierVersion.objects.bulk_create(versions)
        prices = {}
        for i, version in enumerate(versions):
            requests = PRICES[i % len(PRICES)][2]
            if requests is not None:
                model, fields = requests
                prices[version.pk] = MeterPrice(
                    version=version, meter="requests", pricing_model=model, **fields
                )
        MeterPrice.objects.bulk_create(prices.values())
        bands = []
        for price in prices.values():
            if price.pricing_model == "GRADUATED":
                bands += [
                    MeterPriceBand(price=price, position=0, up_to=10_000,
                                   unit_price=Decimal("0.001"), flat_fee=Decimal("5")),
                    MeterPriceBand(price=price, position=1, up_to=100_000,
                                   unit_price=Decimal("0.0006")),
                    MeterPriceBand(price=price, position=2, up_to=None,
                                   unit_price=Decimal("0.0003")),
                ]  # fmt: skip
            elif price.pricing_model == "VOLUME":
                bands += [
                    MeterPriceBand(price=price, position=0, up_to=25_000,
                                   unit_price=Decimal("0.0008")),
                    MeterPriceBand(price=price, position=1, up_to=None,
                                   unit_price=Decimal("0.0005"), flat_fee=Decimal("10")),
                ]  # fmt: skip
        MeterPriceBand.objects.bulk_create(bands)
        for tier, version in zip(tiers, versions, strict=True):
            tier.current_version = version
        Tier.objects.bulk_update(tiers, ["current_version"])
        ApiTier.objects.bulk_create(
            ApiTier(api=apis[i // len(PRICES)], tier=tier)
            for i, tier in enumerate(tiers)
        )
        apps, subs = [], []
        for o, org in enumerate(orgs):
            for s in range(SUBS_PER_ORG):
                owner = users[o * SUBSCRIBERS_PER_ORG + s % SUBSCRIBERS_PER_ORG]
                apps.append(Application(organization=org, owner=owner, name=f"app{s}"))
        Application.objects.bulk_create(apps)
        period_end = ANCHOR + timedelta(days=30)
        for i, app in enumerate(apps):
            o = i // SUBS_PER_ORG
            k = i % len(PRICES)
            anchor = ANCHOR + timedelta(seconds=i % 3600)
            end = period_end + timedelta(seconds=i % 3600)
            subs.append(
                Subscription(
                    organization=orgs[o], application=app, api=apis[o],
                    tier=tiers[o * len(PRICES) + k],
                    tier_version=versions[o * len(PRICES) + k],
                    subscriber=app.owner, state="ACTIVE", started_at=anchor,
                    current_period_start=anchor, current_period_end=end,
                    next_invoice_at=end,
                )
            )  # fmt: skip
        Subscription.objects.bulk_create(subs, batch_size=2000)
    print(
        f"  rows: {len(subs):,} subscriptions ({time.perf_counter() - started:.1f} s)"
    )

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # One row per subscription hour; counts vary by subscription and hour (0–99).
        cursor.execute(
            """
            INSERT INTO gateway_usagerecord (organization_id, subscription_id, hour, count)
            SELECT s.organization_id, s.id, s.started_at + h * interval '1 hour',
                   (s.id * 7919 + h * 104729) %% 100
            FROM store_subscription s CROSS JOIN generate_series(0, %s) AS h
            """,
            [HOURS - 1],
        )
        rows = cursor.rowcount
        # A billed period's rows are days old, long since vacuumed (all-visible, so
        # index-only scans skip the table): the state autovacuum reaches.
        cursor.execute("VACUUM (ANALYZE) gateway_usagerecord")
        cursor.execute("ANALYZE")
    print(
        f"  usage: {rows:,} hourly rows written with one INSERT … SELECT "
        f"({time.perf_counter() - started:.1f} s)"
    )


# --- 1. rating and local invoices ------------------------------------------------


def rate() -> tuple[float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.engine import billing_run
    from billing.models import Invoice
    from gateway.models import UsageRecord

    rows = UsageRecord.objects.count()
    now = ANCHOR + timedelta(days=30, hours=1, minutes=1)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = billing_run(now=now, flush=False, enqueue_push=False)
        elapsed = time.perf_counter() - started
    invoices = Invoice.objects.count()
    print(f"  {result.steps:,} subscriptions, {result.batches} batches, "
          f"{invoices:,} invoices written, {result.failed} failed")  # fmt: skip
    print(f"  time: {elapsed:.2f} s")
    print(f"  usage rows/s: {rows / elapsed:,.0f}  ({rows:,} rows rated)")
    print(f"  subscriptions/s: {result.steps / elapsed:,.0f}")
    print(f"  SQL queries: {len(queries):,} "
          f"({len(queries) / max(result.batches, 1):.1f} per batch of "
          f"{result.steps // max(result.batches, 1)})")  # fmt: skip
    return elapsed, len(queries), invoices


# --- 2. push ---------------------------------------------------------------------


def start_emulator(port: int, db: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator", "--port", str(port), "--db", db,
         "--webhook-url", ""],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the Stripe emulator did not start")


def connect_accounts(base: str) -> None:
    """Connect each organization like "Connect with Stripe" does, and give each
    subscriber a customer with a card."""
    import httpx

    from apimon import stripe_client as sc
    from apimon.models import Organization
    from billing.models import StripeConnection
    from store.models import StripeCustomer, Subscription

    client = sc.get_client()
    for org in Organization.objects.filter(slug__startswith="org"):
        url = sc.oauth_authorize_url(state="bench", redirect_uri="http://bench/cb/")
        answer = httpx.post(
            url, data={"choice": "new", "email": f"{org.slug}@bench.test",
                       "business_name": org.name, "country": "US"},
        )  # fmt: skip
        code = answer.headers["location"].split("code=")[1].split("&")[0]
        account = sc.oauth_exchange(code)["stripe_user_id"]
        StripeConnection.objects.create(
            organization=org, account_id=account, monetization_enabled=True,
            charges_enabled=True,
        )  # fmt: skip
        options = sc.request_options(account=account)
        for user_id in (
            Subscription.objects.filter(organization=org)
            .order_by()
            .values_list("subscriber_id", flat=True)
            .distinct()
        ):
            customer = client.v1.customers.create(
                {"email": f"u{user_id}@b.test"}, options
            )
            pm = client.v1.payment_methods.attach(
                "pm_card_visa", {"customer": customer.id}, options
            )
            client.v1.customers.update(
                customer.id, {"invoice_settings": {"default_payment_method": pm.id}},
                options,
            )  # fmt: skip
            stripe_customer = StripeCustomer.objects.create(
                organization=org, user_id=user_id, stripe_account_id=account,
                stripe_customer_id=customer.id, default_payment_method_id=pm.id,
            )  # fmt: skip
            Subscription.objects.filter(organization=org, subscriber_id=user_id).update(
                customer=stripe_customer
            )


def push(limit: int | None, threads: int) -> tuple[float, int]:
    from django.db import connections

    from billing.models import Invoice, InvoiceStatus
    from billing.push import invoice_push

    ids = list(Invoice.objects.order_by("pk").values_list("pk", flat=True))[:limit]

    done = []

    def one(pk: int) -> str:
        try:
            return invoice_push(invoice_id=pk).status
        finally:
            done.append(pk)
            if len(done) % 1000 == 0:
                rate = len(done) / (time.perf_counter() - started)
                print(f"    {len(done):,} pushed, {rate:.1f}/s so far", flush=True)

    started = time.perf_counter()
    cpu = time.process_time()
    with ThreadPoolExecutor(threads, initializer=connections.close_all) as pool:
        statuses = list(pool.map(one, ids))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    paid = statuses.count(InvoiceStatus.PAID)
    print(f"  {len(ids):,} invoices pushed with {threads} threads in {elapsed:.1f} s: "
          f"{paid:,} paid, {len(ids) - paid:,} other")  # fmt: skip
    print(f"  push rate: {len(ids) / elapsed:,.1f} invoices/s "
          f"(apimon's process busy {cpu:.0f} s of {elapsed:.0f} s: the rest is "
          "waiting for the emulator)")  # fmt: skip
    return elapsed, len(ids)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{pg.strip()}, load average {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep the data")
    parser.add_argument("--push", type=int, default=None, help="push only N invoices")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-push", action="store_true")
    args = parser.parse_args()

    print(f"Machine: {machine()}")
    create_database(drop=not args.reuse)
    port = free_port()
    setup_django(f"http://127.0.0.1:{port}")
    from django.db.models import F

    from billing.models import Invoice, StripeConnection
    from store.models import StripeCustomer, Subscription

    print("Data")
    if not Subscription.objects.exists():
        generate()
    else:  # --reuse: back to the end of the first period, no invoices, no Stripe
        Invoice.objects.all().delete()
        Subscription.objects.update(
            customer=None,
            current_period_start=F("started_at"),
            current_period_end=F("started_at") + timedelta(days=30),
            next_invoice_at=F("started_at") + timedelta(days=30),
        )
        StripeCustomer.objects.all().delete()
        StripeConnection.objects.all().delete()
    with tempfile.TemporaryDirectory() as tmp:
        emulator = None
        if not args.no_push:
            emulator = start_emulator(port, str(Path(tmp) / "emulator.sqlite3"))
        try:
            if emulator:
                started = time.perf_counter()
                connect_accounts(f"http://127.0.0.1:{port}")
                print(f"  Stripe: {ORGS} connected accounts, "
                      f"{StripeCustomer.objects.count()} customers with a card "
                      f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
            print("1. Rating and local invoices (billing_run)")
            rate()
            if emulator:
                print("2. Push to the Stripe emulator (a separate process)")
                push(args.push, args.threads)
        finally:
            if emulator:
                emulator.terminate()
                emulator.wait(10)


if __name__ == "__main__":
    main()
