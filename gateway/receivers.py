"""What the gateway does when the catalog or the store announce a change
(`publisher.hooks`, `store.hooks`), and what it answers when they ask: connected
and provided in `GatewayConfig.ready()`.

The gateway caches what it may serve (`gateway.entitlements`); a change it decides
on drops those entries once the transaction that made it commits, so the next
request reads the database again."""

from __future__ import annotations

from django.db import transaction

from gateway import entitlements, selectors
from publisher import hooks as catalog_hooks
from store import hooks as store_hooks
from store.models import SubscriptionEventKind

# A subscription's fields an entitlement entry holds (its state, its tier's limits,
# its version's cycle, its usage anchor).
ENTITLEMENT_FIELDS = frozenset(
    {"state", "tier", "tier_id", "tier_version", "tier_version_id", "started_at"}
)


def _invalidate_on_commit(**rows: list) -> None:
    transaction.on_commit(lambda: entitlements.invalidate(**rows))


def subscriptions_changed(sender, *, changes, **kwargs) -> None:
    ids = sorted(
        {
            change.subscription.pk
            for change in changes
            if ENTITLEMENT_FIELDS & set(change.fields)
            or change.kind == SubscriptionEventKind.CREATED
        }
    )
    if ids:
        _invalidate_on_commit(subscription_ids=ids)


def keys_changed(sender, *, key_hashes, **kwargs) -> None:
    if key_hashes:
        _invalidate_on_commit(key_hashes=list(key_hashes))


def api_changed(sender, *, api, **kwargs) -> None:
    _invalidate_on_commit(api_ids=[api.pk])


def tier_changed(sender, *, tier, limits_changed=False, **kwargs) -> None:
    if limits_changed:
        _invalidate_on_commit(tier_ids=[tier.pk])


def dashboard_figures(organization, now) -> dict:
    return selectors.requests_last_30_days(organization, now=now)


def connect() -> None:
    uid = "gateway.receivers"
    store_hooks.subscriptions_changed.connect(subscriptions_changed, dispatch_uid=uid)
    store_hooks.keys_changed.connect(keys_changed, dispatch_uid=uid)
    catalog_hooks.api_changed.connect(api_changed, dispatch_uid=uid)
    catalog_hooks.tier_changed.connect(tier_changed, dispatch_uid=uid)
    store_hooks.usage_so_far.provide(selectors.usage_so_far)
    store_hooks.meter_usage_so_far.provide(selectors.meter_usage_so_far)
    catalog_hooks.dashboard_figures.register(dashboard_figures)
