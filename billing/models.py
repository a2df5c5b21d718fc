"""Stripe-facing state of an organization. More billing models (invoices, webhook
events, the catalog mirror) live here as the billing and monetization parts land."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from apimon.models import Organization
from apimon.validators import SingleLineCharField


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


# --- Invoices ---------------------------------------------------------------------------


class InvoiceKind(models.TextChoices):
    START = "start", "First period"
    RENEWAL = "renewal", "Renewal"
    # The new period's fee when a scheduled change moves to a tier in another
    # currency: an invoice has one currency, so it is not on the renewal.
    RENEWAL_FEE = "renewal_fee", "Renewal fee (new currency)"
    PRORATION = "proration", "Tier change"
    FINAL = "final", "Final"
    CORRECTION = "correction", "Correction"
    PLATFORM = "platform", "Platform plan"


class InvoiceStatus(models.TextChoices):
    # Written locally, not yet on Stripe (the push task is on its way).
    DRAFT = "draft", "Draft"
    # The organization's Stripe account is disconnected or paused: pushed on reconnect.
    WAITING = "waiting", "Waiting for Stripe"
    # Stripe refused it (not a network error); the admin can push it again.
    PUSH_FAILED = "push_failed", "Push failed"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    VOID = "void", "Void"


# Statuses only move forward (webhooks arrive in any order): a status of a higher rank
# never goes back to a lower one. Stripe can pay an uncollectible invoice.
STATUS_RANK = {
    InvoiceStatus.DRAFT: 0,
    InvoiceStatus.WAITING: 0,
    InvoiceStatus.PUSH_FAILED: 0,
    InvoiceStatus.OPEN: 1,
    InvoiceStatus.UNCOLLECTIBLE: 2,
    InvoiceStatus.PAID: 3,
    InvoiceStatus.VOID: 3,
}
# Written but not on Stripe yet: what the push sweeper picks up.
UNPUSHED = (InvoiceStatus.DRAFT, InvoiceStatus.WAITING, InvoiceStatus.PUSH_FAILED)
CLOSING_KINDS = (InvoiceKind.RENEWAL, InvoiceKind.FINAL)


class Invoice(models.Model):
    """An invoice apimon wrote: a ledger row, never edited after it is written
    (only its Stripe mirror fields and status move). A wrong invoice is voided and
    corrected by a new one that `supersedes` it.

    Subscription invoices are sold by `organization` on its connected account;
    platform invoices (kind "platform") are sold by the platform to `organization`.

    Uniqueness is what makes the billing job safe to run twice at once:
    - one START per subscription (the first period's fee);
    - one closing invoice (RENEWAL or FINAL) per subscription and period start: the
      arrears of a period are billed once, whichever way the period ended;
    - one FINAL per subscription;
    - one invoice per subscription event that causes one (the rest of a period's
      fee when a subscription blocked for non-payment recovers);
    - one correction per corrected invoice;
    - one platform invoice per organization and period.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="invoices"
    )
    subscription = models.ForeignKey(
        "store.Subscription",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
    )
    # Platform invoices: the platform plan they bill.
    platform_subscription = models.ForeignKey(
        "PlatformSubscription",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
    )
    kind = models.CharField(max_length=12, choices=InvoiceKind.choices)
    number = models.CharField(max_length=80)
    status = models.CharField(
        max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3)
    total_minor = models.BigIntegerField()
    commission_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0")
    )
    application_fee_minor = models.BigIntegerField(default=0)
    # Snapshots for revenue and for the push (the subscription's tier may change).
    api = models.ForeignKey(
        "publisher.Api",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    tier_version = models.ForeignKey(
        "publisher.TierVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    source_event = models.OneToOneField(
        "store.SubscriptionEvent",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoice",
    )
    supersedes = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="superseded_by",
    )
    # What was rated: usage segments per tier version, for audit and late usage.
    rating = models.JSONField(default=dict, blank=True)
    # Stripe: where it goes (copied when written, so every retry sends the same
    # request) and what Stripe made of it.
    stripe_account_id = models.CharField(max_length=64, blank=True)
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    stripe_invoice_id = models.CharField(
        max_length=64, null=True, blank=True, unique=True
    )
    stripe_number = models.CharField(max_length=80, blank=True)
    hosted_invoice_url = models.URLField(max_length=500, blank=True)
    invoice_pdf = models.URLField(max_length=500, blank=True)
    amount_paid_minor = models.BigIntegerField(default=0)
    push_attempts = models.PositiveIntegerField(default=0)
    pay_attempts = models.PositiveIntegerField(default=0)
    payment_failures = models.PositiveIntegerField(default=0)
    last_push_error = models.TextField(blank=True)
    last_payment_error = models.TextField(blank=True)
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    # `created` of the newest Stripe event applied: older ones are ignored.
    last_event_created = models.BigIntegerField(null=True, blank=True)
    # The Stripe invoice as last seen (its amounts may be Decimals: encoded as text).
    stripe_data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)
    pushed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "number"], name="invoice_number_unique"
            ),
            models.UniqueConstraint(
                fields=["subscription"],
                condition=Q(kind=InvoiceKind.START),
                name="one_start_invoice_per_subscription",
            ),
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(kind__in=[InvoiceKind.RENEWAL, InvoiceKind.FINAL]),
                name="one_closing_invoice_per_period",
            ),
            models.UniqueConstraint(
                fields=["subscription"],
                condition=Q(kind=InvoiceKind.FINAL),
                name="one_final_invoice_per_subscription",
            ),
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(kind=InvoiceKind.RENEWAL_FEE),
                name="one_renewal_fee_invoice_per_period",
            ),
            models.UniqueConstraint(
                fields=["organization", "period_start"],
                condition=Q(kind=InvoiceKind.PLATFORM),
                name="one_platform_invoice_per_period",
            ),
            models.CheckConstraint(
                condition=Q(
                    kind=InvoiceKind.PLATFORM,
                    subscription__isnull=True,
                    platform_subscription__isnull=False,
                )
                | (
                    ~Q(kind=InvoiceKind.PLATFORM)
                    & Q(subscription__isnull=False, platform_subscription__isnull=True)
                ),
                name="invoice_subscription_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")),
                name="invoice_period_in_order",
            ),
            models.CheckConstraint(
                condition=Q(application_fee_minor__gte=0)
                & (
                    Q(application_fee_minor=0)
                    | Q(application_fee_minor__lte=F("total_minor"))
                ),
                name="invoice_fee_within_total",
            ),
            models.CheckConstraint(
                condition=Q(commission_percent__gte=0) & Q(commission_percent__lte=100),
                name="invoice_commission_is_a_percentage",
            ),
            models.CheckConstraint(
                condition=~Q(kind=InvoiceKind.CORRECTION) | Q(supersedes__isnull=False),
                name="correction_supersedes_an_invoice",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status"]),
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def net_minor(self) -> int:
        return self.total_minor - self.application_fee_minor

    @property
    def is_on_stripe(self) -> bool:
        return bool(self.stripe_invoice_id)

    @property
    def subscriber_status(self) -> tuple[str, str]:
        """(label, badge class) for the subscriber: apimon's own push states are
        one "being issued" to them."""
        if self.status in UNPUSHED:
            return "Being issued", "info"
        if self.status == InvoiceStatus.OPEN:
            if self.payment_failed_at:
                return "Payment failed", "danger"
            return "Open", "warn"
        if self.status == InvoiceStatus.PAID:
            return "Paid", "ok"
        return self.get_status_display(), ""


def failed_unpaid_invoices(**owner: Any) -> models.QuerySet[Invoice]:
    """Invoices whose payment failed and that are still to be paid, of one owner:
    `subscription_id=` (a subscriber's) or `platform_subscription_id=` (a plan's)."""
    return Invoice.objects.filter(
        status__in=[InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE],
        payment_failed_at__isnull=False,
        **owner,
    )


class InvoiceLine(models.Model):
    """One line of an invoice: what pricing.rating computed, as written."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    # A pricing.rating.LineKind value.
    kind = models.CharField(max_length=20)
    description = models.CharField(max_length=500)
    quantity = models.BigIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=30, decimal_places=12)
    amount_minor = models.BigIntegerField()
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    tier_version = models.ForeignKey(
        "publisher.TierVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    stripe_invoice_item_id = models.CharField(
        max_length=64, null=True, blank=True, unique=True
    )
    # The meter a usage line rates ("requests", "tokens"): the invoice's line
    # groups. Blank for fees, prorations and lines written before meters.
    meter = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "position"], name="invoice_line_position_unique"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=0), name="invoice_line_quantity_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return self.description


class InvoiceSequence(models.Model):
    """The last invoice number used per organization (and per platform scope), so
    numbers are consecutive and never reused, even when two jobs race."""

    key = models.CharField(max_length=80, unique=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.last_number}"


def monetization_enabled(organization: Organization) -> bool:
    """New paid subscriptions are possible: paid plan, connected, monetization on."""
    connection = getattr(organization, "stripe_connection", None)
    return bool(
        organization.plan.allows_monetization
        and connection is not None
        and connection.can_take_payments
    )


# --- The platform plan an organization pays apimon for ---------------------------------


class PlatformSubscriptionStatus(models.TextChoices):
    # Billing details given, the card not yet saved in Checkout.
    PENDING = "PENDING", "Waiting for a payment method"
    ACTIVE = "ACTIVE", "Active"
    CANCELLED = "CANCELLED", "Cancelled"


class PlatformSubscription(models.Model):
    """What an organization buys from the platform operator: a paid PlatformPlan,
    paid with a card saved through Checkout (setup mode) on the platform's own Stripe
    account. The billing engine invoices it monthly from `next_invoice_at`, anchored
    at `started_at`.

    `plan` is the plan in force once ACTIVE; `pending_plan` is the one being bought
    while the card is collected (so a failed Checkout leaves the current plan alone).
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="platform_subscription"
    )
    plan = models.ForeignKey(
        "apimon.PlatformPlan",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    pending_plan = models.ForeignKey(
        "apimon.PlatformPlan",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    status = models.CharField(
        max_length=10,
        choices=PlatformSubscriptionStatus.choices,
        default=PlatformSubscriptionStatus.PENDING,
    )
    # The platform account's customer (no Stripe-Account header).
    customer_id = models.CharField(max_length=64, blank=True)
    payment_method_id = models.CharField(max_length=64, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    livemode = models.BooleanField(default=False)
    # Billing information (on the platform's invoices) and contact information.
    billing_name = SingleLineCharField(max_length=200)
    address_line1 = SingleLineCharField(max_length=200)
    address_line2 = SingleLineCharField(max_length=200, blank=True)
    city = SingleLineCharField(max_length=100)
    postal_code = SingleLineCharField(max_length=20)
    state = SingleLineCharField(max_length=100, blank=True)
    country = models.CharField(max_length=2)
    email = models.EmailField()
    phone = SingleLineCharField(max_length=20)
    # Each Proceed makes a new Checkout Session; the counter keeps their idempotency
    # keys distinct and derived from this row.
    checkout_attempts = models.PositiveIntegerField(default=0)
    checkout_session_id = models.CharField(max_length=100, blank=True)
    completed_session_id = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    next_invoice_at = models.DateTimeField(null=True, blank=True)
    # Past due (docs/billing.md, "Platform plan payments"): a platform invoice's
    # payment failed and is not paid yet. Cleared once no failed platform invoice is
    # left unpaid; past `grace_until` the platform dunning job ends the plan
    # (CANCELLED, the organization back on the trial plan) and sets `downgraded_at`.
    past_due_since = models.DateTimeField(null=True, blank=True)
    grace_until = models.DateTimeField(null=True, blank=True)
    downgraded_at = models.DateTimeField(null=True, blank=True)
    # Owner's changes that wait for the end of the month (billing/platform_billing.py):
    # a cheaper plan from then on, or the end of the paid plan (back to the trial
    # plan); `ended_at` is when a plan cancelled that way ended.
    scheduled_plan = models.ForeignKey(
        "apimon.PlatformPlan",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    cancel_at_period_end = models.BooleanField(default=False)
    ended_at = models.DateTimeField(null=True, blank=True)
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(status=PlatformSubscriptionStatus.ACTIVE)
                | (Q(plan__isnull=False) & Q(started_at__isnull=False)),
                name="active_platform_subscription_has_plan",
            ),
            models.CheckConstraint(
                condition=Q(past_due_since__isnull=True, grace_until__isnull=True)
                | Q(past_due_since__isnull=False, grace_until__isnull=False),
                name="past_due_platform_subscription_has_grace",
            ),
        ]
        indexes = [
            models.Index(
                fields=["grace_until"],
                condition=Q(past_due_since__isnull=False),
                name="platform_sub_past_due",
            )
        ]

    def __str__(self) -> str:
        plan = self.plan or self.pending_plan
        return f"{self.organization} · {plan} ({self.status})"

    @property
    def is_past_due(self) -> bool:
        return self.past_due_since is not None


# --- Connect with Stripe ----------------------------------------------------------------


class OAuthState(models.Model):
    """The `state` of one "Connect with Stripe" round trip: bound to the organization,
    the owner who started it and their session; single use; expires after 10 minutes.
    Only its SHA-256 is stored."""

    state_hash = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    session_key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "OAuth state"

    def __str__(self) -> str:
        return f"{self.organization} · {self.user} · {self.created_at:%Y-%m-%d %H:%M}"


# --- The catalog on the connected account ------------------------------------------------


class CatalogKind(models.TextChoices):
    PRODUCT = "product", "Product"
    PRICE = "price", "Price"


class CatalogObject(models.Model):
    """A Product (one per monetized API) or Price that apimon created on an
    organization's connected account. A commercial tier version has, under each
    API's Product, one Price per thing it charges: its fixed fee (`meter` empty) and
    each meter it prices (`meter` is the meter's key, `requests` included).

    `synced_data` holds what apimon asked Stripe for (the fields reconciliation
    compares); `fingerprint` is a hash of it, so a tier version edited in place
    (before anyone subscribed) is noticed and its Price replaced: Stripe prices are
    immutable. `retired_at` is set when apimon archived the object on purpose.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="catalog_objects"
    )
    account_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=10, choices=CatalogKind.choices)
    stripe_id = models.CharField(max_length=64, unique=True)
    api = models.ForeignKey(
        "publisher.Api", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    tier_version = models.ForeignKey(
        "publisher.TierVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # For a price: its product's Stripe id.
    product_stripe_id = models.CharField(max_length=64, blank=True)
    # For a price: the key of the meter it prices, or "" for the version's fixed fee.
    meter = models.CharField(max_length=40, blank=True, default="")
    livemode = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    fingerprint = models.CharField(max_length=64)
    synced_data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["organization", "kind", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account_id", "api"],
                condition=Q(kind=CatalogKind.PRODUCT, retired_at__isnull=True),
                name="one_live_product_per_api_and_account",
            ),
            models.UniqueConstraint(
                fields=["account_id", "api", "tier_version", "meter"],
                condition=Q(kind=CatalogKind.PRICE, retired_at__isnull=True),
                name="one_live_price_per_charge_and_account",
            ),
            models.CheckConstraint(
                condition=Q(kind=CatalogKind.PRODUCT, tier_version__isnull=True)
                | Q(kind=CatalogKind.PRICE, tier_version__isnull=False),
                name="catalog_price_has_tier_version",
            ),
        ]
        indexes = [models.Index(fields=["organization", "account_id", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_id}"

    @property
    def charge_label(self) -> str:
        """What a Price charges, for the pages: "Fixed fee" or the meter's name."""
        if self.kind != CatalogKind.PRICE:
            return ""
        if not self.meter:
            return "Fixed fee"
        metadata = (self.synced_data or {}).get("metadata") or {}
        return metadata.get("apimon_meter_name") or self.meter

    @property
    def is_live(self) -> bool:
        return self.retired_at is None


class DriftKind(models.TextChoices):
    DELETED = "deleted", "Deleted in Stripe"
    ARCHIVED = "archived", "Archived in Stripe"
    EDITED = "edited", "Edited in Stripe"


class CatalogDrift(models.Model):
    """A difference between a Stripe object apimon created and apimon's own record,
    found by reconciliation. One open drift per object and kind; it is resolved when
    repaired, when Stripe matches again, or when apimon retires the object."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="catalog_drifts"
    )
    catalog_object = models.ForeignKey(
        CatalogObject, on_delete=models.CASCADE, related_name="drifts"
    )
    kind = models.CharField(max_length=10, choices=DriftKind.choices)
    detail = models.TextField()
    detected_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-detected_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["catalog_object", "kind"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_drift_per_object_and_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.catalog_object}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


# --- Webhooks ---------------------------------------------------------------------------


class WebhookStatus(models.TextChoices):
    RECEIVED = "RECEIVED", "Received"
    PROCESSED = "PROCESSED", "Processed"
    IGNORED = "IGNORED", "Ignored (no handler)"
    FAILED = "FAILED", "Failed (will retry)"


class WebhookEvent(models.Model):
    """A verified Stripe event, stored once per event id and processed once by a
    Celery task (billing.webhooks). Replaying re-runs its handlers, which are
    idempotent."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    # The connected account the event happened on; blank for platform events.
    account = models.CharField(max_length=64, blank=True, db_index=True)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=40, blank=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED
    )
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
