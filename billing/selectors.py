"""Reads the monetization pages share."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from apimon.models import Organization
from billing.models import (
    CatalogDrift,
    CatalogKind,
    CatalogObject,
    PlatformSubscription,
    StripeConnection,
)


@dataclass
class Overview:
    """Where an organization stands: plan, Stripe connection, monetization, drift."""

    organization: Organization
    subscription: PlatformSubscription | None
    connection: StripeConnection | None  # the connected account, if any
    last_connection: StripeConnection | None  # a disconnected one, to explain why
    products: int
    prices: int
    open_drift: list[CatalogDrift]
    open_drift_count: int

    @property
    def plan(self):
        return self.organization.plan

    @property
    def on_paid_plan(self) -> bool:
        return bool(self.plan.allows_monetization)

    @property
    def monetizing(self) -> bool:
        return bool(self.connection and self.connection.can_take_payments)

    @property
    def step(self) -> int:
        """1 upgrade, 2 connect, 3 enable, 4 done."""
        if not self.on_paid_plan:
            return 1
        if self.connection is None:
            return 2
        if not self.connection.monetization_enabled:
            return 3
        return 4


def monetization_overview(organization: Organization) -> Overview:
    connection = StripeConnection.objects.filter(organization=organization).first()
    live = connection if connection and connection.is_connected else None
    subscription = (
        PlatformSubscription.objects.select_related("plan", "pending_plan")
        .filter(organization=organization)
        .first()
    )
    objects = catalog_objects(organization, live)
    drift = open_drift(organization)
    return Overview(
        organization=organization,
        subscription=subscription,
        connection=live,
        last_connection=None if live else connection,
        products=objects.filter(kind=CatalogKind.PRODUCT).count(),
        prices=objects.filter(kind=CatalogKind.PRICE).count(),
        open_drift=list(drift[:5]),
        open_drift_count=drift.count(),
    )


def catalog_objects(
    organization: Organization, connection: StripeConnection | None
) -> QuerySet[CatalogObject]:
    """The live catalog on the organization's connected account."""
    if connection is None:
        return CatalogObject.objects.none()
    return (
        CatalogObject.objects.filter(
            organization=organization,
            account_id=connection.account_id,
            retired_at__isnull=True,
        )
        .select_related("api", "tier_version", "tier_version__tier")
        .order_by("api__name", "-kind", "pk")  # each product, then its prices
    )


def open_drift(organization: Organization) -> QuerySet[CatalogDrift]:
    return (
        CatalogDrift.objects.filter(organization=organization, resolved_at=None)
        .select_related("catalog_object", "catalog_object__api")
        .order_by("-detected_at")
    )


def recent_resolved_drift(organization: Organization) -> QuerySet[CatalogDrift]:
    return (
        CatalogDrift.objects.filter(
            organization=organization, resolved_at__isnull=False
        )
        .select_related("catalog_object")
        .order_by("-resolved_at")
    )


def get_drift_for_owner(organization: Organization, drift_id: int) -> CatalogDrift:
    """A drift of this organization, or 404."""
    return get_object_or_404(
        CatalogDrift.objects.select_related("catalog_object", "organization"),
        pk=drift_id,
        organization=organization,
    )
