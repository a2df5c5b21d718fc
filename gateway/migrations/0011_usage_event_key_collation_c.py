from django.db import migrations

TABLE = "gateway_usageevent"


def to_c(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'ALTER TABLE {TABLE} ALTER COLUMN idempotency_key TYPE varchar(200) COLLATE "C"'
        )


def to_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE {TABLE} ALTER COLUMN idempotency_key TYPE varchar(200) "
            'COLLATE "default"'
        )


class Migration(migrations.Migration):
    """UsageEvent's idempotency key compares byte by byte (collation "C") on
    PostgreSQL: the unique (organization, key) index that every ingested event is
    inserted into compares keys with memcmp instead of the database's locale
    (docs/metering.md, "Ingested usage and the flush"). Keys are equal under both
    exactly when their bytes are, so uniqueness is unchanged; only their order
    differs. PostgreSQL only (SQLite has no such collation), so the model does not
    say it: an AlterField of the key would drop it. Rebuilds the index (the table
    is locked meanwhile)."""

    dependencies = [
        ("gateway", "0010_ingest_usage_pending_for_the_flush"),
    ]

    operations = [migrations.RunPython(to_c, to_default)]
