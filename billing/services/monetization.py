"""Enable and Disable Monetization: selling paid tiers on the connected account."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apimon.models import Organization, User
from billing.catalog import SyncResult, catalog_sync, connected_account
from billing.models import (
    StripeConnection,
)
from publisher.models import version_charges
from store.models import Subscription, SubscriptionState
from store.services import subscription_cancel


def monetization_enable(*, organization: Organization) -> SyncResult:
    """Create the catalog on the connected account (idempotent), then turn
    monetization on. The password check happens before (the view's form)."""
    if not organization.plan.allows_monetization:
        raise ValidationError("Upgrade to a paid plan to enable monetization.")
    connection = connected_account(organization)
    if connection is None:
        raise ValidationError("Connect a Stripe account first.")
    result = catalog_sync(organization=organization)
    connection.monetization_enabled = True
    if connection.monetization_enabled_at is None:
        connection.monetization_enabled_at = timezone.now()
    connection.billing_paused = False
    connection.save(
        update_fields=[
            "monetization_enabled",
            "monetization_enabled_at",
            "billing_paused",
        ]
    )
    return result


def monetization_disable(
    *, organization: Organization, actor: User | None = None
) -> StripeConnection:
    """No new paid subscriptions; existing ones run to the end of their period: each
    live paid subscription is set to cancel at its period end (its subscriber sees
    the date and may undo it once monetization is on again)."""
    with transaction.atomic():
        connection = connected_account(organization)
        if connection is None or not connection.monetization_enabled:
            raise ValidationError("Monetization is not enabled.")
        connection.monetization_enabled = False
        connection.monetization_enabled_at = None
        connection.save(
            update_fields=["monetization_enabled", "monetization_enabled_at"]
        )
        paid = (
            Subscription.objects.filter(
                organization=organization,
                state__in=[
                    SubscriptionState.ACTIVE,
                    SubscriptionState.TRIALING,
                    SubscriptionState.ON_HOLD,
                ],
                started_at__isnull=False,
                cancel_at_period_end=False,
            )
            .filter(version_charges("tier_version"))
            .order_by("pk")
        )
        for subscription in paid:
            subscription_cancel(subscription=subscription, actor=actor)
    return connection
