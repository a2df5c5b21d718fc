"""Stripe-facing state of an organization. More billing models (invoices, webhook
events, the catalog mirror) live here as the billing and monetization parts land."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apimon.models import Organization


class StripeConnection(models.Model):
    """An organization's connected Stripe account (Connect, Standard, OAuth).

    apimon stores the account id only, never a secret: every call on the account is
    made with the platform key and the `Stripe-Account` header.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="stripe_connection"
    )
    account_id = models.CharField(max_length=64)
    livemode = models.BooleanField(default=False)
    country = models.CharField(max_length=2, blank=True)
    default_currency = models.CharField(max_length=3, blank=True)
    charges_enabled = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)
    connected_at = models.DateTimeField(default=timezone.now)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    disconnected_at = models.DateTimeField(null=True, blank=True)
    # Monetization: new paid subscriptions allowed, catalog synced to the account.
    monetization_enabled = models.BooleanField(default=False)
    monetization_enabled_at = models.DateTimeField(null=True, blank=True)
    # Set when Stripe tells apimon the account was deauthorized: no invoices are pushed.
    billing_paused = models.BooleanField(default=False)
    account_data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account_id"],
                condition=Q(disconnected_at__isnull=True),
                name="one_organization_per_connected_account",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} → {self.account_id}"

    @property
    def is_connected(self) -> bool:
        return self.disconnected_at is None

    @property
    def can_take_payments(self) -> bool:
        return (
            self.is_connected and self.monetization_enabled and not self.billing_paused
        )


def monetization_enabled(organization: Organization) -> bool:
    """New paid subscriptions are possible: paid plan, connected, monetization on."""
    connection = getattr(organization, "stripe_connection", None)
    return bool(
        organization.plan.allows_monetization
        and connection is not None
        and connection.can_take_payments
    )
