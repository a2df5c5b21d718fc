"""Reads of APIs and tiers shared by views: the publisher console's, and the
store's, which must only ever see what the lifecycle allows.

Every lookup is scoped by organization; another tenant's id is a 404. Counts of
subscriptions come from the store (`publisher.hooks.subscriptions_counted`): the
catalog does not read the store's rows itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from apimon.models import Membership, Organization, User
from publisher import hooks
from publisher.lifecycle import (
    GATEWAY_STATUS,
    SUBSCRIBABLE_STATES,
    target_state,
    transition_problem,
)
from publisher.models import (
    REQUESTS_METER,
    Api,
    ApiState,
    LifecycleAction,
    Meter,
    Tier,
    TierVersion,
    Visibility,
)
from publisher.openapi import Operation, openapi_operations  # noqa: F401 - re-export

# -- scoped lookups -----------------------------------------------------------------


def get_api(*, organization: Organization, api_id: int) -> Api:
    return get_object_or_404(Api, pk=api_id, organization=organization)


def get_meter(*, api: Api, meter_id: int) -> Meter:
    """A publisher-defined meter of `api` (the built-in one is not edited: 404)."""
    return get_object_or_404(
        Meter.objects.select_related("api").exclude(key=REQUESTS_METER),
        pk=meter_id,
        api=api,
    )


def get_tier(*, organization: Organization, tier_id: int) -> Tier:
    return get_object_or_404(
        Tier.objects.select_related("current_version"),
        pk=tier_id,
        organization=organization,
    )


def _versions_with_bands():
    # Each meter's price (requests included) and its bands: what `pricing()` reads.
    return "current_version__meter_prices__bands"


# -- publisher console --------------------------------------------------------------


def api_list(*, organization: Organization, q: str = "", state: str = "") -> list[Api]:
    """The organization's APIs, searched by name, context, description or tag and
    filtered by state, with their live subscription and offered tier counts."""
    apis = Api.objects.filter(organization=organization)
    if state in ApiState.values:
        apis = apis.filter(state=state)
    q = (q or "").strip()
    if q:
        matching = Api.objects.filter(
            Q(name__icontains=q)
            | Q(context__icontains=q)
            | Q(description__icontains=q)
            | Q(tags__name__icontains=q),
            organization=organization,
        ).values("pk")
        apis = apis.filter(pk__in=matching)
    apis = list(
        apis.prefetch_related("tags").annotate(
            tier_count=Count("offers", distinct=True)
        )
    )
    counts = hooks.subscriptions_counted(by="api", organization=organization)
    for api in apis:
        api.subscription_count = counts.get(api.pk, 0)
    return apis


def tier_list(
    *, organization: Organization, include_archived: bool = True
) -> list[Tier]:
    tiers = Tier.objects.filter(organization=organization)
    if not include_archived:
        tiers = tiers.filter(archived_at=None)
    tiers = list(
        tiers.select_related("current_version")
        .prefetch_related(_versions_with_bands())
        .annotate(api_count=Count("offers", distinct=True))
        .order_by("archived_at", "name")  # archived last
    )
    counts = hooks.subscriptions_counted(by="tier", organization=organization)
    for tier in tiers:
        tier.subscription_count = counts.get(tier.pk, 0)
    return tiers


def offerable_tiers(*, api: Api) -> QuerySet[Tier]:
    """The tiers a publisher may tick for `api`: every tier not archived, plus the
    archived ones it is already offered on (so they can be removed)."""
    return (
        Tier.objects.filter(organization_id=api.organization_id)
        .filter(Q(archived_at=None) | Q(offers__api=api))
        .select_related("current_version")
        .prefetch_related(_versions_with_bands())
        .distinct()
        .order_by("name")
    )


def tier_versions(*, tier: Tier) -> list[TierVersion]:
    """The tier's versions, newest first, with bands and live subscription counts."""
    counts = hooks.subscriptions_counted(by="tier_version", tier=tier)
    versions = list(
        tier.versions.select_related("created_by").prefetch_related(
            "meter_prices__bands"
        )
    )
    for version in versions:
        version.subscription_count = counts.get(version.pk, 0)
    return versions


def tier_live_subscription_count(*, tier: Tier) -> int:
    return sum(hooks.subscriptions_counted(by="tier", tier=tier).values())


def apis_left_without_tier(*, tier: Tier) -> list[Api]:
    """Published APIs whose only offered, unarchived tier is `tier` (archiving it
    would leave them with nothing to subscribe to)."""
    apis = Api.objects.filter(offers__tier=tier, state=ApiState.PUBLISHED).annotate(
        others=Count(
            "offers",
            filter=Q(offers__tier__archived_at=None) & ~Q(offers__tier=tier),
        )
    )
    return [api for api in apis if api.others == 0]


@dataclass(frozen=True)
class LifecyclePreview:
    """What the confirmation page of a lifecycle action says will happen."""

    action: str
    label: str
    from_state: str
    to_state: str
    problem: str | None
    effects: list[str]
    live_subscriptions: int
    final: bool


def lifecycle_preview(*, api: Api, action: str) -> LifecyclePreview:
    offered = api.offers.filter(tier__archived_at=None).count()
    problem = transition_problem(api, action, offered_tiers=offered)
    live = sum(hooks.subscriptions_counted(by="api", api=api).values())
    to_state = target_state(api, action) if action in LifecycleAction.values else ""
    effects = _effects(api, action, live=live, to_state=to_state)
    return LifecyclePreview(
        action=action,
        label=LifecycleAction(action).label if action in LifecycleAction.values else "",
        from_state=api.state,
        to_state=to_state,
        problem=problem,
        effects=effects,
        live_subscriptions=live,
        final=action == LifecycleAction.RETIRE,
    )


def _effects(api: Api, action: str, *, live: int, to_state: str) -> list[str]:
    subs = f"{live} live subscription{'s' if live != 1 else ''}"
    match action:
        case LifecycleAction.PUBLISH:
            return [
                "The API appears in the store and takes new subscriptions on the "
                "tiers it is offered on.",
                "The gateway serves its subscribers.",
            ]
        case LifecycleAction.DEPRECATE:
            return [
                "The API disappears from store browsing and takes no new subscriptions.",
                f"Its {subs} continue: the gateway serves them and they are billed "
                "as usual.",
                "You can publish it again later, or retire it.",
            ]
        case LifecycleAction.RETIRE:
            return [
                f"Its {subs} end now (cancelled); each gets its final invoice for "
                "usage to date.",
                "The gateway answers 410 Gone to every call.",
                "The API leaves the store. This is final: a retired API cannot be "
                "published again.",
            ]
        case LifecycleAction.BLOCK:
            return [
                "The gateway answers 503 Service Unavailable to every call.",
                f"Its {subs} are kept, not cancelled.",
                "The API takes no new subscriptions until it is unblocked.",
            ]
        case LifecycleAction.UNBLOCK:
            state = ApiState(to_state).label.lower() if to_state else "?"
            return [
                f"The API returns to its state before the block: {state}.",
                "The gateway serves its subscribers again."
                if GATEWAY_STATUS.get(to_state) is None
                else "The gateway still refuses calls in that state.",
            ]
    return []


def api_subscription_counts(*, api: Api) -> dict[int, int]:
    """tier id → live subscriptions of `api` on that tier."""
    return hooks.subscriptions_counted(by="tier", api=api)


@dataclass
class DashboardApi:
    api: Api
    tiers: list[tuple[Tier, int]] = field(default_factory=list)


@dataclass
class Dashboard:
    state_counts: dict[str, int]
    apis: list[DashboardApi]
    tier_count: int
    total_subscriptions: int
    newest_subscriptions: list  # the store's Subscription rows


def _dashboard_catalog(
    organization: Organization,
) -> tuple[list[Api], dict[int, Tier], dict[int, list[int]]]:
    """The organization's APIs (without their documents, which the dashboard does
    not show), its tiers by id, and the ids of the tiers each API is offered on, by
    tier name."""
    apis = list(
        Api.objects.filter(organization=organization)
        .defer("openapi_spec", "documentation")
        .prefetch_related("offers")
    )
    tiers = {t.pk: t for t in Tier.objects.filter(organization=organization)}
    offered = {
        api.pk: sorted(
            (offer.tier_id for offer in api.offers.all()),
            key=lambda tier_id: tiers[tier_id].name,
        )
        for api in apis
    }
    return apis, tiers, offered


def publisher_dashboard(*, organization: Organization, newest: int = 10) -> Dashboard:
    """Everything the dashboard shows, in a fixed number of queries. The APIs,
    their offers and the tiers come from the page cache (per organization, retired
    by any catalog change; only this page reads them there, and reads them only):
    the subscription counts and the newest subscriptions are read each time."""
    apis, tiers_by_id, offered = hooks.catalog_cached(
        organization.pk,
        ("publisher-dashboard",),
        lambda: _dashboard_catalog(organization),
    )
    counts = hooks.subscriptions_counted(by=("api", "tier"), organization=organization)
    if not {tier_id for _api_id, tier_id in counts} <= tiers_by_id.keys():
        # A tier made while this page was read: the catalog as it is now.
        apis, tiers_by_id, offered = _dashboard_catalog(organization)
    # Subscribers on a tier the API is no longer offered on still count.
    unoffered: dict[int, list[int]] = defaultdict(list)
    for api_id, tier_id in sorted(counts):
        if tier_id not in offered.get(api_id, ()):
            unoffered[api_id].append(tier_id)
    rows = []
    for api in apis:
        row = DashboardApi(api=api)
        for tier_id in (*offered[api.pk], *unoffered.get(api.pk, ())):
            row.tiers.append((tiers_by_id[tier_id], counts.get((api.pk, tier_id), 0)))
        rows.append(row)
    state_counts = {state: 0 for state in ApiState.values}
    for api in apis:
        state_counts[api.state] += 1
    newest_subs = hooks.newest_subscriptions(
        organization, newest, apis={api.pk: api for api in apis}, tiers=tiers_by_id
    )
    return Dashboard(
        state_counts=state_counts,
        apis=rows,
        tier_count=len(tiers_by_id),
        total_subscriptions=sum(counts.values()),
        newest_subscriptions=newest_subs,
    )


# -- for the store and the gateway ----------------------------------------------------


def sees_restricted_apis(organization: Organization, user: User | None) -> bool:
    """Owners and publishers, and subscribers an owner or publisher approved
    (Membership.restricted_access): anyone else sees the PUBLIC APIs only."""
    if user is None or not user.is_authenticated:
        return False
    membership = Membership.objects.filter(organization=organization, user=user).first()
    return membership is not None and membership.sees_restricted_apis


def store_visible_apis(
    organization: Organization,
    user: User | None,
    *,
    q: str = "",
    tag: str = "",
    sees_restricted: bool | None = None,
) -> QuerySet[Api]:
    """The APIs a visitor may browse and subscribe to in the store: PUBLISHED only
    (DEPRECATED, BLOCKED, RETIRED and CREATED are hidden), and RESTRICTED ones only
    to those `sees_restricted_apis` lets in (`sees_restricted` when the caller
    knows it already)."""
    apis = Api.objects.filter(organization=organization, state__in=SUBSCRIBABLE_STATES)
    if sees_restricted is None:
        sees_restricted = sees_restricted_apis(organization, user)
    if not sees_restricted:
        apis = apis.filter(visibility=Visibility.PUBLIC)
    q = (q or "").strip()
    if q:
        apis = apis.filter(
            pk__in=Api.objects.filter(
                Q(name__icontains=q)
                | Q(description__icontains=q)
                | Q(tags__name__icontains=q),
                organization=organization,
            ).values("pk")
        )
    if tag:
        apis = apis.filter(tags__name=tag.lower())
    return apis.prefetch_related("tags").distinct()


def store_tiers(api: Api) -> QuerySet[Tier]:
    """The tiers a new subscription to `api` may choose: offered and not archived,
    and none at all unless the API is PUBLISHED."""
    tiers = Tier.objects.filter(offers__api=api, archived_at=None)
    if api.state not in SUBSCRIBABLE_STATES:
        tiers = tiers.none()
    return (
        tiers.select_related("current_version")
        .prefetch_related(_versions_with_bands())
        .order_by("name")
    )


def api_accepts_subscriptions(api: Api) -> bool:
    return api.state in SUBSCRIBABLE_STATES


def restricted_apis_exist(organization: Organization) -> bool:
    """Whether the store has a published RESTRICTED API to ask access for."""
    return Api.objects.filter(
        organization=organization,
        state__in=SUBSCRIBABLE_STATES,
        visibility=Visibility.RESTRICTED,
    ).exists()


def api_open_to(
    api: Api, user: User | None, *, sees_restricted: bool | None = None
) -> bool:
    """Whether `user` may start a new subscription to `api` as far as visibility
    goes: any PUBLIC API, a RESTRICTED one only with access. (Existing
    subscriptions are never affected: the gateway serves what exists.)"""
    if api.visibility == Visibility.PUBLIC:
        return True
    if sees_restricted is None:
        sees_restricted = sees_restricted_apis(api.organization, user)
    return sees_restricted


def store_lists_api(api: Api, *, sees_restricted: bool) -> bool:
    """Whether `store_visible_apis` lists `api`, read off the row itself."""
    return api.state in SUBSCRIBABLE_STATES and (
        sees_restricted or api.visibility == Visibility.PUBLIC
    )


def tier_accepts_subscriptions(api: Api, tier: Tier) -> bool:
    """Whether a new subscription (or a tier change) of `api` may pick `tier`."""
    return (
        api.state in SUBSCRIBABLE_STATES
        and tier.archived_at is None
        and tier.organization_id == api.organization_id
        and api.offers.filter(tier=tier).exists()
    )


def gateway_refusal_status(api: Api) -> int | None:
    """None if the gateway serves `api`'s subscribers, else the status it answers:
    404 (never published), 410 (RETIRED), 503 (BLOCKED)."""
    return GATEWAY_STATUS[api.state]
