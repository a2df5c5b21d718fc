"""The tenancy core: users, organizations (the tenants), memberships with roles,
invitations, and the platform plans an organization is on."""

from __future__ import annotations

import hashlib
import secrets
from decimal import Decimal

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apimon.validators import SingleLineCharField


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A login. Email is the identifier; one user can hold roles in many organizations."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    def __str__(self) -> str:
        return self.email


class PlatformPlan(models.Model):
    """What an organization pays the platform operator. The trial plan cannot monetize."""

    name = SingleLineCharField(max_length=80)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    monthly_price_minor = models.BigIntegerField(
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Monthly price in the currency's minor unit (cents).",
    )
    currency = models.CharField(max_length=3, default="usd")
    commission_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="The platform's application fee, as a percentage of each invoice total.",
    )
    allows_monetization = models.BooleanField(default=False)
    is_trial = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True, help_text="Offered to organizations.")
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "monthly_price_minor"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_price_minor__gte=0), name="platformplan_price_gte_0"
            ),
            models.UniqueConstraint(
                fields=["is_trial"], condition=Q(is_trial=True), name="one_trial_plan"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Organization(models.Model):
    """A tenant. Every tenant-owned row points at one."""

    name = SingleLineCharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    plan = models.ForeignKey(PlatformPlan, on_delete=models.PROTECT, related_name="+")
    dunning_grace_days = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(60)],
        help_text="Days a subscription with a failed payment is still served.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    PUBLISHER = "publisher", "Publisher"
    SUBSCRIBER = "subscriber", "Subscriber"


class RestrictedAccess(models.TextChoices):
    """A subscriber's access to the organization's RESTRICTED APIs. Joining a store
    gives none; the subscriber asks for it and an owner or publisher decides
    (docs/decisions.md, "Visibility RESTRICTED"). Owners and publishers see every API
    whatever this says."""

    NONE = "", "Not requested"
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Declined"


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)
    restricted_access = models.CharField(
        max_length=10,
        choices=RestrictedAccess.choices,
        default=RestrictedAccess.NONE,
        blank=True,
    )
    access_requested_at = models.DateTimeField(null=True, blank=True)
    access_decided_at = models.DateTimeField(null=True, blank=True)
    access_decided_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["organization__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"], name="one_membership"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.organization} · {self.role}"

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER

    @property
    def can_publish(self) -> bool:
        return self.role in (Role.OWNER, Role.PUBLISHER)

    @property
    def sees_restricted_apis(self) -> bool:
        return self.can_publish or self.restricted_access == RestrictedAccess.APPROVED


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Invitation(models.Model):
    """A single-use, expiring link that makes its holder an owner or publisher, or a
    subscriber approved for the restricted APIs."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization} ({self.role})"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class JobFailure(models.Model):
    """An item a periodic job could not handle (a subscription, an invoice, a
    webhook event, an organization's catalog). The job logs it, records it here and
    goes on with the others; the next run tries the item again, and the row is
    resolved when it succeeds. One open row per job and item: a failure seen again
    counts up and keeps the latest error."""

    job = models.CharField(max_length=60, db_index=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    object_ref = models.CharField(
        "object", max_length=120, help_text="What failed, e.g. subscription 42."
    )
    error = models.TextField()
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    count = models.PositiveIntegerField(default=1)
    resolved = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "object_ref"],
                condition=Q(resolved=False),
                name="job_failure_one_open_per_item",
            )
        ]

    def __str__(self) -> str:
        return f"{self.job}: {self.object_ref}"


class DemoClock(models.Model):
    """The demo clock (apimon.clock): how far apimon's notion of now is ahead of
    real time. One row at most; none means real time."""

    offset_seconds = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"real time + {self.offset_seconds} s"
