"""Applications, API keys and subscriptions: what a subscriber holds."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apimon import clock
from apimon.models import Organization
from apimon.validators import SingleLineCharField
from publisher.models import Api, Tier, TierVersion


class Application(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="applications"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="applications"
    )
    name = SingleLineCharField(max_length=80)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # An application with subscription history is never deleted (its subscriptions
    # and their invoices point at it): "delete" revokes its keys and sets this.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "owner", "name"],
                condition=Q(deleted_at__isnull=True),
                name="application_name_unique",
            )
        ]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A credential of an application. Only the SHA-256 of the key is stored; the
    prefix is shown so a subscriber can tell keys apart."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+"
    )
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="keys"
    )
    name = SingleLineCharField(max_length=80, blank=True)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set on rotation: the old key keeps working until then (the grace period).
    expires_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}…"

    def is_usable(self, at=None) -> bool:
        at = at or clock.now()
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return self.expires_at is None or self.expires_at > at


class SubscriptionState(models.TextChoices):
    PENDING_PAYMENT = "PENDING_PAYMENT", "Pending payment"
    ACTIVE = "ACTIVE", "Active"
    TRIALING = "TRIALING", "Trialing"
    ON_HOLD = "ON_HOLD", "On hold (payment failed)"
    BLOCKED = "BLOCKED", "Blocked"
    CANCELLED = "CANCELLED", "Cancelled"


# States in which the gateway serves calls.
SERVED_STATES = (
    SubscriptionState.ACTIVE,
    SubscriptionState.TRIALING,
    SubscriptionState.ON_HOLD,
)


class StripeCustomer(models.Model):
    """A subscriber's Stripe customer on an organization's connected account
    (one per subscriber per organization and account, reused across subscriptions).
    Its default card is only the fallback of subscriptions saved before each kept its
    own (`Subscription.payment_method_id`); apimon no longer changes it."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    stripe_account_id = models.CharField(max_length=64)
    stripe_customer_id = models.CharField(max_length=64, unique=True)
    default_payment_method_id = models.CharField(max_length=64, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    livemode = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user", "stripe_account_id"],
                name="one_stripe_customer_per_subscriber",
            )
        ]

    def __str__(self) -> str:
        return self.stripe_customer_id


class Subscription(models.Model):
    """Application × API × tier. Period fields are the billing engine's bookkeeping:
    the anchor is `started_at`, periods are computed from it (pricing.periods)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="subscriptions"
    )
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="subscriptions"
    )
    api = models.ForeignKey(Api, on_delete=models.PROTECT, related_name="subscriptions")
    tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, related_name="subscriptions"
    )
    tier_version = models.ForeignKey(
        TierVersion, on_delete=models.PROTECT, related_name="+"
    )
    subscriber = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions"
    )
    customer = models.ForeignKey(
        StripeCustomer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    state = models.CharField(
        max_length=16,
        choices=SubscriptionState.choices,
        default=SubscriptionState.PENDING_PAYMENT,
    )
    # The card this subscription's invoices charge (each invoice's Stripe
    # `default_payment_method`); empty: the customer's invoice default, as Stripe
    # falls back. Each subscription keeps its own (docs/decisions.md).
    payment_method_id = models.CharField(max_length=64, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    checkout_session_id = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="The period anchor."
    )
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    next_invoice_at = models.DateTimeField(null=True, blank=True, db_index=True)
    cancel_at_period_end = models.BooleanField(default=False)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    on_hold_since = models.DateTimeField(null=True, blank=True)
    grace_until = models.DateTimeField(null=True, blank=True)
    blocked_reason = models.TextField(blank=True)
    blocked_by_publisher = models.BooleanField(default=False)
    # A downgrade waits for the next period.
    scheduled_tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    scheduled_tier_version = models.ForeignKey(
        TierVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "api"],
                condition=~Q(state=SubscriptionState.CANCELLED),
                name="one_live_subscription_per_application_and_api",
            )
        ]
        indexes = [models.Index(fields=["organization", "state"])]

    def __str__(self) -> str:
        return f"{self.application} → {self.api} ({self.tier})"

    @property
    def card(self) -> tuple[str, str, str]:
        """(payment method id, brand, last 4) of the card its invoices charge: its
        own, else the customer's invoice default (Stripe's order); empty if none."""
        if self.payment_method_id:
            return self.payment_method_id, self.card_brand, self.card_last4
        customer = self.customer
        if customer is not None and customer.default_payment_method_id:
            return (
                customer.default_payment_method_id,
                customer.card_brand,
                customer.card_last4,
            )
        return "", "", ""

    @property
    def card_label(self) -> str:
        """ "Visa •••• 4242", or empty when it has no card."""
        _id, brand, last4 = self.card
        return f"{brand.title()} •••• {last4}" if last4 else ""

    @property
    def is_served(self) -> bool:
        return self.state in SERVED_STATES

    @property
    def ends_in_trial(self) -> bool:
        """A cancellation at period end takes effect when the trial ends."""
        return self.state == SubscriptionState.TRIALING and self.trial_end is not None

    @property
    def ends_at(self):
        """When the subscription ends if it is (or were) cancelled at period end:
        the billing engine (billing.engine.Planner) ends it at the trial's end while
        it is trialing — the first paid period never starts — else at the current
        period's end. A cancelled subscription ended at `cancelled_at`."""
        if self.state == SubscriptionState.CANCELLED:
            return self.cancelled_at
        if self.ends_in_trial:
            return self.trial_end
        return self.current_period_end


class CheckoutAction(models.TextChoices):
    """Why a Checkout Session was opened (its metadata.action)."""

    SUBSCRIBE = "subscribe"
    UPDATE_CARD = "update_card"
    CHANGE_TIER = "change_tier"


class SubscriptionEventKind(models.TextChoices):
    """Every move of a subscription's lifecycle (`store.lifecycle.MOVES` says from
    which state to which), and the other things its history records."""

    # The store: subscribing, paying, changing tier, cancelling, blocking.
    CREATED = "created", "Subscribed"
    CHECKOUT_STARTED = "checkout_started", "Checkout opened"
    CHECKOUT_COMPLETED = "checkout_completed", "Card saved"
    ACTIVATED = "activated", "Activated"
    CARD_UPDATED = "card_updated", "Card updated"
    TIER_UPGRADED = "tier_upgraded", "Tier upgraded"
    TIER_DOWNGRADE_SCHEDULED = "tier_downgrade_scheduled", "Tier change scheduled"
    TIER_DOWNGRADE_UNSCHEDULED = (
        "tier_downgrade_unscheduled",
        "Scheduled tier change dropped",
    )
    CANCEL_SCHEDULED = "cancel_scheduled", "Cancellation scheduled"
    CANCEL_UNSCHEDULED = "cancel_unscheduled", "Cancellation withdrawn"
    CANCELLED_NOW = "cancelled_now", "Cancelled"
    BLOCKED = "blocked", "Blocked by the publisher"
    UNBLOCKED = "unblocked", "Unblocked"
    # The publisher retired the subscription's API.
    API_RETIRED = "api_retired", "API retired"
    # Payments (billing's dunning).
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    PAYMENT_RECOVERED = "payment_recovered", "Payment recovered"
    BLOCKED_FOR_NONPAYMENT = "blocked_for_nonpayment", "Blocked for nonpayment"
    # Period boundaries (the billing engine).
    TRIAL_ENDED = "trial_ended", "Trial ended"
    CANCELLED_AT_PERIOD_END = "cancelled_at_period_end", "Cancelled at period end"
    TIER_DOWNGRADED = "tier_downgraded", "Tier downgraded"
    TIER_VERSION_MIGRATED = "tier_version_migrated", "Tier version migrated"


class SubscriptionEvent(models.Model):
    """Append-only history of a subscription: state and tier changes, with who and
    why. Written only by `store.lifecycle`, with the change it records."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=40, choices=SubscriptionEventKind.choices)
    at = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(
        max_length=16, blank=True, choices=SubscriptionState.choices
    )
    to_state = models.CharField(
        max_length=16, blank=True, choices=SubscriptionState.choices
    )
    from_tier_version = models.ForeignKey(
        TierVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_tier_version = models.ForeignKey(
        TierVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["subscription", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"
