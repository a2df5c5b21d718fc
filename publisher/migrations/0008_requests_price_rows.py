"""The `requests` meter's price becomes a MeterPrice row like every other meter's:
each version's request price columns and PriceBand rows are copied to a
MeterPrice(meter="requests") with its MeterPriceBands. A version whose requests
were not charged (FREE, or FLAT: the fixed fee alone) gets no row; its fixed fee
stays on the version. 0009 then drops the columns and PriceBand."""

from django.db import migrations

USAGE_MODELS = ("PER_UNIT", "FLAT_PLUS_OVERAGE", "GRADUATED", "VOLUME")


def forward(apps, schema_editor):
    TierVersion = apps.get_model("publisher", "TierVersion")
    MeterPrice = apps.get_model("publisher", "MeterPrice")
    MeterPriceBand = apps.get_model("publisher", "MeterPriceBand")
    PriceBand = apps.get_model("publisher", "PriceBand")
    taken = set(
        MeterPrice.objects.filter(meter="requests").values_list("version_id", flat=True)
    )
    if taken:
        raise RuntimeError(
            f"Tier versions {sorted(taken)} already have a MeterPrice for requests."
        )
    versions = TierVersion.objects.filter(pricing_model__in=USAGE_MODELS)
    for version in versions.iterator():
        row = MeterPrice.objects.create(
            version=version,
            meter="requests",
            pricing_model=version.pricing_model,
            unit_price=version.unit_price,
            included_units=version.included_requests,
            overage_price=version.overage_price,
            overage_block_size=version.overage_block_size,
            quota_limit=None,
        )
        MeterPriceBand.objects.bulk_create(
            MeterPriceBand(
                price=row,
                position=band.position,
                up_to=band.up_to,
                unit_price=band.unit_price,
                flat_fee=band.flat_fee,
            )
            for band in PriceBand.objects.filter(version=version).order_by("position")
        )


def backward(apps, schema_editor):
    TierVersion = apps.get_model("publisher", "TierVersion")
    MeterPrice = apps.get_model("publisher", "MeterPrice")
    MeterPriceBand = apps.get_model("publisher", "MeterPriceBand")
    PriceBand = apps.get_model("publisher", "PriceBand")
    rows = {
        p.version_id: p for p in MeterPrice.objects.filter(meter="requests")
    }
    for version in TierVersion.objects.iterator():
        row = rows.get(version.pk)
        if row is None:
            version.pricing_model = "FLAT" if version.fixed_fee else "FREE"
            version.save(update_fields=["pricing_model"])
            continue
        version.pricing_model = row.pricing_model
        version.unit_price = row.unit_price
        version.included_requests = row.included_units
        version.overage_price = row.overage_price
        version.overage_block_size = row.overage_block_size
        version.save()
        PriceBand.objects.bulk_create(
            PriceBand(
                version=version,
                position=band.position,
                up_to=band.up_to,
                unit_price=band.unit_price,
                flat_fee=band.flat_fee,
            )
            for band in MeterPriceBand.objects.filter(price=row).order_by("position")
        )
    MeterPrice.objects.filter(meter="requests").delete()


class Migration(migrations.Migration):
    dependencies = [("publisher", "0007_version_charges_meters")]

    operations = [migrations.RunPython(forward, backward)]
