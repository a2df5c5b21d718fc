"""What the gateway may serve, cached in Redis and invalidated explicitly.

Services that change anything the gateway decides on call `invalidate(...)` after
their transaction commits: revoking or rotating a key, blocking/unblocking or changing
the state or tier of a subscription, a lifecycle transition of an API, a change of a
tier's limits. The gateway then sees the change at once: its in-process copies live at
most `LOCAL_TTL` (one second), and even those are checked against Redis by the admit
script on every request (an invalidated entry is gone from Redis, so the request
reloads it from the database).

Two kinds of entries, both JSON in Redis (key names in gateway.meter):

- the API of a route ``<org>/<context>/<version>``: id, organization, state, backend,
  and its meters counted at request time (weighted operations, response-reported);
- the entitlement of a key hash on a route: the subscription, its tier's limits and
  its version's meter quotas, or the refusal to answer (401/403).

Entries that exist because a row is *missing* (unknown route, unknown key, no
subscription) have no row to be invalidated by, so they live `NEGATIVE_TTL` (1 s).
A cache fill never overwrites a newer invalidation: it is skipped when the
invalidation generation moved since the fill started reading the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway import meter
from gateway.redis import get_redis, uses_stand_in
from publisher.models import Api, Meter, MeterPrice, MeterSource
from store.models import ApiKey, Subscription, SubscriptionState

POSITIVE_TTL = 300  # a safety net only: invalidation is what keeps entries fresh
NEGATIVE_TTL = 1
LOCAL_TTL = 1.0  # in-process copies in the gateway, never longer than a second


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: str
    message: str


# --- loading from the database (the fallback) -------------------------------------


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def load_api(org_slug: str, context: str, version: str) -> dict:
    """The cache entry of a route, read from the database."""
    row = (
        Api.objects.filter(
            organization__slug=org_slug, context=context, version=version
        )
        .values("id", "organization_id", "state", "backend_url")
        .first()
    )
    if row is None:
        return {"missing": True}
    return {
        "id": row["id"],
        "org": row["organization_id"],
        "state": row["state"],
        "backend": row["backend_url"],
        # The meters counted at request time: [key, source, operations].
        "meters": [
            [m["key"], m["source"], m["operations"] or []]
            for m in Meter.objects.filter(
                api_id=row["id"],
                source__in=[MeterSource.OPERATIONS, MeterSource.RESPONSE],
            )
            .order_by("key")
            .values("key", "source", "operations")
        ],
    }


def _refuse(status: int, code: str, message: str, **extra) -> dict:
    return {"refuse": [status, code, message], **extra}


def load_entitlement(key_hash: str, api: dict) -> dict:
    """The cache entry of a key on an API, read from the database.

    A key of another organization is refused exactly like an unknown key (401): the
    answer must not tell a caller that the key exists in some other tenant."""
    key = (
        ApiKey.objects.filter(key_hash=key_hash)
        .values("id", "organization_id", "application_id", "revoked_at", "expires_at")
        .first()
    )
    if key is None or key["organization_id"] != api["org"]:
        return _refuse(401, "invalid_key", "The API key is not valid.", negative=True)
    base = {"key": key["id"], "key_rev": _epoch(key["revoked_at"])}
    base["key_exp"] = _epoch(key["expires_at"])
    subs = Subscription.objects.filter(
        application_id=key["application_id"], api_id=api["id"]
    ).select_related("tier", "tier_version")
    sub = subs.exclude(state=SubscriptionState.CANCELLED).first()
    if sub is None:
        if subs.exists():
            return _refuse(
                403,
                "subscription_cancelled",
                "The subscription of this application to this API is cancelled.",
                negative=True,
                **base,
            )
        return _refuse(
            403,
            "not_subscribed",
            "This application is not subscribed to this API.",
            negative=True,
            **base,
        )
    base.update(sub=sub.pk, tier=sub.tier_id)
    if sub.state == SubscriptionState.PENDING_PAYMENT:
        return _refuse(
            403,
            "payment_pending",
            "The subscription waits for a payment method; finish checkout in the store.",
            **base,
        )
    if sub.state == SubscriptionState.BLOCKED:
        return _refuse(
            403, "subscription_blocked", "The subscription is blocked.", **base
        )
    if sub.state == SubscriptionState.CANCELLED:  # pragma: no cover - excluded above
        return _refuse(403, "subscription_cancelled", "Cancelled.", **base)
    tier = sub.tier
    # The quotas of the subscription's version per meter: {key: [limit, unit, stop]}.
    meter_quotas = {
        p["meter"]: [p["quota_limit"], p["quota_unit"], p["stop_on_quota_reach"]]
        for p in MeterPrice.objects.filter(
            version_id=sub.tier_version_id, quota_limit__isnull=False
        ).values("meter", "quota_limit", "quota_unit", "stop_on_quota_reach")
    }
    return {
        **base,
        "app": sub.application_id,
        "state": sub.state,
        "rate": tier.rate_limit or 0,
        "rate_unit": tier.rate_unit,
        "quota": tier.quota_limit or 0,
        "quota_unit": tier.quota_unit,
        "stop": tier.stop_on_quota_reach,
        "every": tier.count_every_request,
        "anchor_us": meter.epoch_us(meter.usage_anchor(sub)),
        "cycle": sub.tier_version.billing_cycle,
        "mq": meter_quotas,
    }


def entitlement_indexes(key_hash: str, api: dict, entry: dict) -> list[str]:
    """The index sets an entitlement entry is listed in (what can invalidate it)."""
    keys = [meter.idx("key", key_hash), meter.idx("api", api["id"])]
    if "sub" in entry:
        keys.append(meter.idx("sub", entry["sub"]))
    if "tier" in entry:
        keys.append(meter.idx("tier", entry["tier"]))
    return keys


def api_indexes(api: dict) -> list[str]:
    return [meter.idx("api", api["id"])] if "id" in api else []


def entry_ttl(entry: dict) -> int:
    """How long Redis keeps an entry. With the in-process stand-in (no Redis) an
    invalidation made in another process (the Celery worker: dunning, webhooks, the
    billing engine) cannot reach the web process, so every entry then lives one
    second, like the negative ones: a change is seen within a second either way."""
    if entry.get("missing") or entry.get("negative") or uses_stand_in():
        return NEGATIVE_TTL
    return POSITIVE_TTL


def dumps(entry: dict) -> str:
    return json.dumps(entry, separators=(",", ":"))


# --- invalidation (called by other apps' services, synchronously, after commit) ----


def invalidate(
    *,
    key_hashes: Iterable[str] = (),
    subscription_ids: Iterable[int] = (),
    api_ids: Iterable[int] = (),
    tier_ids: Iterable[int] = (),
) -> None:
    """Drop cached entitlements that depend on these rows. Safe to call any time.

    Call it after the transaction that changed the rows commits
    (`transaction.on_commit(lambda: invalidate(...))`): the next request reads the
    database again. Deleting the Redis entries is enough for the gateways' in-process
    copies too, because the admit script checks that the entries still exist."""
    indexes = [meter.idx("key", h) for h in key_hashes]
    indexes += [meter.idx("sub", i) for i in subscription_ids]
    indexes += [meter.idx("api", i) for i in api_ids]
    indexes += [meter.idx("tier", i) for i in tier_ids]
    client = get_redis()
    if not indexes:
        client.incr(meter.GEN)
        return
    client.eval(meter.INVALIDATE, 1 + len(indexes), meter.GEN, *indexes)
