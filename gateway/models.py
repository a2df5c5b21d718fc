"""The meter's ledger: requests counted per subscription and hour (SPEC §7).

Rows are written only by the flush job (gateway.flush), which moves the gateway's
Redis counters here exactly once; billing and usage pages read them.
"""

from django.db import models
from django.db.models import Q

from apimon.models import Organization
from store.models import Subscription


class UsageRecord(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+"
    )
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="usage_records"
    )
    hour = models.DateTimeField(help_text="Start of the UTC hour the requests fell in.")
    count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["subscription", "hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "hour"], name="usage_one_row_per_hour"
            ),
            models.CheckConstraint(
                condition=Q(count__gte=0), name="usage_count_not_negative"
            ),
        ]
        indexes = [models.Index(fields=["organization", "hour"])]

    def __str__(self) -> str:
        return f"{self.subscription_id} @ {self.hour:%Y-%m-%d %H:00}: {self.count}"
