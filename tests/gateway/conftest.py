"""Fixtures for the metering gateway: Redis (real with REDIS_URL, else the stand-in),
the sample API as a real backend on a free port, and a driver that sends requests to
the gateway's ASGI app on an event loop in a background thread.

Gateway tests use `transactional_db`: the gateway reads the database from worker
threads, which only see committed rows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp import web

from apimon.models import Membership, Organization, PlatformPlan, Role
from gateway import redis as gateway_redis
from gateway.proxy import GatewayApp
from publisher.models import Api, ApiState, ApiTier, Tier, TierVersion
from sample_api import create_app
from store.keys import generate_key
from store.models import ApiKey, Application, Subscription, SubscriptionState
from tests.conftest import make_user

# A fixed "now" for the gateway's clock: 2027-01-15 10:00:00 UTC.
T0 = datetime(2027, 1, 15, 10, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def redis_db(settings):
    """A clean Redis for one test: real Redis (its own DB only) or the stand-in."""
    # The environment, not settings: a test may deliberately drop REDIS_URL to
    # exercise the stand-in (`without_redis`).
    required = os.environ.get("APIMON_REQUIRE_REDIS") == "1"
    if required and not os.environ.get("REDIS_URL"):
        pytest.fail("APIMON_REQUIRE_REDIS=1 but REDIS_URL is not set")
    gateway_redis.reset_clients()
    client = gateway_redis.get_redis()
    client.flushdb()  # the stand-in's, or only the DB number in REDIS_URL
    yield client
    client.flushdb()
    gateway_redis.reset_clients()


@pytest.fixture
def without_redis(settings):
    """The embedded default, even where REDIS_URL is set (CI): the stand-in. Ask for
    it before `gateway` or `server`, so that their Redis is the stand-in."""
    settings.REDIS_URL = None
    gateway_redis.reset_clients()
    yield
    gateway_redis.reset_clients()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopThread:
    """An asyncio loop in a daemon thread; `run(coro)` waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _close_worker_connections(self) -> None:
        from django.db import connections

        def close():
            connections.close_all()

        # One close per worker thread the executor may have started.
        await asyncio.gather(
            *(self.loop.run_in_executor(None, close) for _ in range(64))
        )

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        # The gateway read the database from the loop's worker threads: end them so
        # their connections close (the test database can then be dropped).
        self.run(self._close_worker_connections())
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def backend_url():
    """The sample API, served for real on a free port for the whole session."""
    loop = LoopThread()
    port = _free_port()

    async def start():
        runner = web.AppRunner(create_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = loop.run(start())
    yield f"http://127.0.0.1:{port}"
    loop.run(runner.cleanup())
    loop.stop()


@pytest.fixture(scope="session")
def unreachable_url():
    return f"http://127.0.0.1:{_free_port()}"  # nothing listens there


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gateway:
    """Sends requests to a GatewayApp; answers are read whole."""

    app: GatewayApp
    loop: LoopThread
    clock: Clock
    client: httpx.AsyncClient | None = None

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"

        async def go():
            if self.client is None:
                self.client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(
                        app=self.app, client=("10.1.2.3", 5555)
                    ),
                    base_url="http://gateway.test",
                )
            response = await self.client.request(
                method, path, headers=headers, **kwargs
            )
            await self.app.drain()  # units reported by the answer are counted
            return response

        return self.loop.run(go())

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)


@contextlib.contextmanager
def serving(*, apimon_clock: bool = False, **app_options):
    """A GatewayApp (with `app_options`) on a loop of its own, driven by a Gateway;
    its time is `gw.clock`, which the test sets, or with `apimon_clock` apimon's
    own (the demo clock's)."""
    loop = LoopThread()
    clock = Clock()
    if not apimon_clock:
        app_options["clock"] = clock
    gw = Gateway(app=GatewayApp(**app_options), loop=loop, clock=clock)
    try:
        yield gw
    finally:

        async def close():
            if gw.client is not None:
                await gw.client.aclose()
            await gw.app.close()

        loop.run(close())
        loop.stop()


@pytest.fixture
def gateway(redis_db):
    with serving() as gw:
        yield gw


@dataclass
class Metering:
    """A tenant with a published API on the sample backend, a tier and a subscriber
    whose application holds a key subscribed to it; plus builders for variations."""

    org: Organization
    other_org: Organization
    backend_url: str
    api: Api = None
    tier: Tier = None
    subscriber: object = None
    application: Application = None
    subscription: Subscription = None
    key: str = ""
    counter: list = field(default_factory=lambda: [0])

    def make_api(
        self,
        *,
        org=None,
        context="weather",
        version="v1",
        backend=None,
        state=ApiState.PUBLISHED,
    ):
        return Api.objects.create(
            organization=org or self.org,
            name=context.title(),
            version=version,
            context=context,
            backend_url=backend or self.backend_url,
            state=state,
        )

    def make_tier(self, *, org=None, name=None, **limits):
        self.counter[0] += 1
        tier = Tier.objects.create(
            organization=org or self.org,
            name=name or f"Tier {self.counter[0]}",
            **limits,
        )
        version = TierVersion.objects.create(tier=tier, number=1)
        tier.current_version = version
        tier.save(update_fields=["current_version"])
        return tier

    def subscribe(
        self, application, api, tier, *, state=SubscriptionState.ACTIVE, started_at=None
    ):
        ApiTier.objects.get_or_create(api=api, tier=tier)
        return Subscription.objects.create(
            organization=api.organization,
            application=application,
            api=api,
            tier=tier,
            tier_version=tier.current_version,
            subscriber=application.owner,
            state=state,
            started_at=started_at or datetime(2027, 1, 1, tzinfo=UTC),
        )

    def make_app(self, owner=None, *, org=None, name=None):
        self.counter[0] += 1
        return Application.objects.create(
            organization=org or self.org,
            owner=owner or self.subscriber,
            name=name or f"App {self.counter[0]}",
        )

    def make_key(self, application, **fields) -> tuple[str, ApiKey]:
        new = generate_key()
        row = ApiKey.objects.create(
            organization=application.organization,
            application=application,
            prefix=new.prefix,
            key_hash=new.key_hash,
            **fields,
        )
        return new.raw, row

    def set_tier(self, **limits):
        Tier.objects.filter(pk=self.tier.pk).update(**limits)
        self.tier.refresh_from_db()


@pytest.fixture
def short_lived_connections():
    """The gateway reads the database from worker threads; with persistent connections
    those would outlive the test (and keep the test database from being dropped)."""
    from django.db import connections

    db_settings = connections.settings["default"]
    before = db_settings.get("CONN_MAX_AGE", 0)
    db_settings["CONN_MAX_AGE"] = 0
    yield
    db_settings["CONN_MAX_AGE"] = before


@pytest.fixture
def metering(transactional_db, short_lived_connections, backend_url):
    # A transactional test starts from empty tables, without the migrations' rows.
    PlatformPlan.objects.get_or_create(
        slug="trial", defaults={"name": "Trial", "is_trial": True}
    )
    owner = make_user("owner@acme.test")
    from apimon.services import organization_create

    org = organization_create(user=owner, name="Acme")
    subscriber = make_user("subscriber@acme.test")
    Membership.objects.create(user=subscriber, organization=org, role=Role.SUBSCRIBER)
    outsider = make_user("owner@globex.test")
    other_org = organization_create(user=outsider, name="Globex")
    m = Metering(org=org, other_org=other_org, backend_url=backend_url + "/_bench")
    m.subscriber = subscriber
    m.api = m.make_api()
    m.tier = m.make_tier(name="Bronze")
    m.application = m.make_app(name="My app")
    m.subscription = m.subscribe(m.application, m.api, m.tier)
    m.key, _row = m.make_key(m.application)
    return m


def flush_all():
    from gateway.services import usage_flush

    return usage_flush()


def usage_total(subscription) -> int:
    from gateway.models import UsageRecord

    rows = UsageRecord.objects.filter(subscription=subscription)
    return sum(rows.values_list("count", flat=True))
