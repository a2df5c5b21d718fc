"""Page benchmarks: prints figures, asserts nothing. See bench/README.md.

    .venv/bin/python bench/pages.py [--seconds 5] [--rounds 3] [--connections 8]
        [--in-process-only]

On a fresh PostgreSQL database (apimon_bench_pages, dropped and re-created; override
with BENCH_PAGES_DATABASE_URL) and Redis DB 4, seeded with `manage.py seed_demo`:

1. server time per page in process (Django's test client, the whole middleware
   stack, DEBUG=0): median of 100 after 5 warm-up requests, and the page's SQL query
   count;
2. requests/s, p50 and p99 of each page under wrk, one server process each: the
   production configuration (uvicorn, apimon.asgi), gunicorn WSGI sync
   (apimon.wsgi) as the reference, in interleaved rounds (median of the rounds)
   and, for the before/after comparison, uvicorn with Django's own ASGI handler
   (bench/django_asgi.py) once;
3. step 1 again after growing the first organization to 10× its APIs, tiers and
   subscriptions.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

import _setup

DATABASE_URL = os.environ.get(
    "BENCH_PAGES_DATABASE_URL",
    _setup.DATABASE_URL.rsplit("/", 1)[0] + "/apimon_bench_pages",
)
_setup.DATABASE_URL = DATABASE_URL
_setup.SERVER_ENV["DATABASE_URL"] = DATABASE_URL
# Few connections: the PostgreSQL server is shared.
_setup.SERVER_ENV["DATABASE_CONN_MAX_AGE"] = "60"
# A var directory of its own: seed_demo writes the Stripe emulator's history there.
_VAR = tempfile.mkdtemp(prefix="apimon-bench-pages-")
_setup.SERVER_ENV["APIMON_VAR_DIR"] = _VAR
_setup.SERVER_ENV["STRIPE_EMULATOR_DB"] = f"{_VAR}/stripe-emulator.sqlite3"

ORG = "acme"
SUBSCRIBER = "subscriber@acme.localhost"
PUBLISHER = "publisher@acme.localhost"


def reset_database() -> None:
    import psycopg2

    name = DATABASE_URL.rsplit("/", 1)[1]
    admin = psycopg2.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def seed() -> None:
    from django.core.management import call_command

    # DEBUG=0 serves hashed static names from the manifest.
    call_command("collectstatic", "--no-input", verbosity=0)
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    analyze()


def analyze() -> None:
    """Planner statistics, as a database in use has them (a fresh one has none)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def pages() -> list[tuple[str, str, str | None]]:
    """(name, path, who is signed in) of each page measured."""
    from apimon.models import User
    from publisher.models import Api
    from store.models import Subscription

    subscriber = User.objects.get(email=SUBSCRIBER)
    api = (
        Api.objects.filter(
            organization__slug=ORG, state="PUBLISHED", visibility="PUBLIC"
        )
        .order_by("pk")
        .first()
    )
    sub = (
        Subscription.objects.filter(organization__slug=ORG, subscriber=subscriber)
        .exclude(state="CANCELLED")
        .order_by("pk")
        .first()
    )
    store = f"/t/{ORG}/store"
    return [
        ("landing", "/", None),
        ("store catalog", f"{store}/", None),
        ("API page", f"{store}/apis/{api.pk}/", None),
        ("subscription page", f"{store}/subscriptions/{sub.pk}/", SUBSCRIBER),
        ("usage page (subscriber)", f"{store}/subscriptions/{sub.pk}/usage/", SUBSCRIBER),
        ("publisher dashboard", f"/t/{ORG}/publisher/", PUBLISHER),
        ("usage page (publisher)", f"/t/{ORG}/publisher/usage/", PUBLISHER),
    ]  # fmt: skip


def client_for(who: str | None):
    from django.test import Client

    from apimon.models import User

    client = Client(HTTP_HOST="127.0.0.1")
    if who:
        client.force_login(User.objects.get(email=who))
    return client


def in_process(title: str, runs: int = 100) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # As the web process does once started (apimon.asgi): what lives as long as the
    # process stays out of the cyclic GC, whose passes would land in the timings.
    gc.collect()
    gc.freeze()
    print(f"\n{title} (load {_setup.loadavg()})")
    print(f"  {'page':<26} {'median':>9} {'p90':>9} {'queries':>8}")
    for name, path, who in pages():
        client = client_for(who)
        for _ in range(5):
            assert client.get(path).status_code == 200, path
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        # Read now (the next request empties the log); without the demo clock's
        # read, made at most once a second by whichever request comes then.
        count = sum("democlock" not in q["sql"].lower() for q in queries)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            client.get(path)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        print(
            f"  {name:<26} {statistics.median(times):>6.2f} ms "
            f"{times[int(runs * 0.9)]:>6.2f} ms {count:>8}"
        )


def grow(factor: int = 10) -> None:
    """The first organization with `factor`× its APIs, tiers and subscriptions:
    copies of each (and of the subscribers' applications, one per copy)."""
    from django.db import transaction

    from publisher.models import Api, ApiTier, MeterPriceBand, Tier
    from store.models import Application, Subscription

    with transaction.atomic():
        tiers = list(Tier.objects.filter(organization__slug=ORG))
        tier_copy: dict[tuple[int, int], Tier] = {}
        for tier in tiers:
            version = tier.current_version
            prices = (
                list(version.meter_prices.prefetch_related("bands")) if version else []
            )
            for i in range(1, factor):
                new = Tier.objects.get(pk=tier.pk)
                new.pk = None
                new.name = f"{tier.name} {i}"
                new.current_version = None
                new.save()
                if version is not None:
                    v = type(version).objects.get(pk=version.pk)
                    v.pk = None
                    v.tier = new
                    v.save()
                    for price in prices:
                        bands = list(price.bands.all())
                        price.pk = None
                        price.version = v
                        price.save()
                        MeterPriceBand.objects.bulk_create(
                            MeterPriceBand(**{
                                f.attname: getattr(b, f.attname)
                                for f in MeterPriceBand._meta.concrete_fields
                                if f.attname not in ("id", "price_id")
                            }, price=price)
                            for b in bands
                        )  # fmt: skip
                    new.current_version = v
                    new.save(update_fields=["current_version"])
                tier_copy[(tier.pk, i)] = new
        apis = list(Api.objects.filter(organization__slug=ORG).prefetch_related("tags"))
        api_copy: dict[tuple[int, int], Api] = {}
        for api in apis:
            offers = list(api.offers.all())
            for i in range(1, factor):
                new = Api.objects.get(pk=api.pk)
                new.pk = None
                new.name = f"{api.name} {i}"
                new.context = f"{api.context}-{i}"
                new.save()
                new.tags.set(api.tags.all())
                ApiTier.objects.bulk_create(
                    ApiTier(api=new, tier=tier_copy[(o.tier_id, i)]) for o in offers
                )
                api_copy[(api.pk, i)] = new
        subs = list(Subscription.objects.filter(organization__slug=ORG))
        apps = {a.pk: a for a in Application.objects.filter(organization__slug=ORG)}
        app_copy: dict[tuple[int, int], Application] = {}
        for sub in subs:
            for i in range(1, factor):
                app = apps[sub.application_id]
                if (app.pk, i) not in app_copy:
                    new_app = Application.objects.get(pk=app.pk)
                    new_app.pk = None
                    new_app.name = f"{app.name} {i}"
                    new_app.save()
                    app_copy[(app.pk, i)] = new_app
                new = Subscription.objects.get(pk=sub.pk)
                new.pk = None
                new.application = app_copy[(app.pk, i)]
                new.api = api_copy[(sub.api_id, i)]
                new.tier = tier_copy[(sub.tier_id, i)]
                new.tier_version = new.tier.current_version or sub.tier_version
                new.scheduled_tier = None
                new.scheduled_tier_version = None
                new.save()
    print(
        f"\ngrown ×{factor}: {Api.objects.filter(organization__slug=ORG).count()} APIs, "
        f"{Tier.objects.filter(organization__slug=ORG).count()} tiers, "
        f"{Subscription.objects.filter(organization__slug=ORG).count()} subscriptions "
        f"in {ORG}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--in-process-only", action="store_true")
    args = parser.parse_args()

    reset_database()
    _setup.django_setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    seed()
    print(_setup.machine())
    in_process("1. server time in process, demo size (median of 100)")
    if not args.in_process_only:
        from django.db import connections

        connections.close_all()
        servers(args)
    grow()
    analyze()
    in_process("3. server time in process, 10× the APIs, tiers and subscriptions")


def session_cookies() -> dict[str, str]:
    """A `Cookie` header per signed-in user (sessions in the database the servers read)."""
    from django.conf import settings

    cookies = {}
    for who in (SUBSCRIBER, PUBLISHER):
        client = client_for(who)
        name = settings.SESSION_COOKIE_NAME
        cookies[who] = f"Cookie: {name}={client.cookies[name].value}"
    return cookies


# The servers compared, one process each: (label, command after the interpreter).
# `reference` is gunicorn's sync worker with one thread: Django's WSGI handler with
# nothing in between.
ASGI_SERVER = "production: uvicorn apimon.asgi"
WSGI_SERVER = "reference: gunicorn apimon.wsgi, sync"
BEFORE_SERVER = "before: uvicorn, Django's ASGI handler"
SERVERS = (ASGI_SERVER, WSGI_SERVER, BEFORE_SERVER)


def server_args(label: str, port: int) -> list[str]:
    if label == WSGI_SERVER:
        return [
            "-m", "gunicorn", "apimon.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--worker-class", "sync", "--log-level", "warning",
            "--backlog", "4096",
        ]  # fmt: skip
    app = "apimon.asgi:application"
    if label == BEFORE_SERVER:
        app = "bench.django_asgi:application"
    return [
        "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning", "--backlog", "4096",
    ]  # fmt: skip


def servers(args) -> None:
    """Every page against each server (all three running, on consecutive ports):
    production and the reference in `--rounds` interleaved rounds (the order swapped
    each round), so that a change in the machine's load hits both alike, and the
    median of the rounds; "before" once."""
    cookies = session_cookies()
    from django.db import connections

    connections.close_all()
    urls = [("healthz", "/healthz", None), *pages()]
    ports = {label: _setup.APIMON_PORT + i for i, label in enumerate(SERVERS)}
    procs = []
    runs: dict[str, dict[str, list[dict]]] = {label: {} for label in SERVERS}
    try:
        for label, port in ports.items():
            # Django's ASGI handler opens a connection per request, in a thread that
            # ends with it: kept for 60 s (the default), they ran the shared
            # PostgreSQL out of connections ("too many clients") within seconds.
            extra = {"DATABASE_CONN_MAX_AGE": "0"} if label == BEFORE_SERVER else {}
            procs.append(
                _setup.Proc(
                    [sys.executable, *server_args(label, port)],
                    _setup.environ(**extra),
                    port,
                )
            )
        for name, path, who in urls:
            headers = [cookies[who]] if who else []
            plan = []
            for r in range(args.rounds):  # the order swapped each round
                pair = [ASGI_SERVER, WSGI_SERVER]
                plan += pair if r % 2 == 0 else pair[::-1]
            for label in [*plan, BEFORE_SERVER]:
                url = f"http://127.0.0.1:{ports[label]}{path}"
                _setup.wrk(url, connections=args.connections, seconds=1,
                           headers=headers)  # fmt: skip
                load = _setup.loadavg()
                r = _setup.wrk(url, connections=args.connections,
                               seconds=args.seconds, headers=headers)  # fmt: skip
                r["load"] = load
                runs[label].setdefault(name, []).append(r)
    finally:
        for proc in procs:
            proc.stop()
    print(
        f"\n2. wrk -t 1 -c {args.connections} -d {args.seconds}s, one server process "
        f"each; production and the reference in {args.rounds} interleaved rounds "
        "(median of the rounds; req/s of each round in brackets), before once"
    )
    print(f"  {'page':<26} {'server':<40} {'req/s':>8} {'p50':>9} {'p99':>9}")
    for name, _path, _who in urls:
        median_rps = {}
        for label in SERVERS:
            rounds = runs[label][name]
            median_rps[label] = statistics.median(r["rps"] for r in rounds)
            p50 = statistics.median(r["p50"] for r in rounds)
            p99 = statistics.median(r["p99"] for r in rounds)
            bad = sum(r["non2xx"] for r in rounds)
            errors = "; ".join(r["errors"] for r in rounds if r["errors"])
            each = (
                " [" + ", ".join(f"{r['rps']:.0f}" for r in rounds) + "]"
                if len(rounds) > 1
                else ""
            )
            loads = "/".join(r["load"] for r in rounds)
            print(
                f"  {name:<26} {label:<40} {median_rps[label]:>8.0f} {p50:>6.2f} ms "
                f"{p99:>6.2f} ms  (load {loads}){each}"
                + (f"  non-2xx {bad}" if bad else "")
                + (f"  errors {errors}" if errors else "")
            )
        ratio = median_rps[ASGI_SERVER] / median_rps[WSGI_SERVER]
        print(f"  {'':<26} {'production / reference':<40} {ratio:>8.2f}")


if __name__ == "__main__":
    sys.exit(main())
