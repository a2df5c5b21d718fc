"""Reads of the store shared by views: the catalog a visitor may browse, and a
subscriber's own applications, keys and subscriptions; plus the publisher's view of
its organization's subscriptions.

Every lookup is scoped by organization, and a subscriber's objects also by owner:
another tenant's id, or another subscriber's, is a 404.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

from apimon.models import Organization, User
from publisher import meters
from publisher import selectors as catalog
from publisher.lifecycle import SUBSCRIBER_VISIBLE_STATES
from publisher.meters import MeterPriceRow
from publisher.models import Api, ApiTier, Meter, Tag, Tier, TierVersion
from publisher.openapi import example_call, openapi_operations, openapi_title
from store import hooks, page_cache
from store.lifecycle import LIVE
from store.models import (
    ApiKey,
    Application,
    StripeCustomer,
    Subscription,
    SubscriptionEvent,
    SubscriptionState,
)

FREE, PAID, FREEMIUM = "FREE", "PAID", "FREEMIUM"

# Billing provides this partial (a subscription's invoices); the subscription page
# includes it when it exists.
INVOICES_TEMPLATE = "billing/_subscription_invoices.html"


# -- catalog -----------------------------------------------------------------------


def price_label(tiers: list[Tier]) -> str:
    """FREE (only free tiers), PAID (only commercial) or FREEMIUM (both); "" when
    no tier is offered."""
    kinds = {tier.is_commercial for tier in tiers}
    if kinds == {False}:
        return FREE
    if kinds == {True}:
        return PAID
    return FREEMIUM if kinds else ""


@dataclass
class CatalogEntry:
    api: Api
    label: str
    tags: list[Tag]


def store_catalog(
    organization: Organization,
    user: User | None,
    *,
    q: str = "",
    tag: str = "",
    sees_restricted: bool | None = None,
) -> list[CatalogEntry]:
    """The APIs a visitor may browse (publisher.selectors.store_visible_apis) with
    their FREE / PAID / FREEMIUM label: the store's whole catalog for the visitor's
    audience comes from the page cache (store.page_cache); a tag filters it, a
    search asks the database which of its APIs match (one query)."""
    if sees_restricted is None:
        sees_restricted = catalog.sees_restricted_apis(organization, user)
    entries = page_cache.cached(
        organization.pk,
        ("catalog", sees_restricted),
        lambda: _catalog_entries(organization, sees_restricted=sees_restricted),
    )
    if tag:
        wanted = tag.lower()
        entries = [e for e in entries if any(t.name == wanted for t in e.tags)]
    if (q or "").strip():
        matching = set(
            catalog.store_visible_apis(
                organization, user, q=q, sees_restricted=sees_restricted
            ).values_list("pk", flat=True)
        )
        entries = [e for e in entries if e.api.pk in matching]
    return list(entries)


def _catalog_entries(
    organization: Organization, *, sees_restricted: bool
) -> list[CatalogEntry]:
    """Every API of the store an audience may browse, in a fixed number of queries."""
    offers = Prefetch(
        "offers",
        queryset=ApiTier.objects.filter(tier__archived_at=None).select_related("tier"),
        to_attr="open_offers",
    )
    apis = catalog.store_visible_apis(
        organization, None, sees_restricted=sees_restricted
    ).defer("openapi_spec", "documentation")
    return [
        CatalogEntry(
            api=api,
            label=price_label([offer.tier for offer in api.open_offers]),
            tags=list(api.tags.all()),
        )
        for api in apis.prefetch_related(offers).order_by("name", "version")
    ]


def _load_api(organization: Organization, api_id: int) -> Api:
    """The organization's API `api_id` without its OpenAPI document; another's, or
    none, is a 404 (and nothing is cached)."""
    return get_object_or_404(
        Api.objects.defer("openapi_spec"), pk=api_id, organization=organization
    )


def store_get_api(
    organization: Organization,
    user: User | None,
    api_id: int,
    *,
    sees_restricted: bool | None = None,
) -> Api:
    """An API's store page: any API `store_visible_apis` lists, plus one the user
    still has a live subscription to (DEPRECATED, BLOCKED, or RESTRICTED after their
    access was taken back), so they can see its state and manage it. Everything
    else is a 404. Whether they may subscribe anew is `catalog.api_open_to`."""
    api = _own_copy(
        page_cache.cached(
            organization.pk,
            ("api", api_id),
            lambda: _load_api(organization, api_id),
        )
    )
    api.organization = organization
    if sees_restricted is None:
        sees_restricted = catalog.sees_restricted_apis(organization, user)
    if catalog.store_lists_api(api, sees_restricted=sees_restricted):
        return api
    if (
        user is not None
        and user.is_authenticated
        and api.state in SUBSCRIBER_VISIBLE_STATES
        and Subscription.objects.filter(
            api=api, subscriber=user, state__in=LIVE
        ).exists()
    ):
        return api
    raise Http404("No such API")


def store_tags(
    organization: Organization,
    user: User | None,
    *,
    sees_restricted: bool | None = None,
) -> list[str]:
    """The tags of the APIs the visitor may browse, for the tag chips."""
    if sees_restricted is None:
        sees_restricted = catalog.sees_restricted_apis(organization, user)

    def tags() -> list[str]:
        visible = catalog.store_visible_apis(
            organization, None, sees_restricted=sees_restricted
        ).values("pk")
        return list(
            Tag.objects.filter(organization=organization, apis__in=visible)
            .values_list("name", flat=True)
            .distinct()
            .order_by("name")
        )

    return page_cache.cached(organization.pk, ("tags", sees_restricted), tags)


def restricted_apis_exist(organization: Organization) -> bool:
    """`catalog.restricted_apis_exist`, from the page cache."""
    return page_cache.cached(
        organization.pk,
        ("restricted-apis-exist",),
        lambda: catalog.restricted_apis_exist(organization),
    )


@dataclass(frozen=True)
class ApiShowcase:
    """What an API's store page shows every visitor alike."""

    tiers: list[Tier]  # catalog.store_tiers
    # The API's meters by key (requests first): the pricing table words each
    # tier's price rows with them and leaves out the prices of meters this API
    # does not have (`TierOffer.price_rows`).
    meters: dict[str, Meter]
    tags: list[Tag]
    operations: list
    openapi_title: str
    example_call: str | None


def api_showcase(api: Api) -> ApiShowcase:
    """The API's tiers, tags and OpenAPI operations, from the page cache. The key
    holds the API's state and last save too: a page that read the API just before
    a change never files what it computes under the newer version."""

    def showcase() -> ApiShowcase:
        spec = api.openapi_spec
        return ApiShowcase(
            tiers=list(catalog.store_tiers(api)),
            meters={meter.key: meter for meter in meters.meters_of(api)},
            tags=list(api.tags.all()),
            operations=openapi_operations(spec),
            openapi_title=openapi_title(spec),
            example_call=example_call(spec),
        )

    return page_cache.cached(
        api.organization_id, ("api", api.pk, api.state, api.updated_at), showcase
    )


@dataclass
class TierOffer:
    """One row of an API's pricing table."""

    tier: Tier
    version: TierVersion
    available: bool
    reason: str = ""
    # The API's meters by key (`ApiShowcase.meters`); None: no price rows.
    meters_by_key: dict[str, Meter] | None = None

    @cached_property
    def price_rows(self) -> list[MeterPriceRow]:
        """Each meter of the API the version charges, requests first, in words,
        from the prices the tier was loaded with; worked out only when the pricing
        table is rendered (not when the page cache has it). A tier's price for a
        meter the API does not have is not sold on this API: it is left out."""
        if self.meters_by_key is None:
            return []
        self.version.tier = self.tier  # the requests' quota is the tier's
        prices = [
            price
            for price in self.version.meter_prices.all()
            if price.meter in self.meters_by_key
        ]
        return meters.price_rows(self.version, prices, self.meters_by_key)


def tier_offers(
    api: Api,
    *,
    tiers: list[Tier] | None = None,
    meters_by_key: dict[str, Meter] | None = None,
) -> list[TierOffer]:
    """The tiers a new subscription to `api` may choose (`catalog.store_tiers`, or
    `tiers` when the caller has them: `api_showcase`), each marked unavailable (with
    the reason) when it is paid and the organization cannot take payments. With
    ``meters_by_key`` (the API's meters by key), each offer's price rows too, read from the
    prices the tiers were loaded with."""
    can_charge = hooks.takes_payments(api.organization)
    rows = []
    for tier in catalog.store_tiers(api) if tiers is None else tiers:
        version = tier.current_version
        if version is None:
            continue
        available = can_charge or not tier.is_commercial
        reason = (
            ""
            if available
            else "Not available yet: the publisher has not enabled payments."
        )
        rows.append(TierOffer(tier, version, available, reason, meters_by_key))
    # Free tiers first, then by price of the version's fixed fee.
    return sorted(rows, key=lambda r: (r.tier.is_commercial, r.version.fixed_fee))


# -- a subscriber's own objects -----------------------------------------------------


def applications_for(*, organization: Organization, user: User) -> QuerySet:
    return (
        Application.objects.filter(
            organization=organization, owner=user, deleted_at=None
        )
        .annotate(
            active_keys=Count(
                "keys",
                filter=Q(keys__revoked_at=None, keys__replaced_by=None),
                distinct=True,
            ),
            live_subscriptions=Count(
                "subscriptions",
                filter=~Q(subscriptions__state=SubscriptionState.CANCELLED),
                distinct=True,
            ),
        )
        .order_by("name")
    )


def applications_to_subscribe(
    *, organization: Organization, user: User
) -> QuerySet[Application]:
    """The user's applications by name, as the API page offers them to subscribe:
    without the counts of keys and subscriptions `applications_for` adds for the
    applications page (two joins that grow with the keys and subscriptions)."""
    return Application.objects.filter(
        organization=organization, owner=user, deleted_at=None
    ).order_by("name")


def get_application(
    *, organization: Organization, user: User, application_id: int
) -> Application:
    return get_object_or_404(
        Application,
        pk=application_id,
        organization=organization,
        owner=user,
        deleted_at=None,
    )


def application_keys(application: Application) -> list[ApiKey]:
    return list(application.keys.select_related("replaced_by").order_by("-created_at"))


def get_key(*, organization: Organization, user: User, key_id: int) -> ApiKey:
    return get_object_or_404(
        ApiKey.objects.select_related("application"),
        pk=key_id,
        organization=organization,
        application__owner=user,
        application__deleted_at=None,
    )


_SUBSCRIPTION_JOINS = (
    "api",
    "tier",
    "tier_version",
    "application",
    "subscriber",
    "organization",
)
# The API's own document (its OpenAPI JSON, decoded per row, and its Markdown):
# only the API pages show them.
_API_DOCUMENT = ("api__openapi_spec", "api__documentation")
# Mostly empty: read by a query of their own only when some row has one.
_SUBSCRIPTION_OPTIONAL = ("customer", "scheduled_tier", "scheduled_tier_version")


def _subscription_rows(*, known: tuple[str, ...] = ()) -> QuerySet[Subscription]:
    """Subscriptions with what their pages show, in a fixed number of queries;
    `known`: the relations the caller sets itself. Each table joined fewer spares
    PostgreSQL's planner, whose time grows fast with the number of joined tables
    (nine cost more to plan than to run)."""
    joins = [name for name in _SUBSCRIPTION_JOINS if name not in known]
    rows = Subscription.objects.select_related(*joins).prefetch_related(
        *_SUBSCRIPTION_OPTIONAL,
        "tier_version__meter_prices__bands",
    )
    if "api" in joins:  # no subscription page shows the API's document
        rows = rows.defer(*_API_DOCUMENT)
    return rows


def subscriptions_for(
    *, organization: Organization, user: User, include_cancelled: bool = True
) -> QuerySet[Subscription]:
    subs = _subscription_rows().filter(organization=organization, subscriber=user)
    if not include_cancelled:
        subs = subs.exclude(state=SubscriptionState.CANCELLED)
    return subs.order_by("-created_at", "-pk")


def get_subscription(
    *, organization: Organization, user: User, subscription_id: int
) -> Subscription:
    """The caller's own subscription; anyone else's (even a publisher's view of it)
    is a 404 here: the publisher pages have their own lookup. Its API, tier and
    tier version (with its meters' prices) come from the page cache. Its optional
    relations (`_SUBSCRIPTION_OPTIONAL`) are read on use: one row's relation costs
    the same query either way, and none when it is empty (a prefetch would still
    build one)."""
    subscription = get_object_or_404(
        Subscription.objects.select_related("application"),
        pk=subscription_id,
        organization=organization,
        subscriber=user,
    )
    subscription.organization = organization
    subscription.subscriber = user
    api, tier, version = (
        _own_copy(row)  # the pages set attributes on them
        for row in page_cache.cached(
            organization.pk,
            (
                "subscription-catalog",
                subscription.api_id,
                subscription.tier_id,
                subscription.tier_version_id,
            ),
            lambda: _subscription_catalog(subscription),
        )
    )
    api.organization = tier.organization = organization
    version.tier = tier
    subscription.api, subscription.tier, subscription.tier_version = api, tier, version
    return subscription


def _own_copy[M: Model](row: M) -> M:
    """A request's own copy of a row the page cache holds: what it sets or
    prefetches on it stays its own."""
    mine = copy.copy(row)
    if hasattr(row, "_prefetched_objects_cache"):
        mine._prefetched_objects_cache = dict(row._prefetched_objects_cache)
    return mine


def _subscription_catalog(subscription: Subscription) -> tuple[Api, Tier, TierVersion]:
    """The subscription's API (without its documents), tier and tier version with
    its meters' prices and their bands, as `_subscription_rows` reads them."""
    version = (
        TierVersion.objects.select_related("tier")
        .prefetch_related("meter_prices__bands")
        .get(pk=subscription.tier_version_id)
    )
    api = Api.objects.defer("openapi_spec", "documentation").get(pk=subscription.api_id)
    tier = (
        version.tier
        if version.tier_id == subscription.tier_id
        else Tier.objects.get(pk=subscription.tier_id)
    )
    return api, tier, version


def version_meter_rows(
    organization: Organization, version: TierVersion
) -> list[MeterPriceRow]:
    """Each meter the tier version prices, in words (`publisher.meters`), from the
    page cache."""
    return page_cache.cached(
        organization.pk,
        ("meter-rows", version.pk),
        lambda: meters.version_meter_rows(version),
    )


def subscriptions_to_api(api: Api, user: User | None) -> list[Subscription]:
    """The user's live subscriptions to `api`, with what the API page shows of
    each (its application, tier and state): one query, two joins."""
    if user is None or not user.is_authenticated:
        return []
    return list(
        Subscription.objects.filter(api=api, subscriber=user)
        .exclude(state=SubscriptionState.CANCELLED)
        .select_related("application", "tier")
    )


def subscription_events(
    subscription: Subscription, *, actors: bool = True
) -> list[SubscriptionEvent]:
    """The subscription's history, newest first: with who made each move and the
    tier versions it moved between (the publisher's page), or without who and with
    the tiers' names only (`actors=False`: `from_tier_name`, `to_tier_name`, the
    subscriber's page; the names from the page cache, so the query joins nothing:
    four joins cost PostgreSQL's planner more than the read itself)."""
    events = subscription.events.order_by("-at", "-pk")
    if actors:
        events = events.select_related(
            "actor", "from_tier_version__tier", "to_tier_version__tier"
        )
    else:  # the tiers' names only, from the page cache: the events' own row only
        rows = list(events)
        names = version_tier_names(subscription.organization_id)
        wanted = {
            pk
            for e in rows
            for pk in (e.from_tier_version_id, e.to_tier_version_id)
            if pk is not None
        }
        if not wanted <= names.keys():  # not expected: the catalog's own versions
            names = {**names, **_version_tier_names(pk__in=wanted)}
        for e in rows:
            e.from_tier_name = names.get(e.from_tier_version_id)
            e.to_tier_name = names.get(e.to_tier_version_id)
        return rows
    return list(events)


def version_tier_names(organization_id: int) -> dict[int, str]:
    """Tier version id → its tier's name, of every version of the organization's
    tiers, from the page cache (retired by any catalog change)."""
    return page_cache.cached(
        organization_id,
        ("version-tier-names",),
        lambda: _version_tier_names(tier__organization_id=organization_id),
    )


def _version_tier_names(**lookup) -> dict[int, str]:
    return dict(TierVersion.objects.filter(**lookup).values_list("pk", "tier__name"))


def stripe_customer(*, organization: Organization, user: User) -> StripeCustomer | None:
    connection = getattr(organization, "stripe_connection", None)
    if connection is None:
        return None
    return StripeCustomer.objects.filter(
        organization=organization, user=user, stripe_account_id=connection.account_id
    ).first()


def invoices_template() -> str | None:
    """The billing engine's invoices partial, or None before it exists."""
    try:
        get_template(INVOICES_TEMPLATE)
    except TemplateDoesNotExist:
        return None
    return INVOICES_TEMPLATE


# -- the publisher's side ----------------------------------------------------------


def publisher_subscriptions(
    *,
    organization: Organization,
    api_id: int | None = None,
    tier_id: int | None = None,
    state: str = "",
    q: str = "",
) -> QuerySet[Subscription]:
    """The organization's subscriptions, filtered by API, tier, state and a search
    of the subscriber's email or the application's name."""
    subs = _subscription_rows().filter(organization=organization)
    if api_id:
        subs = subs.filter(api_id=api_id)
    if tier_id:
        subs = subs.filter(tier_id=tier_id)
    if state in SubscriptionState.values:
        subs = subs.filter(state=state)
    q = (q or "").strip()
    if q:
        subs = subs.filter(
            Q(subscriber__email__icontains=q) | Q(application__name__icontains=q)
        )
    return subs.order_by("-created_at", "-pk")


def get_org_subscription(
    *, organization: Organization, subscription_id: int
) -> Subscription:
    subscription = get_object_or_404(
        _subscription_rows(known=("organization",)),
        pk=subscription_id,
        organization=organization,
    )
    subscription.organization = organization
    return subscription


def state_counts(organization: Organization) -> dict[str, int]:
    counts = dict(
        Subscription.objects.filter(organization=organization)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return {state: counts.get(state, 0) for state in SubscriptionState.values}
