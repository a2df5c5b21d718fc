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

    __slots__ = ("entry", "expires", "quota_windows")

    def __init__(self, entry: dict, expires: float) -> None:
        self.entry = entry
        self.expires = expires
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


class Counted:
    """What ADMIT counted for a call besides the request: the meters' units."""

    __slots__ = ("bucket", "field", "meters")

    def __init__(self, field: str, bucket: int, meters: list) -> None:
        self.field = field
        self.bucket = bucket
        self.meters = meters

    def reported_keys(self) -> list[str]:
        return [m[0] for m in self.meters if m[1] == MeterSource.RESPONSE]

    def release_args(self) -> tuple[list[str], list]:
        """RELEASE's meter keys and arguments: take back weighted units."""
        keys, args = [], []
        sub = None
        for key, _source, units, _limit, _unit, _stop, quota_key in self.meters:
            if units:
                sub = sub or self.field.split(":", 1)[0]
                keys.append(quota_key)
                args += [meter.usage_field(int(sub), self.bucket, key), units]
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

    def _redis_scripts(self):
        loop = asyncio.get_running_loop()
        scripts = self._scripts.get(loop)
        if scripts is None:
            client = get_async_redis()
            scripts = (
                client,
                client.register_script(meter.ADMIT),
                client.register_script(meter.RELEASE),
                client.register_script(meter.CACHE_PUT),
            )
            self._scripts[loop] = scripts
        return scripts

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
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
        client, _admit, _release, cache_put = self._redis_scripts()
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

    def _request_meters(self, api, grant: Grant, method: str, rest: str, now: float):
        """The API's request-time meters for this call: [key, source, units, quota
        limit, quota unit, hard stop, quota counter key] each. Weighted operations
        weigh the call by the API's compiled operations; a response-reported meter
        weighs 0 now (the answer says how much) but its quota is checked."""
        meters = api.get("meters")
        if not meters:
            return []
        matchers = api.get("_matchers")
        if matchers is None:  # compiled once per cached copy of the API
            matchers = {
                key: Matcher.compile(ops)
                for key, source, ops in meters
                if source == MeterSource.OPERATIONS
            }
            api["_matchers"] = matchers
        quotas = grant.entry.get("mq") or {}
        out = []
        for key, source, _ops in meters:
            units = matchers[key].units(method, rest) if key in matchers else 0
            limit, unit, stop = quotas.get(key) or (0, "", False)
            quota_key = ""
            if limit:
                start, _end = grant.window(unit, now)
                quota_key = meter.quota_key(grant.entry["sub"], unit, int(start), key)
            out.append([key, source, units, limit or 0, unit, stop, quota_key])
        return out

    async def _admit(
        self, send, grant: Grant, api, key_hash, route, org, now, method, rest
    ):
        _client, admit, _release, _put = self._redis_scripts()
        entry = grant.entry
        metered = self._request_meters(api, grant, method, rest, now)
        meter_seeds = [-1 if m[4] in SEEDED_UNITS else 0 for m in metered]
        # Long windows are seeded from the database when their counter is missing (a
        # new window, or a Redis that lost its data); minute and hour windows start at 0.
        seed = -1 if entry["quota_unit"] in SEEDED_UNITS else 0
        for _attempt in range(3):
            rate, quota = entry["rate"], entry["quota"]
            rate_key = quota_key = ""
            rate_ms = 1000
            if rate:
                size = _FIXED_WINDOWS[entry["rate_unit"]]
                rate_start = now - (now % size)
                rate_key = meter.rate_key(
                    entry["sub"], entry["rate_unit"], int(rate_start)
                )
                rate_ms = size * 1000 + 1000
            q_start = q_end = 0.0
            if quota:
                q_start, q_end = grant.window(entry["quota_unit"], now)
                quota_key = meter.quota_key(
                    entry["sub"], entry["quota_unit"], int(q_start)
                )
            bucket = grant.bucket_us(now)
            field = meter.usage_field(entry["sub"], bucket)
            meter_keys, meter_args = [], [len(metered)]
            for m, m_seed in zip(metered, meter_seeds, strict=True):
                key, _source, units, limit, unit, stop, m_quota_key = m
                m_end = grant.window(unit, now)[1] if limit else now
                meter_keys.append(m_quota_key or meter.P + "q:none")
                meter_args += [
                    limit,
                    max(int(m_end - now) + 3600, 60),
                    1 if stop else 0,
                    meter.usage_field(entry["sub"], bucket, key),
                    units,
                    m_seed,
                ]
            result = await admit(
                keys=[
                    meter.api_key(route),
                    meter.ent_key(key_hash, route),
                    rate_key or meter.P + "r:none",
                    quota_key or meter.P + "q:none",
                    meter.LIVE,
                    meter.ALERTS,
                    meter.LAST_USED,
                    *meter_keys,
                ],
                args=[
                    rate,
                    rate_ms,
                    quota,
                    max(int(q_end - now) + 3600, 60),
                    1 if entry["stop"] else 0,
                    field,
                    seed,
                    entry["sub"],
                    key_hash,
                    int(now),
                    *meter_args,
                ],
            )
            code = result[0]
            if code == ADMITTED:
                counted = Counted(field, bucket, metered)
                return quota_key, field, grant, result[1], result[2], counted
            if code == STALE:
                self._local.pop(meter.api_key(route), None)
                self._local.pop(meter.ent_key(key_hash, route), None)
                return STALE
            if code == NEEDS_SEED:
                seed = await sync_to_async(_with_db(_seed), thread_sensitive=False)(
                    entry["sub"], entry["quota_unit"], q_start, q_end
                )
                continue
            if code == METER_NEEDS_SEED:
                i = int(result[2]) - 1
                m_start, m_end = grant.window(metered[i][4], now)
                meter_seeds[i] = await sync_to_async(
                    _with_db(_seed), thread_sensitive=False
                )(entry["sub"], metered[i][4], m_start, m_end, metered[i][0])
                continue
            if code == METER_QUOTA_USED_UP:
                key, _source, _units, limit, unit, _stop, _qk = metered[
                    int(result[2]) - 1
                ]
                retry = max(1, math.ceil(grant.window(unit, now)[1] - now))
                await _too_many(
                    send,
                    org,
                    api,
                    retry,
                    "quota_exceeded",
                    f"Quota of {limit} {key} per {unit} used up.",
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
        reported: dict[str, int] = {}
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
                if metered.reported_keys():
                    reported = _reported_units(
                        response.raw_headers, metered.reported_keys(), api
                    )
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": _answer_headers(
                            response.raw_headers, self.cookie_names()
                        ),
                    }
                )
                async for chunk in response.content.iter_any():
                    await send(
                        {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
                await send({"type": "http.response.body", "body": b""})
        finally:
            if not counted:
                _client, _admit, release, _put = self._redis_scripts()
                keys, args = metered.release_args()
                await release(keys=[quota_key, meter.LIVE, *keys], args=[field, *args])
            elif reported:
                # After the answer, off the caller's path: a keep-alive connection's
                # next request does not wait for this round trip.
                task = asyncio.get_running_loop().create_task(
                    self._report(grant, metered, reported)
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the background work of the answers sent so far (reported
        units, refusal notes)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _report(self, grant: Grant, metered: Counted, reported: dict) -> None:
        """Count the units the answer reported (a second round trip, after the
        answer: what a call consumed is known only then)."""
        try:
            await self._count_reported(grant, metered, reported)
        except RedisError:
            log.exception("reported units of subscription %s lost", grant.entry["sub"])

    async def _count_reported(self, grant, metered: Counted, reported: dict) -> None:
        client, *_scripts = self._redis_scripts()
        keys, args = [meter.LIVE, meter.ALERTS], [grant.entry["sub"]]
        for key, _source, _units, limit, _unit, _stop, quota_key in metered.meters:
            if reported.get(key):
                keys.append(quota_key)
                args += [
                    meter.usage_field(grant.entry["sub"], metered.bucket, key),
                    reported[key],
                    limit,
                ]
        if len(keys) > 2:
            await client.eval(meter.REPORT, len(keys), *keys, *args)


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


def _reported_units(raw_headers, keys: list[str], api: dict) -> dict[str, int]:
    """Units the backend reported per response-reported meter
    (``Apimon-Meter-<key>: <non-negative integer>``). A missing header counts 0; a
    malformed one counts 0 and is logged for the publisher, never billed by guess."""
    wanted = {METER_HEADER + key.encode(): key for key in keys}
    units: dict[str, int] = {}
    for name, value in raw_headers:
        key = wanted.get(name.lower())
        if key is None:
            continue
        text = value.strip()
        if text.isdigit() and len(text) <= 15 and int(text) <= MAX_REPORTED:
            units[key] = units.get(key, 0) + int(text)
        else:
            log.warning(
                "API %s: malformed %s header %r counted 0",
                api.get("id"),
                name.decode("latin-1")[:60],
                value[:40],
            )
    return units


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
