import django.db.models.deletion
from django.db import migrations, models

# Django's names for the foreign keys' indexes (the same on every backend).
INDEXES = {
    "gateway_usagerecord_organization_id_ed10f1b4": "organization_id",
    "gateway_usagerecord_subscription_id_425755a3": "subscription_id",
}


class Migration(migrations.Migration):
    """UsageRecord loses its single-column indexes on organization and subscription:
    (organization, hour) and the unique (subscription, hour) lead with those columns.

    Only the indexes are dropped: Django's own AlterField would also drop and re-add
    the foreign key constraints, re-checking every usage row under a lock."""

    dependencies = [
        ("apimon", "0003_paid_platform_plans"),
        ("gateway", "0004_usage_covering_index"),
        ("store", "0002_application_deleted_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usagerecord",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="apimon.organization",
                    ),
                ),
                migrations.AlterField(
                    model_name="usagerecord",
                    name="subscription",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_records",
                        to="store.subscription",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    f'CREATE INDEX "{name}" ON "gateway_usagerecord" ("{column}")',
                )
                for name, column in INDEXES.items()
            ],
        ),
    ]
