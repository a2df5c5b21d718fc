"""The metering gateway: a raw ASGI app serving ``/gateway/<org>/<context>/<version>/…``.

apimon.asgi sends that path prefix here and everything else to Django. The hot path
skips Django's request/response machinery and middleware on purpose (bench/README.md
has the figures): per request it does one Redis round trip (the ADMIT script in
gateway.meter) when the entitlement is in the in-process copy, and forwards with a
pooled aiohttp client, streaming both ways. The database is read only on a cache miss,
in a thread, so a slow query or a slow backend never blocks other requests.

Order of the checks: the route (404 unknown or CREATED, 410 RETIRED, 503 BLOCKED), the
key (401), the subscription (403), the burst rate limit and the quota (429), then the
backend (502 unreachable or, by the egress policy of apimon/egress.py, forbidden; 504
timeout). Refusals are never counted.

Neither way does the gateway carry apimon's own cookies: they are taken out of the
forwarded Cookie header, a backend's Set-Cookie for one of their names is dropped, and
every answer says X-Content-Type-Options: nosniff.

The same app answers the verify endpoint ``/gateway-verify/…`` for external gateways
(nginx ``auth_request``, Envoy, Kong): the same checks and the same ADMIT script, then
an empty 200 instead of forwarding (docs/metering.md, "External gateways").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote

import aiohttp
from aiohttp.abc import AbstractResolver
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from redis.exceptions import RedisError
from yarl import URL

from apimon import clock as apimon_clock
from apimon import egress, logcontext
from gateway import entitlements, meter
from gateway.redis import get_async_redis
from gateway.selectors import usage_in_window
from pricing.periods import window_bounds
from publisher.models import REQUESTS_METER, ApiState, MeterSource
from publisher.operations import Matcher
from publisher.services import api_backend_refusal_record

log = logging.getLogger("apimon.gateway")

# RFC 9110 §7.6.1 connection-specific fields, plus the ones a proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# The ASGI server writes its own Date and Server headers; the gateway sets nosniff;
# the request id is the gateway's (the caller's when it sent a sane one, passed on to
# the backend).
DROPPED_RESPONSE = HOP_BY_HOP | {
    b"date",
    b"server",
    b"x-content-type-options",
    b"x-request-id",
}
# On every answer of the gateway: a backend's answer is served from apimon's host, so
# a browser must not guess that a JSON or text answer is HTML or a script.
NOSNIFF = (b"x-content-type-options", b"nosniff")
DROPPED_REQUEST = HOP_BY_HOP | {b"host", b"x-forwarded-for", b"x-forwarded-proto"}
DROPPED_REQUEST |= {b"x-forwarded-host", b"x-request-id"}
_FIXED_WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
ADMITTED, STALE, RATE_LIMITED, QUOTA_USED_UP, NEEDS_SEED = range(5)
METER_QUOTA_USED_UP, METER_NEEDS_SEED = 5, 6
# Response headers that report a meter's units (Apimon-Meter-<key>): read for the
# API's response-reported meters and never passed on, whatever the key.
METER_HEADER = b"apimon-meter-"
MAX_REPORTED = 10**15  # a larger value is garbage, counted 0
# Reported units wait at most this long (seconds) for the process's next ADMIT to
# carry them to Redis; then they are sent on their own (docs/metering.md).
REPORT_WITHIN = 0.005
NO_QUOTA = (meter.P + "q:none").encode()
SEEDED_UNITS = frozenset({"day", "month", "period"})
REFUSED_API_STATES = frozenset(
    {ApiState.CREATED, ApiState.RETIRED, ApiState.BLOCKED, None}
)
# External gateways (nginx auth_request, Envoy ext_authz, Kong) ask here instead of
# proxying through us: /gateway-verify/<org>/<context>/<version>/<rest>, or the bare
# path with the API path in X-Original-URI (docs/metering.md).
VERIFY_PATH = "/gateway-verify"
# A refused connection to a backend (the egress policy) is written on the API row for
# its publisher to see, at most this often per API and process.
REFUSAL_NOTE_EVERY = 60.0


def _json_body(code: str, message: str, **extra) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


class Grant:
    """A key's entitlement on an API, as the hot path uses it (parsed once)."""

    __slots__ = ("entry", "expires", "plan", "quota_windows")

    def __init__(self, entry: dict, expires: float) -> None:
        self.entry = entry
        self.expires = expires
        self.plan: MeterPlan | None = None  # the API's meters for this entitlement
        # The current calendar-month and billing-period windows, by unit (the
        # requests' quota and the meters' may use both).
        self.quota_windows: dict[str, tuple[float, float]] = {}

    def window(self, unit: str, now: float) -> tuple[float, float]:
        """Quota window (start, end) in epoch seconds, for a tier's quota unit."""
        size = _FIXED_WINDOWS.get(unit)
        if size is not None:
            start = now - (now % size)
            return start, start + size
        cached = self.quota_windows.get(unit)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached
        start_dt, end_dt = window_bounds(
            unit,
            datetime.fromtimestamp(now, UTC),
            anchor=meter.from_epoch_us(self.entry["anchor_us"]),
            cycle=self.entry["cycle"],
        )
        window = (start_dt.timestamp(), end_dt.timestamp())
        self.quota_windows[unit] = window
        return window

    def bucket_us(self, now: float) -> int:
        """Start of the subscription hour that `now` falls in, in µs. Hours are aligned
        to the subscription's anchor, so billing periods split on row boundaries."""
        return meter.hour_start_us(int(now * 1_000_000), self.entry["anchor_us"])


class _Meter:
    """A request-time meter of an API as one entitlement counts it."""

    __slots__ = ("key", "limit", "matcher", "seeded", "stop", "unit")

    def __init__(self, key: str, matcher, quota) -> None:
        limit, unit, stop = quota or (0, "", False)
        self.key = key
        self.matcher = matcher  # weighted operations; None: reported by the answer
        self.limit = limit or 0
        self.unit = unit
        self.stop = b"1" if stop else b"0"
        # A day, month or period counter is seeded from the database when missing.
        self.seeded = -1 if unit in SEEDED_UNITS else 0


class MeterPlan:
    """An API's request-time meters for one entitlement, worked out once per
    in-process copy of both (a second at most) instead of on every request: the
    compiled operations, the quotas, the reported header names (as the raw header
    bytes), the usage fields of the current hour and the quota counters of the
    current windows."""

    __slots__ = (
        "admitted",
        "api",
        "bucket",
        "fields",
        "headers",
        "meters",
        "quota_ends",
        "quota_keys",
        "seeds",
        "valid_from",
        "valid_until",
        "weighted",
        "zero",
    )

    def __init__(self, api: dict, entry: dict) -> None:
        self.api = api
        matchers = api.get("_matchers")
        if matchers is None:  # compiled once per cached copy of the API
            matchers = {
                key: Matcher.compile(ops)
                for key, source, ops in api["meters"]
                if source == MeterSource.OPERATIONS
            }
            api["_matchers"] = matchers
        quotas = entry.get("mq") or {}
        self.meters = [
            _Meter(key, matchers.get(key), quotas.get(key))
            for key, _source, _ops in api["meters"]
        ]
        self.headers = {
            METER_HEADER + key.encode(): i
            for i, (key, source, _ops) in enumerate(api["meters"])
            if source == MeterSource.RESPONSE
        }
        # What ADMIT has to do something for: a quota to check, or units to count.
        # A reported meter without a quota waits for the answer.
        self.admitted = [
            i for i, m in enumerate(self.meters) if m.limit or m.matcher is not None
        ]
        self.weighted = [i for i, m in enumerate(self.meters) if m.matcher is not None]
        self.zero = [0] * len(self.meters)
        self.seeds = [m.seeded for m in self.meters]
        self.bucket = -1
        self.fields: list[bytes] = []
        self.valid_from = self.valid_until = 0.0
        self.quota_keys: list[bytes] = []
        self.quota_ends: list[float] = []

    def units(self, method: str, rest: str) -> list[int]:
        """Units of this call per meter (0 for the reported ones: the answer says)."""
        if not self.weighted:
            return self.zero
        units = self.zero.copy()
        for i in self.weighted:
            units[i] = self.meters[i].matcher.units(method, rest)
        return units

    def fields_at(self, sub: int, bucket: int) -> list[bytes]:
        """The meters' live-hash fields of a subscription hour (as sent to Redis)."""
        if bucket != self.bucket:
            self.fields = [
                meter.usage_field(sub, bucket, m.key).encode() for m in self.meters
            ]
            self.bucket = bucket
        return self.fields

    def windows(self, grant: Grant, now: float) -> tuple[list[bytes], list[float]]:
        """The meters' quota counters (b"" without a quota) and their windows'
        ends."""
        if not self.valid_from <= now < self.valid_until:
            keys, ends = [], []
            start_max, end_min = -math.inf, math.inf
            for m in self.meters:
                if not m.limit:
                    keys.append(b"")
                    ends.append(now)
                    continue
                start, end = grant.window(m.unit, now)
                keys.append(
                    meter.quota_key(
                        grant.entry["sub"], m.unit, int(start), m.key
                    ).encode()
                )
                ends.append(end)
                start_max, end_min = max(start_max, start), min(end_min, end)
            self.quota_keys, self.quota_ends = keys, ends
            self.valid_from, self.valid_until = start_max, end_min
        return self.quota_keys, self.quota_ends


class Counted:
    """What ADMIT counted for a call besides the request: the meters' units, with
    the fields and quota counters they went to."""

    __slots__ = ("field", "fields", "plan", "quota_keys", "units")

    def __init__(self, field: str, plan, units, fields, quota_keys) -> None:
        self.field = field
        self.plan = plan
        self.units = units
        self.fields = fields
        self.quota_keys = quota_keys

    def release_args(self) -> tuple[list[bytes], list]:
        """RELEASE's meter keys and arguments: take back weighted units."""
        keys, args = [], []
        if self.plan is None:
            return keys, args
        for i, units in enumerate(self.units):
            if units:
                keys.append(self.quota_keys[i])
                args += [self.fields[i], units]
        return keys, args


NOT_METERED = Counted("", None, (), (), ())


class _LoopRedis:
    """The gateway's Redis of one event loop: the client, its scripts, and the units
    that answers reported and that the next round trip carries (keys and arguments
    as ADMIT and REPORT take them)."""

    __slots__ = (
        "admit",
        "cache_put",
        "client",
        "release",
        "report",
        "report_args",
        "report_keys",
        "report_timer",
    )

    def __init__(self, client) -> None:
        self.client = client
        self.admit = client.register_script(meter.ADMIT)
        self.release = client.register_script(meter.RELEASE)
        self.cache_put = client.register_script(meter.CACHE_PUT)
        self.report = client.register_script(meter.REPORT)
        self.report_keys: list[bytes] = []
        self.report_args: list = []
        self.report_timer: asyncio.TimerHandle | None = None

    def take_reports(self) -> tuple[list[bytes], list]:
        """The reports waiting to be carried (and none left waiting)."""
        keys, args = self.report_keys, self.report_args
        self.report_keys, self.report_args = [], []
        if self.report_timer is not None:
            self.report_timer.cancel()
            self.report_timer = None
        return keys, args


class GatewayApp:
    """ASGI app for ``/gateway/…``; `clock` (the time of quota and rate windows:
    apimon's now, which the demo clock moves) and `monotonic` (the lifetime of the
    in-process copies) are injectable so tests can set the time."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = apimon_clock.timestamp,
        monotonic: Callable[[], float] = time.monotonic,
        resolver: Callable[[], AbstractResolver] | None = None,
    ) -> None:
        """`resolver` makes the DNS resolver that the egress policy wraps (aiohttp's
        default when None); tests give one that maps names as they need."""
        self.clock = clock
        self.monotonic = monotonic
        self._make_resolver = resolver
        self._cookie_names: frozenset[bytes] | None = None
        self._refusals_noted: dict[int, float] = {}
        self._background: set[asyncio.Task] = set()
        self._local: dict[str, tuple[float, object]] = {}
        self._loading: dict[str, asyncio.Future] = {}
        self._sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # ---- plumbing -----------------------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            timeout = settings.GATEWAY_BACKEND_TIMEOUT
            session = aiohttp.ClientSession(
                # Connects only where the egress policy allows: every address a name
                # resolves to and every socket's peer are checked (once per new
                # connection; the DNS cache keeps only allowed answers).
                connector=egress.connector(
                    resolver=self._make_resolver() if self._make_resolver else None,
                    limit=0,
                    keepalive_timeout=30,
                    ttl_dns_cache=300,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeout, sock_read=timeout
                ),
                auto_decompress=False,
                skip_auto_headers=(
                    "User-Agent",
                    "Accept",
                    "Accept-Encoding",
                    "Content-Type",
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[loop] = session
        return session

    def _redis(self) -> _LoopRedis:
        loop = asyncio.get_running_loop()
        scripts = self._scripts.get(loop)
        if scripts is None:
            scripts = _LoopRedis(get_async_redis())
            self._scripts[loop] = scripts
        return scripts

    async def close(self) -> None:
        await self.drain()
        for session in list(self._sessions.values()):
            await session.close()
        self._sessions.clear()

    def forget_local(self) -> None:
        self._local.clear()

    def cookie_names(self) -> frozenset[bytes]:
        """Names of apimon's own cookies, which never cross the gateway."""
        if self._cookie_names is None:
            self._cookie_names = apimon_cookie_names()
        return self._cookie_names

    def _note_refusal(self, api: dict, refused: egress.EgressRefused) -> None:
        """Write the refusal on the API row for its publisher, in a worker thread and
        at most every REFUSAL_NOTE_EVERY seconds per API (a caller retrying in a loop
        costs no database write per request)."""
        now = time.monotonic()
        if self._refusals_noted.get(api["id"], 0.0) > now:
            return
        log.warning("backend forbidden: API %s: %s", api["id"], refused)
        if len(self._refusals_noted) > 10_000:
            self._refusals_noted.clear()
        self._refusals_noted[api["id"]] = now + REFUSAL_NOTE_EVERY
        at = datetime.fromtimestamp(self.clock(), UTC)
        task = asyncio.get_running_loop().create_task(
            _record_refusal(api["id"], refused.address, at)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- entitlement cache ----------------------------------------------------------
    async def _cached(
        self,
        redis_key: str,
        load: Callable[[], dict],
        indexes,
        *,
        use_local: bool = True,
        keep_local: bool = True,
    ) -> dict:
        """Entry from the in-process copy, else Redis, else the database."""
        now = self.monotonic()
        hit = self._local.get(redis_key) if use_local else None
        if hit is not None and hit[0] > now:
            return hit[1]  # type: ignore[return-value]
        redis = self._redis()
        client, cache_put = redis.client, redis.cache_put
        raw = await client.get(redis_key)
        if raw is not None:
            entry = json.loads(raw)
        elif redis_key in self._loading:
            # Another request of this process is reading the same entry: share it
            # (a hot key after an invalidation would otherwise flood the database).
            entry = await asyncio.shield(self._loading[redis_key])
        else:
            future = asyncio.get_running_loop().create_future()
            self._loading[redis_key] = future
            try:
                gen = await client.get(meter.GEN) or b"0"
                entry = await sync_to_async(_with_db(load), thread_sensitive=False)()
                await cache_put(
                    keys=[meter.GEN, redis_key, *indexes(entry)],
                    args=[
                        gen,
                        entitlements.dumps(entry),
                        entitlements.entry_ttl(entry),
                    ],
                )
                future.set_result(entry)
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as exc:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters, if any, re-raise it
                raise
            finally:
                del self._loading[redis_key]
        # Only entries that lead to serving are copied in-process: the admit script
        # checks those against Redis on every request. A refusal is read from Redis
        # each time, so lifting it (unblocking, un-retiring) is seen at once too.
        serving = "refuse" not in entry and entry.get("state") not in REFUSED_API_STATES
        if keep_local and serving:
            if len(self._local) > 50_000:
                self._local.clear()
            self._local[redis_key] = (now + entitlements.LOCAL_TTL, entry)
        return entry

    async def _api(self, org: str, context: str, version: str, *, use_local: bool):
        return await self._cached(
            meter.api_key(f"{org}/{context}/{version}"),
            lambda: entitlements.load_api(org, context, version),
            entitlements.api_indexes,
            use_local=use_local,
        )

    def _local_grant(self, key_hash: str, route: str) -> Grant | None:
        hit = self._local.get(meter.ent_key(key_hash, route))
        if hit is not None and hit[0] > self.monotonic():
            return hit[1]  # type: ignore[return-value]
        return None

    async def _grant(self, key_hash: str, route: str, api: dict) -> Grant | dict:
        redis_key = meter.ent_key(key_hash, route)
        entry = await self._cached(
            redis_key,
            lambda: entitlements.load_entitlement(key_hash, api),
            lambda e: entitlements.entitlement_indexes(key_hash, api, e),
            use_local=False,  # the caller found no in-process Grant
            keep_local=False,  # the Grant is kept below instead of the raw entry
        )
        if "refuse" in entry:
            return entry
        grant = Grant(entry, self.monotonic() + entitlements.LOCAL_TTL)
        self._local[redis_key] = (grant.expires, grant)
        return grant

    # ---- the ASGI entry point -------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # websockets are not proxied
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        started = False
        rid = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value
                break
        rid = logcontext.accept_or_new(rid)
        scope["apimon.request_id"] = rid
        segments = scope["path"].split("/", 3)  # "", "gateway", org, rest
        logcontext.bind(rid=rid, org=segments[2] if len(segments) > 2 else "-")
        rid_header = (b"x-request-id", rid.encode())

        async def send_tracked(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message["headers"], rid_header]
            await send(message)

        try:
            await self._handle(scope, receive, send_tracked, attempt=0)
        except (RedisError, DatabaseError):
            # Without its counters or its data the gateway cannot decide: it says so
            # rather than serve unmetered.
            log.exception("gateway cannot reach Redis or the database")
            if not started:
                await _refuse(
                    send,
                    503,
                    "metering_unavailable",
                    "The gateway cannot check this call right now; retry shortly.",
                    extra_headers=[(b"retry-after", b"5")],
                )

    async def _handle(self, scope, receive, send, *, attempt: int) -> None:
        path = scope["path"]
        verify = path == VERIFY_PATH or path.startswith(VERIFY_PATH + "/")
        if verify:
            path = _verify_target(scope)
            if path is None:
                await _refuse(
                    send,
                    400,
                    "missing_uri",
                    f"Put the API path after {VERIFY_PATH}/ or send it in"
                    " X-Original-URI.",
                )
                return
        parts = path.split("/", 5)
        if (
            len(parts) < 5
            or parts[1] != "gateway"
            or not all(parts[2:5])
            # No organization, context or version has one; PostgreSQL would refuse
            # a NUL in the lookup.
            or _CONTROL_CHARACTER.search("".join(parts[2:5]))
        ):
            await _refuse(send, 404, "not_found", "No such API.")
            return
        org, context, version = parts[2], parts[3], parts[4]
        if len(parts) == 6 and _escapes(parts[5]):
            # "/gateway/acme/weather/v1/../quotes" must not reach another API of the
            # same backend host (billed as this one).
            await _refuse(
                send, 400, "bad_path", "The path may not contain '.' or '..' segments."
            )
            return
        route = f"{org}/{context}/{version}"
        raw_key, key_header = _find_key(scope["headers"])
        key_hash = hashlib.sha256(raw_key).hexdigest() if raw_key else ""
        grant = self._local_grant(key_hash, route) if raw_key else None
        # Without an in-process grant the entitlement is read afresh, and so is the
        # API it is checked against (an in-process copy may be a second old).
        api = await self._api(org, context, version, use_local=grant is not None)
        state = api.get("state")
        if api.get("missing") or state == ApiState.CREATED:
            await _refuse(send, 404, "not_found", "No such API.")
            return
        if state == ApiState.RETIRED:
            await _refuse(send, 410, "api_retired", "This API is retired.")
            return
        if state == ApiState.BLOCKED:
            await _refuse(
                send, 503, "api_blocked", "This API is blocked by its publisher."
            )
            return
        if not raw_key:
            await _refuse(
                send,
                401,
                "missing_key",
                "Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'.",
                extra_headers=[(b"www-authenticate", b'Bearer realm="apimon"')],
            )
            return
        if grant is None:
            found = await self._grant(key_hash, route, api)
            if isinstance(found, dict):
                status, code, message = found["refuse"]
                await _refuse(send, status, code, message)
                return
            grant = found
        now = self.clock()
        entry = grant.entry
        if entry["key_rev"] is not None and entry["key_rev"] <= now:
            await _refuse(send, 401, "key_revoked", "The API key is revoked.")
            return
        if entry["key_exp"] is not None and entry["key_exp"] <= now:
            await _refuse(send, 401, "key_expired", "The API key has expired.")
            return

        rest = parts[5] if len(parts) == 6 else ""
        admitted = await self._admit(
            send, grant, api, key_hash, route, org, now, scope["method"], rest
        )
        if admitted is None:
            return  # a refusal was sent
        if admitted is STALE:
            # Invalidated since we read the entries: decide again on fresh data.
            if attempt >= 3:
                await _refuse(
                    send, 503, "busy", "The API's settings are changing; retry."
                )
                return
            await self._handle(scope, receive, send, attempt=attempt + 1)
            return
        quota_key, field, grant, quota_used, rate_used, counted_meters = admitted
        if verify:
            # An external gateway asked: the request is allowed and counted (this
            # endpoint never sees the backend's answer, so every allowed call counts).
            await _allow(send, api, grant.entry, quota_used, rate_used)
            return
        await self._forward(
            scope, receive, send, api, grant, key_header, quota_key, field,
            counted_meters, now,
        )  # fmt: skip

    async def _admit(
        self, send, grant: Grant, api, key_hash, route, org, now, method, rest
    ):
        redis = self._redis()
        entry = grant.entry
        sub = entry["sub"]
        plan = None
        if api.get("meters"):
            plan = grant.plan
            if plan is None or plan.api is not api:
                plan = grant.plan = MeterPlan(api, entry)
            units = plan.units(method, rest)
            meter_seeds = plan.seeds
        # Long windows are seeded from the database when their counter is missing (a
        # new window, or a Redis that lost its data); minute and hour windows start at 0.
        seed = -1 if entry["quota_unit"] in SEEDED_UNITS else 0
        # One attempt, plus one per counter that may need seeding on the way.
        for _attempt in range(3 + (len(plan.admitted) if plan else 0)):
            rate, quota = entry["rate"], entry["quota"]
            rate_key = quota_key = ""
            rate_ms = 1000
            if rate:
                size = _FIXED_WINDOWS[entry["rate_unit"]]
                rate_start = now - (now % size)
                rate_key = meter.rate_key(sub, entry["rate_unit"], int(rate_start))
                rate_ms = size * 1000 + 1000
            q_start = q_end = 0.0
            if quota:
                q_start, q_end = grant.window(entry["quota_unit"], now)
                quota_key = meter.quota_key(sub, entry["quota_unit"], int(q_start))
            bucket = grant.bucket_us(now)
            field = meter.usage_field(sub, bucket)
            keys = [
                meter.api_key(route),
                meter.ent_key(key_hash, route),
                rate_key or meter.P + "r:none",
                quota_key or NO_QUOTA,
                meter.LIVE,
                meter.ALERTS,
                meter.LAST_USED,
            ]
            args = [
                rate,
                rate_ms,
                quota,
                max(int(q_end - now) + 3600, 60),
                1 if entry["stop"] else 0,
                field,
                seed,
                sub,
                key_hash,
                int(now),
            ]
            if plan is not None:
                fields = plan.fields_at(sub, bucket)
                quota_keys, ends = plan.windows(grant, now)
                meters = plan.meters
                args.append(len(plan.admitted))
                for i in plan.admitted:
                    m = meters[i]
                    keys.append(quota_keys[i] or NO_QUOTA)
                    args += (
                        m.limit,
                        max(int(ends[i] - now) + 3600, 60),
                        m.stop,
                        fields[i],
                        units[i],
                        meter_seeds[i],
                    )
            carried = 0
            if redis.report_keys:
                # Units that earlier answers reported ride along (added first).
                report_keys, report_args = redis.take_reports()
                carried = len(report_keys)
                if plan is None:
                    args.append(0)
                keys += report_keys
                args.append(carried)
                args += report_args
            try:
                result = await redis.admit(keys=keys, args=args)
            except RedisError:
                if carried:
                    log.error(
                        "reported units lost: %s reports (a meter's units of one answer each)",
                        carried,
                    )
                raise
            code = result[0]
            if code == ADMITTED:
                counted = (
                    Counted(field, plan, units, fields, quota_keys)
                    if plan is not None
                    else NOT_METERED
                )
                return quota_key, field, grant, result[1], result[2], counted
            if code == STALE:
                self._local.pop(meter.api_key(route), None)
                self._local.pop(meter.ent_key(key_hash, route), None)
                return STALE
            if code == NEEDS_SEED:
                seed = await sync_to_async(_with_db(_seed), thread_sensitive=False)(
                    sub, entry["quota_unit"], q_start, q_end
                )
                continue
            if code == METER_NEEDS_SEED:
                i = plan.admitted[int(result[2]) - 1]
                m = plan.meters[i]
                m_start, m_end = grant.window(m.unit, now)
                meter_seeds = meter_seeds.copy()
                meter_seeds[i] = await sync_to_async(
                    _with_db(_seed), thread_sensitive=False
                )(sub, m.unit, m_start, m_end, m.key)
                continue
            if code == METER_QUOTA_USED_UP:
                m = plan.meters[plan.admitted[int(result[2]) - 1]]
                retry = max(1, math.ceil(grant.window(m.unit, now)[1] - now))
                await _too_many(
                    send,
                    org,
                    api,
                    retry,
                    "quota_exceeded",
                    f"Quota of {m.limit} {m.key} per {m.unit} used up.",
                )
                return None
            if code == RATE_LIMITED:
                retry = max(1, math.ceil(rate_start + size - now))
                await _too_many(
                    send,
                    org,
                    api,
                    retry,
                    "rate_limited",
                    f"Rate limit of {rate} requests per {entry['rate_unit']} reached.",
                )
                return None
            retry = max(1, math.ceil(q_end - now))
            await _too_many(
                send,
                org,
                api,
                retry,
                "quota_exceeded",
                f"Quota of {quota} requests per {entry['quota_unit']} used up.",
            )
            return None
        raise RuntimeError("quota counter could not be seeded")  # pragma: no cover

    async def _forward(
        self, scope, receive, send, api, grant, key_header, quota_key, field,
        metered: Counted, now: float,
    ):  # fmt: skip
        counted = False
        reported: dict[int, int] | None = None
        every = grant.entry["every"]
        try:
            headers = _forward_headers(scope, key_header, self.cookie_names())
            url = _backend_url(api["backend"], scope)
            try:
                data = await _request_body(receive)
            except ClientGone:
                return  # the caller hung up before sending its body: not counted
            try:
                response = await self._session().request(
                    scope["method"],
                    url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                )
            except TimeoutError:
                await _refuse(
                    send,
                    504,
                    "backend_timeout",
                    "The API's backend did not answer in time.",
                )
                return
            except (aiohttp.ClientError, OSError) as exc:
                refused = egress.refused_by(exc)
                if refused is not None:
                    self._note_refusal(api, refused)
                    await _refuse(
                        send,
                        502,
                        "backend_forbidden",
                        "The API's backend is at an address the gateway may not "
                        "connect to (a private, loopback or link-local network).",
                    )
                    return
                log.info("backend unreachable %s: %s", api["backend"], exc)
                await _refuse(
                    send,
                    502,
                    "backend_unreachable",
                    "The API's backend cannot be reached.",
                )
                return
            async with response:
                counted = every or 200 <= response.status < 400
                plan = metered.plan
                if plan is not None and plan.headers:
                    headers, reported = _answer_headers_reported(
                        response.raw_headers, self.cookie_names(), plan.headers, api
                    )
                else:
                    headers = _answer_headers(response.raw_headers, self.cookie_names())
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": headers,
                    }
                )
                async for chunk in response.content.iter_any():
                    await send(
                        {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
                await send({"type": "http.response.body", "body": b""})
        finally:
            if not counted:
                keys, args = metered.release_args()
                await self._redis().release(
                    keys=[quota_key, meter.LIVE, *keys], args=[field, *args]
                )
            elif reported:
                self._keep_report(grant.entry["sub"], metered, reported)

    def _keep_report(self, sub: int, metered: Counted, reported: dict) -> None:
        """Keep the units an answer reported for the next round trip to Redis: the
        process's next ADMIT carries them, or, when none comes within REPORT_WITHIN,
        REPORT sends them (no round trip of their own on a busy gateway, and none
        on the caller's path)."""
        redis = self._redis()
        keys, args = redis.report_keys, redis.report_args
        meters = metered.plan.meters
        for i, units in reported.items():
            if units:
                keys.append(metered.quota_keys[i])
                args += (metered.fields[i], units, meters[i].limit, sub)
        if keys and redis.report_timer is None:
            redis.report_timer = asyncio.get_running_loop().call_later(
                REPORT_WITHIN, self._send_reports_soon, redis
            )

    def _send_reports_soon(self, redis: _LoopRedis) -> None:
        redis.report_timer = None
        if redis.report_keys:
            task = asyncio.get_running_loop().create_task(self._send_reports(redis))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _send_reports(self, redis: _LoopRedis) -> None:
        """Send the reports waiting for a round trip, in one REPORT."""
        keys, args = redis.take_reports()
        if not keys:
            return
        try:
            await redis.report(keys=[meter.LIVE, meter.ALERTS, *keys], args=args)
        except RedisError:
            log.exception(
                "reported units lost: %s reports (a meter's units of one answer each)",
                len(keys),
            )

    async def drain(self) -> None:
        """Send the units reported by the answers so far and wait for the other
        background work (refusal notes)."""
        redis = self._scripts.get(asyncio.get_running_loop())
        if redis is not None:
            await self._send_reports(redis)
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


# ---- helpers ---------------------------------------------------------------------


class ClientGone(Exception):
    """The caller disconnected while the gateway was reading its request."""


async def _refuse(
    send, status: int, code: str, message: str, *, extra_headers=(), **extra
) -> None:
    body = _json_body(code, message, **extra)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                NOSNIFF,
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def refuse_wrong_host(scope, send, *, gateway_host: bool) -> None:
    """404 for a request on the wrong host when GATEWAY_HOST is set: a page asked on
    the gateway's host (`gateway_host`), or the gateway asked on another host."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    if scope["type"] != "http":
        return
    if gateway_host:
        message = (
            f"This host serves the API gateway only; apimon is at {settings.SITE_URL}."
        )
    else:
        message = f"The gateway answers at {settings.GATEWAY_URL}/gateway/…"
    await _refuse(send, 404, "not_found", message)


async def _too_many(send, org: str, api: dict, retry: int, code: str, message: str):
    upgrade = f"{settings.SITE_URL}/t/{org}/store/apis/{api['id']}/"
    await _refuse(
        send,
        429,
        code,
        message + " Upgrade your tier for more.",
        upgrade_url=upgrade,
        retry_after=retry,
        extra_headers=[
            (b"retry-after", str(retry).encode()),
            (b"link", f'<{upgrade}>; rel="upgrade"'.encode()),
        ],
    )


async def _allow(send, api: dict, entry: dict, quota_used: int, rate_used: int):
    """The verify endpoint's yes: 200 with an empty body (Envoy's ext_authz takes only
    200 as a yes; nginx any 2xx) and what an external gateway may log or pass on."""
    headers = [
        (b"content-length", b"0"),
        (b"cache-control", b"no-store"),
        NOSNIFF,
        (b"x-apimon-api", str(api["id"]).encode()),
        (b"x-apimon-subscription", str(entry["sub"]).encode()),
        (b"x-apimon-application", str(entry["app"]).encode()),
    ]
    if entry["rate"]:
        headers.append((b"x-ratelimit-limit", str(entry["rate"]).encode()))
        remaining = max(0, entry["rate"] - rate_used)
        headers.append((b"x-ratelimit-remaining", str(remaining).encode()))
    if entry["quota"]:
        headers.append((b"x-apimon-quota-limit", str(entry["quota"]).encode()))
        remaining = max(0, entry["quota"] - quota_used)
        headers.append((b"x-apimon-quota-remaining", str(remaining).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _verify_target(scope) -> str | None:
    """The gateway path (``/gateway/<org>/<context>/<version>/…``) that a verify
    request asks about: from its own path, else from X-Original-URI, which may be
    ``/<org>/<context>/<version>/…`` or the full ``/gateway/…`` path (its query
    string is ignored). None when neither is there."""
    below = scope["path"][len(VERIFY_PATH) :]
    if below.strip("/"):
        return "/gateway" + below
    for name, value in scope["headers"]:
        if name == b"x-original-uri":
            uri = unquote(value.decode("latin-1").split("?", 1)[0])
            if not uri.startswith("/"):
                return None
            return uri if uri.startswith("/gateway/") else "/gateway" + uri
    return None


def _find_key(headers) -> tuple[bytes, bytes]:
    """(raw key, name of the header that carried it); Authorization wins."""
    x_api_key = b""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip(), b"authorization"
        elif name == b"x-api-key" and value.strip():
            x_api_key = value.strip()
    return x_api_key, b"x-api-key"


def apimon_cookie_names() -> frozenset[bytes]:
    """The names of the cookies apimon's pages set, from the settings that name them:
    the session, CSRF and language cookies, the messages framework's cookie and
    allauth's "trust this browser" cookie of multi-factor authentication."""
    from allauth.mfa import app_settings as mfa_settings
    from django.contrib.messages.storage.cookie import CookieStorage

    names = {
        settings.SESSION_COOKIE_NAME,
        settings.CSRF_COOKIE_NAME,
        settings.LANGUAGE_COOKIE_NAME,
        CookieStorage.cookie_name,
        mfa_settings.TRUST_COOKIE_NAME,
    }
    return frozenset(name.encode("latin-1") for name in names)


def _without_cookies(value: bytes, names: frozenset[bytes]) -> bytes:
    """A Cookie header's value without the cookies named in `names`."""
    kept = [
        pair.strip()
        for pair in value.split(b";")
        if pair.strip() and pair.split(b"=", 1)[0].strip() not in names
    ]
    return b"; ".join(kept)


def _set_cookie_name(value: bytes) -> bytes:
    """The name a Set-Cookie header sets (RFC 6265bis: none without an "=")."""
    pair = value.split(b";", 1)[0]
    return pair.split(b"=", 1)[0].strip() if b"=" in pair else b""


def _answer_headers(raw_headers, cookie_names: frozenset[bytes]):
    """The backend's headers as passed on: no hop-by-hop ones, no meter report
    (Apimon-Meter-*), no cookie for one of apimon's names, and nosniff."""
    headers = []
    for name, value in raw_headers:
        lower = name.lower()
        if lower in DROPPED_RESPONSE or lower.startswith(METER_HEADER):
            continue
        if lower == b"set-cookie" and _set_cookie_name(value) in cookie_names:
            continue
        headers.append((name, value))
    headers.append(NOSNIFF)
    return headers


def _answer_headers_reported(
    raw_headers, cookie_names: frozenset[bytes], wanted: dict[bytes, int], api: dict
) -> tuple[list, dict[int, int]]:
    """`_answer_headers`, and in the same pass the units reported per meter (index →
    units) by the ``Apimon-Meter-<key>: <non-negative integer>`` headers named in
    `wanted` (header name → meter index). A missing header counts 0; a malformed one
    counts 0 and is logged for the publisher, never billed by guess."""
    headers = []
    units: dict[int, int] = {}
    for name, value in raw_headers:
        lower = name.lower()
        if lower in DROPPED_RESPONSE:
            continue
        if lower.startswith(METER_HEADER):
            i = wanted.get(lower)
            if i is not None:
                text = value.strip()
                if text.isdigit() and len(text) <= 15 and int(text) <= MAX_REPORTED:
                    units[i] = units.get(i, 0) + int(text)
                else:
                    log.warning(
                        "API %s: malformed %s header %r counted 0",
                        api.get("id"),
                        name.decode("latin-1")[:60],
                        value[:40],
                    )
            continue
        if lower == b"set-cookie" and _set_cookie_name(value) in cookie_names:
            continue
        headers.append((name, value))
    headers.append(NOSNIFF)
    return headers, units


def _forward_headers(
    scope, key_header: bytes, cookie_names: frozenset[bytes]
) -> list[tuple[str, str]]:
    headers = scope["headers"]
    connection_listed: set[bytes] = set()
    host = b""
    forwarded_for = b""
    for name, value in headers:
        if name == b"connection":
            connection_listed.update(
                token.strip().lower() for token in value.split(b",")
            )
        elif name == b"host":
            host = value
        elif name == b"x-forwarded-for":
            forwarded_for = value
    dropped = DROPPED_REQUEST | connection_listed | {key_header}
    out = []
    for name, value in headers:
        if name in dropped:
            continue
        if name == b"cookie":
            # apimon's session and CSRF cookies never reach a tenant's backend.
            value = _without_cookies(value, cookie_names)
            if not value:
                continue
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    client = scope.get("client")
    client_ip = client[0] if client else "unknown"
    chain = (
        f"{forwarded_for.decode('latin-1')}, {client_ip}"
        if forwarded_for
        else client_ip
    )
    out.append(("X-Request-ID", scope.get("apimon.request_id", "")))
    out.append(("X-Forwarded-For", chain))
    out.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    if host:
        out.append(("X-Forwarded-Host", host.decode("latin-1")))
    return out


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def _escapes(rest: str) -> bool:
    """True if the (percent-decoded) path below the API has dot segments."""
    return any(seg in (".", "..") for seg in rest.replace("\\", "/").split("/"))


def _backend_url(backend: str, scope) -> URL:
    raw_path = scope.get("raw_path") or scope["path"].encode()
    raw_path = raw_path.split(b"?", 1)[0]
    parts = raw_path.split(b"/", 5)
    url = backend.rstrip("/")
    if len(parts) == 6:
        url += "/" + parts[5].decode("latin-1")
    query = scope.get("query_string") or b""
    if query:
        url += "?" + query.decode("latin-1")
    return URL(url, encoded=True)


async def _request_body(receive):
    """The body to forward: bytes when it came in one message, else a stream."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    first = message.get("body", b"")
    if not message.get("more_body", False):
        return first or None

    async def stream():
        yield first
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ClientGone
            yield msg.get("body", b"")
            if not msg.get("more_body", False):
                return

    return stream()


async def _record_refusal(api_id: int, address: str, at: datetime) -> None:
    def record() -> None:
        api_backend_refusal_record(api_id=api_id, address=address, at=at)

    try:
        await sync_to_async(_with_db(record), thread_sensitive=False)()
    except Exception:  # a note for the publisher: never the caller's problem
        log.exception("could not record the backend refusal of API %s", api_id)


def _with_db(fn):
    """Run `fn` in a worker thread with Django's connection hygiene."""

    def run(*args):
        close_old_connections()
        try:
            return fn(*args)
        finally:
            close_old_connections()

    return run


def _seed(
    sub_id: int, unit: str, start: float, end: float, meter_key: str = REQUESTS_METER
) -> int:
    """Units (requests by default) already counted in a quota window whose Redis
    counter is missing (a new window, or a Redis that lost its data): the database
    plus unflushed counts."""
    return usage_in_window(
        subscription_id=sub_id,
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        meter_key=meter_key,
    )
