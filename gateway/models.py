"""The meter's ledger: requests counted per subscription and hour.

Rows are written by the flush job (gateway.services.usage_flush), which moves the
gateway's Redis counters here exactly once, and by the ingest API
(gateway.ingest, usage events that external gateways post, once per idempotency
key, recorded in UsageEvent); billing and usage pages read them
(gateway.selectors). docs/metering.md describes the protocol.
"""

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apimon.models import Organization
from apimon.validators import SingleLineCharField
from publisher.models import REQUESTS_METER
from store.models import Subscription


class CoveringIndex(models.Index):
    """`models.Index(include=...)` where the database has covering indexes
    (PostgreSQL), the same index without the included columns elsewhere (SQLite).
    Django builds it so on SQLite anyway, but an `include` there draws its warning
    models.W040 on every system check."""

    def __init__(self, *args: Any, covering: Sequence[str] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.covering = tuple(covering)

    def deconstruct(self) -> tuple[str, tuple, dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        kwargs["covering"] = self.covering
        return path, args, kwargs

    def create_sql(self, model, schema_editor, using="", **kwargs):
        index = self
        if schema_editor.connection.features.supports_covering_indexes:
            index = self.clone()
            index.include = self.covering
        return models.Index.create_sql(index, model, schema_editor, using, **kwargs)


class UsageRecord(models.Model):
    # No single-column indexes on the keys: (organization, hour) and the unique
    # (subscription, hour) lead with them, and every index costs the flush a write.
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    subscription = models.ForeignKey(
        Subscription,
        on_delete=models.CASCADE,
        related_name="usage_records",
        db_index=False,
    )
    hour = models.DateTimeField(
        help_text=(
            "Start of the subscription hour the requests fell in: hours are aligned "
            "to the subscription's anchor (started_at), so billing periods split "
            "exactly on rows."
        )
    )
    # The key of the API's meter (publisher.models.Meter) this row counts; rows of
    # a meter deleted later stay, unbilled (docs/metering.md, "Meters").
    meter = models.CharField(
        max_length=40, default=REQUESTS_METER, db_default=REQUESTS_METER
    )
    count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["subscription", "meter", "hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "meter", "hour"],
                name="usage_one_row_per_meter_and_hour",
            ),
            models.CheckConstraint(
                condition=Q(count__gte=0), name="usage_count_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "hour"]),
            # Covering index for billing's usage aggregate (SUM(count) per subscription
            # and meter over a range of hours): an index-only scan on PostgreSQL. Not
            # `include` on the unique constraint: Django drops a unique constraint
            # with `include` on SQLite, where the flush's ON CONFLICT needs it.
            CoveringIndex(
                fields=["subscription", "meter", "hour"],
                covering=["count"],
                name="usage_sub_meter_hour_count",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.subscription_id} @ {self.hour:%Y-%m-%d %H:00}: "
            f"{self.count} {self.meter}"
        )


class FlushBatch(models.Model):
    """A batch of Redis counters applied to UsageRecord: the flush's ledger.

    The batch id is chosen when the batch is sealed in Redis (gateway.meter.SEAL) and
    is unique here, so a batch is applied at most once whatever crashes or runs twice
    (docs/metering.md)."""

    batch_id = models.CharField(max_length=40, unique=True)
    applied_at = models.DateTimeField(default=timezone.now, db_index=True)
    rows = models.PositiveIntegerField(default=0)
    requests = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "flush batches"
        ordering = ["-applied_at"]

    def __str__(self) -> str:
        return f"batch {self.batch_id}: {self.requests} requests"


class QuotaThreshold(models.IntegerChoices):
    EIGHTY = 80, "80 %"
    FULL = 100, "100 %"


class QuotaAlert(models.Model):
    """An email sent to a subscriber about a quota window; one per threshold and
    window, which the unique constraint enforces even if two jobs race."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+"
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="quota_alerts"
    )
    # The quota's meter: requests (the tier's quota) or a meter the tier version
    # gives a quota (publisher.models.MeterPrice).
    meter = models.CharField(
        max_length=40, default=REQUESTS_METER, db_default=REQUESTS_METER
    )
    window_unit = models.CharField(max_length=10)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField(choices=QuotaThreshold.choices)
    quota_limit = models.PositiveBigIntegerField()
    used = models.BigIntegerField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "subscription",
                    "meter",
                    "window_unit",
                    "window_start",
                    "threshold",
                ],
                name="one_quota_alert_per_meter_window_and_threshold",
            )
        ]

    def __str__(self) -> str:
        return f"{self.threshold} % of {self.quota_limit} for {self.subscription_id}"


class IngestToken(models.Model):
    """An organization's token for the usage ingest API (external gateways that post
    usage events). Shown once; apimon keeps its SHA-256 and a visible prefix."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="ingest_tokens"
    )
    name = SingleLineCharField(max_length=80, blank=True)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.organization})"


class UsageEvent(models.Model):
    """One usage event posted to the ingest API, kept so that its idempotency key is
    recorded once per organization (the unique constraint). Its count is written in
    the same transaction as a PendingUsage row, which the usage flush adds to the
    subscription's UsageRecord (events stored before PendingUsage existed were added
    to UsageRecord in their own transaction).

    Its foreign keys have no database constraint: the ingest writes events only for
    subscriptions of the token's organization that it holds locked, and the
    database's deferred checks of three keys per row were a third of an ingest
    batch's time (docs/decisions.md, "Ingest at 25,000 events/s"). Deletions still
    cascade (Django's collector)."""

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # Collation "C" on PostgreSQL (migration 0011, not said here: SQLite has none):
    # the unique index compares keys byte by byte. An AlterField would drop it.
    idempotency_key = models.CharField(max_length=200)
    subscription = models.ForeignKey(
        Subscription,
        on_delete=models.CASCADE,
        related_name="usage_events",
        db_constraint=False,
    )
    at = models.DateTimeField()
    meter = models.CharField(
        max_length=40, default=REQUESTS_METER, db_default=REQUESTS_METER
    )
    count = models.PositiveIntegerField()
    # Not indexed (one index fewer per event written): tokens are revoked, never
    # deleted, except with their organization.
    token = models.ForeignKey(
        IngestToken,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                name="usage_event_once_per_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key}: {self.count} @ {self.at:%Y-%m-%d %H:%M}"


class PendingUsage(models.Model):
    """Units of ingested events not yet added to UsageRecord, per (subscription,
    meter, hour) of one ingest batch: written by the ingest request in the
    transaction that stores its UsageEvents, deleted by the usage flush in the
    transaction that adds them to UsageRecord, so each is added exactly once. A few
    seconds' worth at any time; readers that must be exact add them
    (gateway.selectors). No database foreign keys, so the ingest's COPY checks none;
    a deleted subscription's rows are dropped by the flush."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    meter = models.CharField(max_length=40)
    hour = models.DateTimeField()
    count = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "pending usage"

    def __str__(self) -> str:
        return f"{self.subscription_id} {self.meter} @ {self.hour}: +{self.count}"
