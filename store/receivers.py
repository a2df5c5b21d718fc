"""What the store does when the catalog announces a change (`publisher.hooks`), and
what it answers when the catalog asks about subscriptions: connected and provided
in `StoreConfig.ready()`."""

from __future__ import annotations

from datetime import datetime

from django.core.signals import request_finished, request_started
from django.db.models import Count, Q
from django.db.models.signals import m2m_changed, post_delete, post_save

from apimon.models import Organization, User
from publisher import hooks as catalog_hooks
from publisher.models import (
    Api,
    ApiTier,
    Meter,
    MeterPrice,
    MeterPriceBand,
    Tag,
    Tier,
    TierVersion,
)
from store import lifecycle, page_cache
from store.models import Subscription

GROUPS = {"api": "api_id", "tier": "tier_id", "tier_version": "tier_version_id"}


def api_retired(sender, *, api: Api, actor: User | None, at: datetime, **kwargs) -> int:
    """Every live subscription of a retired API ends now (in the retirement's
    transaction); returns how many."""
    return lifecycle.cancel_for_retired_api(api=api, actor=actor, at=at)


def subscriptions_counted(
    *,
    by: str | tuple[str, ...],
    organization: Organization | None = None,
    api: Api | None = None,
    tier: Tier | None = None,
) -> dict:
    """Live subscriptions per value of `by` ({id: n}, or {(id, id): n} for a
    tuple), of one organization, API or tier."""
    columns = [GROUPS[name] for name in ((by,) if isinstance(by, str) else by)]
    rows = Subscription.objects.filter(state__in=lifecycle.LIVE)
    for name, value in (("organization", organization), ("api", api), ("tier", tier)):
        if value is not None:
            rows = rows.filter(**{name: value})
    counted = rows.values_list(*columns).annotate(n=Count("id"))
    if len(columns) == 1:
        return dict(counted.values_list(columns[0], "n"))
    return {tuple(row[:-1]): row[-1] for row in counted.values_list(*columns, "n")}


def newest_subscriptions(
    organization: Organization,
    limit: int,
    *,
    apis: dict[int, Api] | None = None,
    tiers: dict[int, Tier] | None = None,
) -> list:
    """The organization's newest subscriptions with what the dashboard lists of
    them (its other columns are read on use). Their API and tier come from `apis`
    and `tiers` ({id: row}, every one of the organization's) when the caller has
    read them: each table joined fewer spares PostgreSQL's planner, which took
    longer over the six tables than the read did."""
    known = {"api": apis, "tier": tiers}
    joins = ["tier_version", "application", "subscriber"]
    columns = ["tier_version__number", "application__name", "subscriber__email"]
    for name, fields in (("api", ("name", "version")), ("tier", ("name",))):
        if known[name] is None:
            joins.append(name)
            columns += [f"{name}__{f}" for f in fields]
    rows = list(
        Subscription.objects.filter(organization=organization)
        .select_related(*joins)
        .only("created_at", "state", "api", "tier", *joins, *columns)
        .order_by("-created_at", "-pk")[:limit]
    )
    for sub in rows:  # one made meanwhile on a new API or tier reads it on use
        if apis is not None and sub.api_id in apis:
            sub.api = apis[sub.api_id]
        if tiers is not None and sub.tier_id in tiers:
            sub.tier = tiers[sub.tier_id]
    return rows


def version_in_use(version: TierVersion) -> bool:
    return Subscription.objects.filter(
        Q(tier_version=version) | Q(scheduled_tier_version=version)
    ).exists()


def _organization_of(instance) -> int | None:
    """The organization a catalog row belongs to (None once it is gone)."""
    match instance:
        case Api() | Tier() | Tag():
            return instance.organization_id
        case TierVersion():
            rows = Tier.objects.filter(pk=instance.tier_id)
        case MeterPrice():
            rows = Tier.objects.filter(versions=instance.version_id)
        case MeterPriceBand():
            rows = Tier.objects.filter(versions__meter_prices=instance.price_id)
        case Meter():
            rows = Api.objects.filter(pk=instance.api_id)
        case ApiTier():
            rows = Api.objects.filter(pk=instance.api_id)
        case _:
            return None
    return rows.values_list("organization_id", flat=True).first()


def catalog_row_changed(sender, *, instance, **kwargs) -> None:
    """An API, tier, tier version, meter, meter price or band, offer or tag was
    written or deleted: what the store cached of the organization's catalog is
    stale."""
    page_cache.catalog_changed(_organization_of(instance))


def catalog_announced(sender, **kwargs) -> None:
    """The catalog's `api_changed` / `tier_changed` (also sent after bulk writes)."""
    row = kwargs.get("api") or kwargs.get("tier")
    page_cache.catalog_changed(row.organization_id if row is not None else None)


CACHED_CATALOG_MODELS = (
    Api,
    Tier,
    TierVersion,
    Meter,
    MeterPrice,
    MeterPriceBand,
    ApiTier,
    Tag,
)


def connect() -> None:
    request_started.connect(
        page_cache.request_started, dispatch_uid="store.page_cache.request"
    )
    request_finished.connect(
        page_cache.request_finished, dispatch_uid="store.page_cache.request"
    )
    catalog_hooks.api_retired.connect(api_retired, dispatch_uid="store.receivers")
    for model in CACHED_CATALOG_MODELS:
        uid = f"store.page_cache.{model.__name__}"
        post_save.connect(catalog_row_changed, sender=model, dispatch_uid=uid)
        post_delete.connect(catalog_row_changed, sender=model, dispatch_uid=uid)
    m2m_changed.connect(
        catalog_row_changed, sender=Api.tags.through, dispatch_uid="store.page_cache"
    )
    catalog_hooks.api_changed.connect(
        catalog_announced, dispatch_uid="store.page_cache.api"
    )
    catalog_hooks.tier_changed.connect(
        catalog_announced, dispatch_uid="store.page_cache.tier"
    )
    catalog_hooks.subscriptions_counted.provide(subscriptions_counted)
    catalog_hooks.newest_subscriptions.provide(newest_subscriptions)
    catalog_hooks.version_in_use.provide(version_in_use)
    catalog_hooks.catalog_cached.provide(page_cache.cached)
