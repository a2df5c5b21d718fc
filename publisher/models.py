"""APIs and tiers: what a publisher sells.

An `Api` is offered on one or more `Tier`s (per organization). A tier's limits (quota,
rate limit) live on the tier and apply at once; its price lives in `TierVersion` rows,
so a tier that has subscribers is never silently repriced: a price change makes a new
version, and `Tier.current_version` is what new subscriptions get.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apimon.models import Organization
from apimon.validators import SingleLineCharField
from pricing.rating import Band, Pricing, with_fixed_fee

PRICE = {"max_digits": 24, "decimal_places": 12, "default": Decimal("0")}


class ApiState(models.TextChoices):
    CREATED = "CREATED", "Created"
    PUBLISHED = "PUBLISHED", "Published"
    DEPRECATED = "DEPRECATED", "Deprecated"
    RETIRED = "RETIRED", "Retired"
    BLOCKED = "BLOCKED", "Blocked"


class LifecycleAction(models.TextChoices):
    """What a publisher can do to an API's state; see `publisher.services.TRANSITIONS`."""

    PUBLISH = "publish", "Publish"
    DEPRECATE = "deprecate", "Deprecate"
    RETIRE = "retire", "Retire"
    BLOCK = "block", "Block"
    UNBLOCK = "unblock", "Unblock"


class Visibility(models.TextChoices):
    PUBLIC = "PUBLIC", "Public: anyone can see it in the store"
    RESTRICTED = "RESTRICTED", "Restricted: signed-in subscribers only"


class Tag(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+"
    )
    name = SingleLineCharField(max_length=40)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="tag_unique_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Api(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="apis"
    )
    name = SingleLineCharField(max_length=100)
    version = SingleLineCharField(max_length=30, help_text="e.g. v1, v2.1 or 1.0.0")
    context = models.SlugField(
        max_length=60,
        help_text="The URL path segment: /gateway/<org>/<context>/<version>/",
    )
    backend_url = models.URLField(
        max_length=500, help_text="Where the gateway forwards calls."
    )
    # The last time the gateway refused to connect to the backend because its address
    # is in a network tenants may not reach (apimon/egress.py); cleared when the API is
    # saved again. Shown on the API's page.
    backend_refused_at = models.DateTimeField(null=True, blank=True)
    backend_refused_address = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    documentation = models.TextField(blank=True, help_text="Markdown.")
    openapi_spec = models.JSONField(null=True, blank=True)
    openapi_filename = models.CharField(max_length=200, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="apis")
    visibility = models.CharField(
        max_length=12, choices=Visibility.choices, default=Visibility.PUBLIC
    )
    state = models.CharField(
        max_length=12, choices=ApiState.choices, default=ApiState.CREATED
    )
    state_changed_at = models.DateTimeField(default=timezone.now)
    # The state to return to when a BLOCKED API is unblocked.
    state_before_block = models.CharField(
        max_length=12, choices=ApiState.choices, blank=True
    )
    tiers = models.ManyToManyField(
        "Tier", through="ApiTier", related_name="apis", blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "API"
        verbose_name_plural = "APIs"
        ordering = ["name", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "context", "version"],
                name="api_context_version_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class ApiStateChange(models.Model):
    """Append-only history of an API's lifecycle: who moved it, when, from where."""

    api = models.ForeignKey(Api, on_delete=models.CASCADE, related_name="state_changes")
    # "create" for the first row, else a LifecycleAction value.
    action = models.CharField(max_length=12)
    from_state = models.CharField(max_length=12, choices=ApiState.choices, blank=True)
    to_state = models.CharField(max_length=12, choices=ApiState.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)

    class Meta:
        verbose_name = "API state change"
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.api}: {self.from_state or '∅'} → {self.to_state}"


REQUESTS_METER = "requests"
METER_KEY_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"


class MeterSource(models.TextChoices):
    """Where a meter's quantities come from (docs/metering.md, "Meters")."""

    REQUESTS = "requests", "Requests: one unit per counted request (built in)"
    OPERATIONS = "operations", "Weighted operations: units per method and path"
    RESPONSE = "response", "Reported by the backend in a response header"
    INGEST = "ingest", "Posted to the ingest API only"


class Meter(models.Model):
    """What an API counts. Every API has the built-in `requests` meter; a publisher
    adds others. Usage rows and tier prices name a meter by its key, which is fixed
    once the meter exists (it is the header name and the ingest API's `meter`)."""

    api = models.ForeignKey(Api, on_delete=models.CASCADE, related_name="meters")
    key = models.CharField(
        max_length=40,
        help_text="Lowercase letters, digits and hyphens, e.g. tokens. Fixed once "
        "created: the backend reports it as the header Apimon-Meter-<key>.",
    )
    display_name = SingleLineCharField(max_length=60, help_text="e.g. Tokens")
    unit_label = SingleLineCharField(max_length=40, help_text="One unit, e.g. token")
    display_scale = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Prices are shown per this many units (a power of ten), e.g. 1000.",
    )
    source = models.CharField(max_length=12, choices=MeterSource.choices)
    # Weighted operations: [{"method": "POST", "path": "/search", "units": 5}, ...];
    # a line typed as an OpenAPI operationId also keeps "operation_id" (its method
    # and path are the document's, resolved on save); an operation not listed
    # weighs 1 (docs/metering.md).
    operations = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["api", "created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["api", "key"], name="meter_key_unique"),
            models.CheckConstraint(
                condition=Q(display_scale__gte=1), name="meter_scale_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.api}: {self.key}"

    @property
    def is_builtin(self) -> bool:
        return self.key == REQUESTS_METER


class QuotaUnit(models.TextChoices):
    MINUTE = "minute", "per minute"
    HOUR = "hour", "per hour"
    DAY = "day", "per day"
    MONTH = "month", "per calendar month"
    PERIOD = "period", "per billing period"


class RateUnit(models.TextChoices):
    SECOND = "second", "per second"
    MINUTE = "minute", "per minute"


class BillingPlan(models.TextChoices):
    FREE = "FREE", "Free"
    COMMERCIAL = "COMMERCIAL", "Commercial"


class PricingModel(models.TextChoices):
    FREE = "FREE", "Free"
    FLAT = "FLAT", "Flat fee per period"
    PER_UNIT = "PER_UNIT", "Price per request"
    FLAT_PLUS_OVERAGE = (
        "FLAT_PLUS_OVERAGE",
        "Flat fee with included requests, then overage",
    )
    GRADUATED = "GRADUATED", "Graduated bands"
    VOLUME = "VOLUME", "Volume bands"


class BillingCycle(models.TextChoices):
    WEEK = "week", "Weekly"
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class Tier(models.Model):
    """A subscription policy of one organization, offered on one or more APIs."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="tiers"
    )
    name = SingleLineCharField(max_length=60)
    description = models.TextField(blank=True)
    quota_limit = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Requests allowed per quota window; empty = unlimited.",
    )
    quota_unit = models.CharField(
        max_length=10, choices=QuotaUnit.choices, default=QuotaUnit.MONTH
    )
    stop_on_quota_reach = models.BooleanField(
        default=True,
        help_text="Refuse calls over the quota (429) instead of billing overage.",
    )
    rate_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Burst limit; empty = none."
    )
    rate_unit = models.CharField(
        max_length=10, choices=RateUnit.choices, default=RateUnit.SECOND
    )
    billing_plan = models.CharField(
        max_length=12, choices=BillingPlan.choices, default=BillingPlan.FREE
    )
    count_every_request = models.BooleanField(
        default=False,
        help_text="Count every forwarded request, not only 2xx/3xx answers of the backend.",
    )
    current_version = models.ForeignKey(
        "TierVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="tier_name_unique_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_commercial(self) -> bool:
        return self.billing_plan == BillingPlan.COMMERCIAL


class TierVersion(models.Model):
    """One price of a tier. Immutable once a subscription uses it.

    The version holds the one fixed fee; what each meter costs, `requests`
    included, is a `MeterPrice` row of the version (none for a meter it does not
    charge)."""

    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    billing_cycle = models.CharField(
        max_length=5, choices=BillingCycle.choices, default=BillingCycle.MONTH
    )
    trial_days = models.PositiveSmallIntegerField(default=0)
    # Charged in advance each period (with the requests' included units, if any).
    fixed_fee = models.DecimalField(**PRICE, validators=[MinValueValidator(0)])
    # Whether a meter other than requests is charged (a MeterPrice not FREE), kept
    # by publisher.services with the prices, so that the billing engine reads the
    # other meters' usage only for the versions that price one.
    charges_meters = models.BooleanField(default=False)
    # Chosen by the publisher when this version replaced another: move the tier's
    # existing subscribers to it at their next period, or keep them on their version.
    migrate_existing = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["tier", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["tier", "number"], name="tierversion_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(fixed_fee__gte=0), name="tierversion_fee_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier.name} v{self.number}"

    def requests_price(self, rows=None) -> MeterPrice | None:
        """The `requests` meter's price row (None: requests are not charged), among
        ``rows`` or `meter_prices.all()` (which a prefetch of `meter_prices__bands`
        serves)."""
        rows = self.meter_prices.all() if rows is None else rows
        return next((p for p in rows if p.meter == REQUESTS_METER), None)

    def other_meter_prices(self, rows=None) -> list[MeterPrice]:
        """The price rows of the meters other than `requests` (rated on their own
        lines, not with the fee in `pricing()`); ``rows`` as `requests_price`."""
        rows = self.meter_prices.all() if rows is None else rows
        return [p for p in rows if p.meter != REQUESTS_METER]

    def pricing(self, rows=None) -> Pricing:
        """The fixed fee and the requests' price, as one value of the pure rating
        module (`pricing.rating.with_fixed_fee`); ``rows`` as `requests_price`."""
        requests = self.requests_price(rows)
        return with_fixed_fee(
            requests.pricing(self.currency) if requests else None,
            fee=self.fixed_fee,
            currency=self.currency,
        )

    @property
    def pricing_model(self) -> str:
        """The model of `pricing()`: FLAT for a fee alone, FREE for nothing."""
        return self.pricing().model.value

    def get_pricing_model_display(self) -> str:
        return PricingModel(self.pricing_model).label


class MeterPrice(models.Model):
    """A tier version's price for one meter, `requests` included, and its quota
    (not for requests, whose quota is the tier's own limit). Named by the meter's
    key: it applies to the meter of that key on each API the tier is offered on.
    Part of the version, so immutable once a subscription uses it."""

    version = models.ForeignKey(
        TierVersion, on_delete=models.CASCADE, related_name="meter_prices"
    )
    meter = models.CharField(max_length=40)
    pricing_model = models.CharField(
        max_length=20, choices=PricingModel.choices, default=PricingModel.FREE
    )
    # Per unit of the meter (the form takes them per the meter's display scale).
    unit_price = models.DecimalField(**PRICE, validators=[MinValueValidator(0)])
    included_units = models.PositiveBigIntegerField(default=0)
    overage_price = models.DecimalField(**PRICE, validators=[MinValueValidator(0)])
    overage_block_size = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)]
    )
    quota_limit = models.PositiveBigIntegerField(null=True, blank=True)
    quota_unit = models.CharField(
        max_length=10, choices=QuotaUnit.choices, default=QuotaUnit.MONTH
    )
    stop_on_quota_reach = models.BooleanField(default=True)

    class Meta:
        ordering = ["version", "meter"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "meter"], name="meterprice_one_per_meter"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0)
                & Q(overage_price__gte=0)
                & Q(overage_block_size__gte=1),
                name="meterprice_prices_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version}: {self.meter}"

    def pricing(self, currency: str) -> Pricing:
        """The pure rating module's view: no fixed fee (the version has the one)."""
        return Pricing(
            model=self.pricing_model,
            currency=currency,
            unit_price=self.unit_price,
            included_requests=self.included_units,
            overage_price=self.overage_price,
            overage_block_size=self.overage_block_size,
            bands=tuple(
                Band(up_to=b.up_to, unit_price=b.unit_price, flat_fee=b.flat_fee)
                for b in self.bands.all()
            ),
        )


class MeterPriceBand(models.Model):
    """A band of a meter's GRADUATED or VOLUME price; `up_to` inclusive."""

    price = models.ForeignKey(
        MeterPrice, on_delete=models.CASCADE, related_name="bands"
    )
    position = models.PositiveSmallIntegerField()
    up_to = models.PositiveBigIntegerField(null=True, blank=True)
    unit_price = models.DecimalField(**PRICE, validators=[MinValueValidator(0)])
    flat_fee = models.DecimalField(**PRICE, validators=[MinValueValidator(0)])

    class Meta:
        ordering = ["price", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["price", "position"], name="meterpriceband_position_unique"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0) & Q(flat_fee__gte=0),
                name="meterpriceband_prices_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"band {self.position} up to {self.up_to or '∞'}"


class ApiTier(models.Model):
    """An API offered on a tier."""

    api = models.ForeignKey(Api, on_delete=models.CASCADE, related_name="offers")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="offers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api", "tier"], name="apitier_unique")
        ]

    def __str__(self) -> str:
        return f"{self.api} on {self.tier}"


def version_priced(path: str = "") -> Q:
    """A filter on tier versions (or on rows whose tier version is at ``path``,
    e.g. "tier_version") whose `pricing()` is not FREE: a fixed fee, or a price
    for requests. (Other meters' prices are `charges_meters`.)"""
    prefix = f"{path}__" if path else ""
    requests = MeterPrice.objects.filter(
        version=OuterRef(path or "pk"), meter=REQUESTS_METER
    )
    return Q(**{f"{prefix}fixed_fee__gt": 0}) | Q(Exists(requests))


def version_charges(path: str = "") -> Q:
    """A filter on tier versions (or on rows whose tier version is at ``path``)
    that charge anything: a fixed fee, requests, or another meter. The opposite
    of a free version (`store.tier_change.is_free`)."""
    prefix = f"{path}__" if path else ""
    return version_priced(path) | Q(**{f"{prefix}charges_meters": True})
