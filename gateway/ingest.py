"""The usage ingest API's writes: an external gateway that authorizes calls on its
own posts what it served, in batches, and each event is counted exactly once.

- Tokens are per organization, created by an owner in the publisher console, shown
  once; apimon keeps the SHA-256 (`IngestToken.token_hash`).
- An event names a subscription of the token's organization (``subscription`` id, or
  an API ``key`` of the organization with ``api`` = ``"<context>/<version>"``), a time
  ``at`` (ISO 8601 with a zone), a ``meter`` (a meter's key, ``requests`` by
  default), a ``quantity`` (``count`` is its older name; 1 by default) and an
  ``idempotency_key``.
- In one transaction: the subscriptions are locked (as the billing engine locks them
  to close a period) and each new event is stored as a `UsageEvent` (unique per
  organization and idempotency key), and the batch's units per (subscription,
  meter, subscription hour) as `PendingUsage` rows. The usage flush
  (gateway.services.usage_flush, every few seconds) adds the pending rows to the
  hourly `UsageRecord` rows and deletes them, in one transaction; readers that must
  be exact add the pending rows (gateway.selectors). Exactly once: a key already
  stored is a duplicate and adds nothing. A batch is first stored without reading
  its keys (most are new); if the unique constraint refuses it (a retry, or a
  concurrent batch with the same key), it is rolled back and redone reading the
  stored keys, which are then duplicates.
- Events are judged one by one; a batch is partly accepted. Another organization's
  subscriptions and keys are refused like unknown ones.
- Speed (bench/README.md, "Ingest"): the body and the answer go through orjson
  (`loads`, `dumps`), the checks compare µs since the epoch, and PostgreSQL gets the
  rows by COPY.

docs/metering.md ("External gateways: the ingest API") states the rules for callers.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apimon import clock, jsonbody
from gateway import meter
from gateway.models import IngestToken, PendingUsage, UsageEvent
from gateway.redis import get_redis
from publisher.models import METER_KEY_PATTERN, REQUESTS_METER, Meter
from store.keys import hash_key
from store.models import ApiKey, Subscription, SubscriptionState

log = logging.getLogger(__name__)

TOKEN_SCHEME = "ing_"
MAX_EVENTS = 1000
MAX_COUNT = 1_000_000  # requests per event
MAX_QUANTITY = 1_000_000_000  # units of another meter per event (tokens, say)
MAX_KEY_LENGTH = 200
FUTURE_SKEW = timedelta(minutes=5)
LAST_USED_EVERY = timedelta(minutes=1)  # IngestToken.last_used_at's resolution
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
METER_KEY = re.compile(METER_KEY_PATTERN)


# ---- tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: IngestToken
    raw: str  # shown once, never stored


def ingest_token_create(*, organization, actor, name: str = "") -> IssuedToken:
    prefix = TOKEN_SCHEME + secrets.token_hex(4)
    raw = f"{prefix}_{secrets.token_urlsafe(32)}"
    token = IngestToken.objects.create(
        organization=organization,
        name=(name or "").strip()[:80],
        prefix=prefix,
        token_hash=hash_key(raw),
        created_by=actor,
    )
    return IssuedToken(token=token, raw=raw)


def ingest_token_revoke(*, token: IngestToken) -> None:
    IngestToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def token_for(raw: str) -> IngestToken | None:
    """The active token with this value, or None."""
    if not raw:
        return None
    return IngestToken.objects.filter(
        token_hash=hash_key(raw), revoked_at__isnull=True
    ).first()


# ---- events ----------------------------------------------------------------------


class Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def loads(body: bytes) -> Any:
    """The request body's JSON. orjson parses it (a 1,000-event batch in a tenth of
    the time of the json module and the depth check) and the parsed value's nesting
    is checked against apimon.jsonbody's limit; whatever orjson refuses (not UTF-8,
    nested past its own limit of 1,024, NaN, a lone surrogate…) goes
    through apimon.jsonbody as before, so every body gets the answer it got before.
    Raises jsonbody.JsonBodyError."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return jsonbody.loads(body)
    if _deeper_than(payload, jsonbody.MAX_DEPTH):
        raise jsonbody.JsonBodyError(
            "too_deep", jsonbody.too_deep_message(jsonbody.MAX_DEPTH)
        )
    return payload


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value`'s lists and dicts nest deeper than `limit` (the text's
    bracket depth, as jsonbody.nesting_depth counts it). A batch is a list of flat
    dicts: one look at each of their values."""
    stack = [(value, 1)] if type(value) in _CONTAINERS else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if type(item) is dict else item:
            if type(child) in _CONTAINERS:
                stack.append((child, depth + 1))
    return False


_CONTAINERS = frozenset((dict, list))


def dumps(answer: dict) -> bytes:
    """The answer's JSON (orjson; the json module for what orjson cannot write, a
    lone surrogate echoed from a refused event's key)."""
    try:
        return orjson.dumps(answer)
    except orjson.JSONEncodeError:
        return json.dumps(answer).encode()


@dataclass(slots=True)
class Parsed:
    index: int
    idempotency_key: str
    at: datetime
    at_us: int  # `at` in µs since the epoch
    at_text: str  # `at` as sent, if PostgreSQL reads it alike; else ""
    count: int
    meter: str = REQUESTS_METER
    subscription_id: int | None = None
    key_hash: str = ""
    api: tuple[str, str] | None = None


@dataclass
class IngestResult:
    results: list[dict] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r["status"] == status)

    def as_json(self) -> dict:
        return {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "rejected": self.count("rejected"),
            "results": self.results,
        }


def _parse(index: int, raw, meter_keys: set[str]) -> Parsed:
    """One event, checked; `meter_keys` holds the meter keys found well-formed so
    far in the batch (most events repeat a few)."""
    if type(raw) is not dict:
        raise Rejected("bad_event", "An event is a JSON object.")
    ikey = raw.get("idempotency_key")
    if type(ikey) is not str or not ikey.strip():
        raise Rejected("missing_idempotency_key", "Give each event an idempotency_key.")
    if len(ikey) > MAX_KEY_LENGTH:
        raise Rejected(
            "bad_idempotency_key",
            f"An idempotency_key has at most {MAX_KEY_LENGTH} characters.",
        )
    if ikey.isascii() and ikey.isprintable():
        pass  # the common case, in two C calls: no control character, UTF-8 text
    elif CONTROL_CHARACTERS.search(ikey):
        # NUL cannot be stored by PostgreSQL; no caller means the others.
        raise Rejected(
            "bad_idempotency_key",
            "An idempotency_key has no control characters (NUL, tab, newline…).",
        )
    elif not _is_text(ikey):
        raise Rejected(
            "bad_idempotency_key",
            "An idempotency_key is Unicode text (a lone surrogate such as \\ud800 "
            "is not).",
        )
    at_raw = raw.get("at")
    try:
        at = datetime.fromisoformat(at_raw) if type(at_raw) is str else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise Rejected(
            "bad_time", "'at' is an ISO 8601 time with a zone, e.g. 2027-01-15T10:00Z."
        )
    meter_key = raw.get("meter", REQUESTS_METER)
    if type(meter_key) is not str or meter_key not in meter_keys:
        if type(meter_key) is not str or not METER_KEY.match(meter_key):
            raise Rejected("bad_meter", "'meter' is a meter's key, e.g. tokens.")
        meter_keys.add(meter_key)
    if "quantity" in raw:
        if "count" in raw:
            raise Rejected("bad_count", "Give 'quantity' or 'count', not both.")
        count = raw["quantity"]
    else:
        count = raw.get("count", 1)
    if type(count) is not int:  # not a bool either
        raise Rejected("bad_count", "'quantity' is a whole number.")
    most = MAX_COUNT if meter_key == REQUESTS_METER else MAX_QUANTITY
    if not 1 <= count <= most:
        raise Rejected("bad_count", f"'quantity' is between 1 and {most:,}.")
    parsed = Parsed(
        index,
        ikey,
        at,
        (at - EPOCH) // MICROSECOND,
        at_raw if AT_AS_SENT.match(at_raw) else "",
        count,
        meter_key,
    )
    sub = raw.get("subscription")
    key = raw.get("key")
    if sub is not None:
        if type(sub) is not int:
            raise Rejected("bad_subscription", "'subscription' is a subscription id.")
        # An id out of the database's range names no subscription (as 0 does).
        parsed.subscription_id = sub if 0 < sub <= MAX_ID else 0
    elif type(key) is str and key:
        api = raw.get("api")
        parts = api.strip("/").split("/") if type(api) is str else []
        if len(parts) != 2 or not all(parts):
            raise Rejected(
                "missing_api",
                "With a 'key', name the API as 'api': '<context>/<version>'.",
            )
        # A key that is not text (a lone surrogate) is no key of anyone's.
        parsed.key_hash = hash_key(key) if _is_text(key) else "-"
        parsed.api = (parts[0], parts[1])
    else:
        raise Rejected(
            "missing_subscription",
            "Name the subscription: 'subscription' (its id) or 'key' and 'api'.",
        )
    return parsed


def _is_text(value: str) -> bool:
    """Whether `value` can be written as UTF-8 (no lone surrogate: only the json
    module's fallback parses one)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


EPOCH = meter.EPOCH
# An ISO 8601 time that PostgreSQL reads as the same instant as datetime.fromisoformat
# (ASCII digits, "T", seconds to the µs at most, a zone within PostgreSQL's ±15:59):
# written to COPY as sent, without formatting it again (a third of the cost of
# writing an event). Other forms Python accepts (week dates, the basic format, more
# digits, an offset of +16:00 to +23:59) are written in UTC (_at_text).
AT_AS_SENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])\Z"
)


def _at_text(p: Parsed) -> str:
    """`p.at` as COPY's text: as sent, or in UTC (an accepted event's time is
    recent: no overflow)."""
    return p.at_text or p.at.astimezone(UTC).isoformat()


MICROSECOND = timedelta(microseconds=1)
MAX_ID = 2**63 - 1  # PostgreSQL's bigint


def ingest_events(*, token: IngestToken, events: list, now=None) -> IngestResult:
    """Record a batch of usage events of `token`'s organization; see the module."""
    now = now or clock.now()
    malformed: dict[int, dict] = {}
    parsed: list[Parsed] = []
    meter_keys = {REQUESTS_METER}
    for index, raw in enumerate(events):
        try:
            parsed.append(_parse(index, raw, meter_keys))
        except Rejected as exc:
            malformed[index] = _rejected(index, raw, exc)
    try:
        # Most batches are new: store them without reading their keys first; the
        # unique constraint refuses the whole batch if any key is stored already.
        return _ingest(token, events, parsed, dict(malformed), now, check_keys=False)
    except IntegrityError:
        pass
    try:
        # A retry, or a batch sharing keys with a stored one: again, reading which
        # keys are stored (those events are duplicates).
        return _ingest(token, events, parsed, dict(malformed), now, check_keys=True)
    except IntegrityError:
        # A concurrent batch stored one of these idempotency keys first: once more,
        # and those events are now duplicates.
        log.info("ingest batch collided with another; redoing it")
        return _ingest(token, events, parsed, dict(malformed), now, check_keys=True)


def _ingest(
    token: IngestToken,
    events: list,
    parsed: list[Parsed],
    outcome: dict[int, dict],
    now,
    *,
    check_keys: bool,
) -> IngestResult:
    org_id = token.organization_id
    with transaction.atomic():
        # Keys → applications, then (application, api) → subscription.
        hashes = {p.key_hash for p in parsed if p.key_hash}
        apps = (
            dict(
                ApiKey.objects.filter(
                    organization_id=org_id, key_hash__in=hashes
                ).values_list("key_hash", "application_id")
            )
            if hashes
            else {}
        )
        by_app_api: dict[tuple, int] = {}
        wanted_apps = {apps[p.key_hash] for p in parsed if p.key_hash in apps}
        if wanted_apps:
            rows = Subscription.objects.filter(
                organization_id=org_id, application_id__in=wanted_apps
            ).values_list(
                "pk", "application_id", "api__context", "api__version", "state"
            )
            # A live subscription wins over a cancelled one of the same API.
            for pk, app, context, version, _state in sorted(
                rows, key=lambda r: r[4] != SubscriptionState.CANCELLED
            ):
                by_app_api[(app, context, version)] = pk
        for p in parsed:
            if p.key_hash:
                app = apps.get(p.key_hash)
                p.subscription_id = by_app_api.get((app, *p.api)) if app else None
                if app is None:
                    outcome[p.index] = _rejected(
                        p.index, p, Rejected("invalid_key", "The API key is not valid.")
                    )
                elif p.subscription_id is None:
                    outcome[p.index] = _rejected(
                        p.index,
                        p,
                        Rejected(
                            "not_subscribed",
                            "This key's application is not subscribed to this API.",
                        ),
                    )
        ids = {p.subscription_id for p in parsed if p.index not in outcome}
        # Locked like the billing engine locks a subscription to close its period,
        # so an event is either in the period's usage when it is closed or refused.
        subs = _locked_subscriptions(org_id, ids)
        # The meters of the subscriptions' APIs (requests is every API's).
        meter_keys: dict[int, set[str]] = defaultdict(lambda: {REQUESTS_METER})
        if any(p.meter != REQUESTS_METER for p in parsed):
            for api_id, key in Meter.objects.filter(
                api_id__in={s[1] for s in subs.values()}
            ).values_list("api_id", "key"):
                meter_keys[api_id].add(key)
        existing = _stored(org_id, parsed) if check_keys else {}
        latest_us = meter.epoch_us(now + FUTURE_SKEW)
        new: list[tuple[Parsed, int]] = []  # with its hour (µs since the epoch)
        unsure: list[Parsed] = []  # refused without knowing if their key is stored
        accepted = "accepted"
        for p in parsed:
            index = p.index
            if index in outcome:
                continue
            ikey = p.idempotency_key
            seen = existing.get(ikey)
            if seen is not None:
                outcome[index] = _seen(p, seen)
                continue
            sub = subs.get(p.subscription_id)
            # The checks of _refusal, inline for the common case.
            if (
                sub is None
                or sub[2] != SubscriptionState.ACTIVE
                or p.at_us > latest_us
                or p.at_us < sub[4]
                or p.meter not in meter_keys[sub[1]]
            ):
                refusal = _refusal(sub, p, latest_us, meter_keys)
                if refusal is not None:
                    outcome[index] = _rejected(index, p, refusal)
                    if not check_keys:
                        unsure.append(p)
                    continue
            at_us = p.at_us
            new.append((p, at_us - (at_us - sub[3]) % meter.HOUR_US))
            # A repeat in this batch: a duplicate.
            existing[ikey] = (sub[0], p.at, p.meter, p.count)
            outcome[index] = {
                "index": index,
                "idempotency_key": ikey,
                "status": accepted,
                "subscription": sub[0],
            }
        if unsure:
            # A stored event is a duplicate even if it would be refused now (its
            # period invoiced since, say), as when the keys are read first.
            stored = _stored(org_id, unsure)
            for p in unsure:
                if p.idempotency_key in stored:
                    outcome[p.index] = _seen(p, stored[p.idempotency_key])
        _store_events(org_id, token.pk, now, new)
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
            # Shown to the minute: a busy token's row is not written every batch.
            IngestToken.objects.filter(pk=token.pk).update(last_used_at=now)
        if new:
            alerted = sorted({p.subscription_id for p, _hour in new})
            transaction.on_commit(lambda: _queue_alerts(alerted))
    return IngestResult(results=[outcome[i] for i in range(len(events))])


# What the ingest reads of a subscription: (id, api id, state, anchor µs — its
# usage hours' alignment —, open since µs — its open billing period's start).
_Sub = tuple[int, int, str, int, int]
NEVER_OPEN = MAX_ID  # a subscription with no period start takes no event


def _locked_subscriptions(org_id: int, ids: set) -> dict[int, _Sub]:
    """The organization's subscriptions among `ids`, locked (FOR UPDATE, in id
    order). On PostgreSQL one statement with the thousand ids as one array, the
    times as µs since the epoch (no datetime built per row); the ORM elsewhere."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_SUBSCRIPTIONS, [org_id, sorted(ids)])
            return {row[0]: row for row in cursor.fetchall()}
    rows = (
        Subscription.objects.filter(organization_id=org_id, pk__in=ids)
        .order_by("pk")
        .select_for_update(of=("self",))
        .values_list(*_SUB_FIELDS)
    )
    subs = {}
    for pk, api_id, state, started, period_start, created in rows:
        open_since = period_start or started
        subs[pk] = (
            pk,
            api_id,
            state,
            meter.epoch_us(started or period_start or created),  # meter.usage_anchor
            meter.epoch_us(open_since) if open_since else NEVER_OPEN,
        )
    return subs


_SUB_FIELDS = ("pk", "api_id", "state", "started_at", "current_period_start",
               "created_at")  # fmt: skip


def _us(column: str) -> str:
    return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint"


_LOCK_SUBSCRIPTIONS = (
    "SELECT id, api_id, state, "  # noqa: S608
    f"{_us('COALESCE(started_at, current_period_start, created_at)')}, "
    f"COALESCE({_us('COALESCE(current_period_start, started_at)')}, {NEVER_OPEN}) "
    f"FROM {Subscription._meta.db_table} WHERE organization_id = %s "
    "AND id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE"
)


def _refusal(
    sub: _Sub | None, p: Parsed, latest_us: int, meter_keys
) -> Rejected | None:
    """Why the subscription takes no such event now, or None."""
    if sub is None:
        return Rejected(
            "unknown_subscription", "No such subscription in this organization."
        )
    state = sub[2]
    if state == SubscriptionState.PENDING_PAYMENT:
        return Rejected("subscription_not_started", "The subscription has not started.")
    if state == SubscriptionState.CANCELLED:
        return Rejected("subscription_cancelled", "The subscription is cancelled.")
    if p.at_us > latest_us:
        return Rejected("future_time", "'at' is in the future.")
    if p.at_us < sub[4]:
        return Rejected(
            "period_closed",
            "'at' is before the subscription's open billing period (already "
            "invoiced, or before the subscription started).",
        )
    if p.meter not in meter_keys[sub[1]]:
        return Rejected("unknown_meter", f"This API has no meter '{p.meter}'.")
    return None


def _stored(org_id: int, events: list[Parsed]) -> dict[str, tuple]:
    """{idempotency key: (subscription, at, meter, count)} of these events' keys
    that the organization has stored."""
    keys = list({p.idempotency_key for p in events})
    if connection.vendor != "postgresql":
        return {
            row[0]: row[1:]
            for row in UsageEvent.objects.filter(
                organization_id=org_id, idempotency_key__in=keys
            ).values_list("idempotency_key", "subscription_id", "at", "meter", "count")
        }
    # The thousand keys as one array (= ANY(%s)), not an IN list the ORM prepares.
    with connection.cursor() as cursor:
        cursor.execute(_STORED_EVENTS, [org_id, keys])
        return {row[0]: row[1:] for row in cursor.fetchall()}


def _seen(p: Parsed, stored: tuple) -> dict:
    """The result of an event whose key is stored: a duplicate if it is the same
    event, else a reused key."""
    if stored == (p.subscription_id, p.at, p.meter, p.count):
        return _result(p.index, p.idempotency_key, "duplicate")
    return _rejected(
        p.index,
        p,
        Rejected(
            "idempotency_key_reused",
            "This idempotency_key was used for a different event.",
        ),
    )


_STORED_EVENTS = (
    "SELECT idempotency_key, subscription_id, at, meter, count "  # noqa: S608
    f"FROM {UsageEvent._meta.db_table} WHERE organization_id = %s "
    "AND idempotency_key = ANY(%s::varchar[])"
)


def _store_events(
    org_id: int, token_id: int, now, events: list[tuple[Parsed, int]]
) -> None:
    """The accepted events as `UsageEvent` rows and their units per (subscription,
    meter, hour) as `PendingUsage` rows, which the flush adds to UsageRecord: a COPY
    each on PostgreSQL (the batch's largest writes), bulk INSERTs elsewhere. A key
    stored meanwhile by a concurrent batch fails the unique constraint either way
    (IntegrityError: the batch is redone)."""
    if not events:
        return
    totals: dict[tuple[int, str, int], int] = defaultdict(int)
    for p, hour in events:
        totals[(p.subscription_id, p.meter, hour)] += p.count
    if connection.vendor != "postgresql":
        UsageEvent.objects.bulk_create(
            UsageEvent(organization_id=org_id, idempotency_key=p.idempotency_key,
                       subscription_id=p.subscription_id, at=p.at, meter=p.meter,
                       count=p.count, token_id=token_id, received_at=now)
            for p, _hour in events
        )  # fmt: skip
        PendingUsage.objects.bulk_create(
            PendingUsage(organization_id=org_id, subscription_id=sub_id,
                         meter=meter_key, hour=meter.from_epoch_us(hour), count=n)
            for (sub_id, meter_key, hour), n in totals.items()
        )  # fmt: skip
        return
    # COPY's text format: a key has no tab, newline or other control character
    # (refused by _parse), so escaping its backslashes is all it needs. The rows go
    # in the order of their keys: two batches for different subscriptions (which
    # do not wait for each other's subscription locks) that share keys then enter
    # the unique index in the same order, so one waits for the other and fails on
    # the key (and is redone) instead of both deadlocking.
    tail = f"\t{token_id}\t{now.isoformat()}\n"
    buffer = io.StringIO(
        "".join(
            f"{org_id}\t{p.idempotency_key.replace(BACKSLASH, ESCAPED)}\t"
            f"{p.subscription_id}\t{_at_text(p)}\t{p.meter}\t{p.count}{tail}"
            for p, _hour in sorted(events, key=_by_key)
        )
    )
    pending = io.StringIO()
    hours: dict[int, str] = {}
    for (sub_id, meter_key, hour), n in totals.items():
        text = hours.get(hour)
        if text is None:
            text = hours[hour] = meter.from_epoch_us(hour).isoformat()
        # Meter keys are [a-z0-9-] (checked): nothing to quote in COPY's text format.
        pending.write(f"{org_id}\t{sub_id}\t{meter_key}\t{text}\t{n}\n")
    buffer.seek(0)
    pending.seek(0)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.cursor.copy_expert(_COPY_EVENTS, buffer, COPY_CHUNK)
        cursor.cursor.copy_expert(_COPY_PENDING, pending, COPY_CHUNK)


def _by_key(event: tuple[Parsed, int]) -> str:
    return event[0].idempotency_key


BACKSLASH, ESCAPED = "\\", "\\\\"
COPY_CHUNK = 1 << 20  # bytes psycopg2 sends at a time: a batch in one piece
_COPY_EVENTS = (
    f"COPY {UsageEvent._meta.db_table} (organization_id, idempotency_key, "
    "subscription_id, at, meter, count, token_id, received_at) FROM STDIN"
)
_COPY_PENDING = (
    f"COPY {PendingUsage._meta.db_table} (organization_id, subscription_id, meter, "
    "hour, count) FROM STDIN"
)


def _queue_alerts(subscription_ids: list[int]) -> None:
    """List the subscriptions for the quota-alerts job, as the gateway's ADMIT does."""
    try:
        get_redis().sadd(meter.ALERTS, *subscription_ids)
    except Exception:  # the usage is recorded; an alert may come late or not at all
        log.exception("could not list subscriptions for quota alerts")


def _result(index: int, ikey, status: str, **extra) -> dict:
    return {"index": index, "idempotency_key": ikey, "status": status, **extra}


def _rejected(index: int, event, exc: Rejected) -> dict:
    if isinstance(event, Parsed):
        ikey = event.idempotency_key
    elif isinstance(event, dict) and isinstance(event.get("idempotency_key"), str):
        ikey = event["idempotency_key"][:MAX_KEY_LENGTH]
    else:
        ikey = None
    return _result(
        index, ikey, "rejected", error={"code": exc.code, "message": exc.message}
    )
