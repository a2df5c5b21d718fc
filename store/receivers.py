"""What the store does when the catalog announces a change (`publisher.hooks`), and
what it answers when the catalog asks about subscriptions: connected and provided
in `StoreConfig.ready()`."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q

from apimon.models import Organization, User
from publisher import hooks as catalog_hooks
from publisher.models import Api, Tier, TierVersion
from store import lifecycle
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


def newest_subscriptions(organization: Organization, limit: int) -> list:
    return list(
        Subscription.objects.filter(organization=organization)
        .select_related("api", "tier", "tier_version", "application", "subscriber")
        .order_by("-created_at", "-pk")[:limit]
    )


def version_in_use(version: TierVersion) -> bool:
    return Subscription.objects.filter(
        Q(tier_version=version) | Q(scheduled_tier_version=version)
    ).exists()


def connect() -> None:
    catalog_hooks.api_retired.connect(api_retired, dispatch_uid="store.receivers")
    catalog_hooks.subscriptions_counted.provide(subscriptions_counted)
    catalog_hooks.newest_subscriptions.provide(newest_subscriptions)
    catalog_hooks.version_in_use.provide(version_in_use)
