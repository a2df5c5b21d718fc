"""The migration that makes the requests' price a MeterPrice row: each pricing
model's columns and bands arrive in the row, nothing lost, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from pricing.rating import Band, Pricing, PricingModel
from publisher.models import TierVersion

D = Decimal
BEFORE = "0007_version_charges_meters"

# (model, the version's columns, its PriceBand rows as (up_to, price, flat fee))
OLD_PRICES = {
    "FREE": ("FREE", {}, []),
    "FLAT": ("FLAT", {"fixed_fee": D("49")}, []),
    "PER_UNIT": ("PER_UNIT", {"unit_price": D("0.000400000001")}, []),
    "OVERAGE": (
        "FLAT_PLUS_OVERAGE",
        {
            "fixed_fee": D("19"),
            "included_requests": 10_000,
            "overage_price": D("0.5"),
            "overage_block_size": 1_000,
        },
        [],
    ),
    "FREE_ALLOWANCE": (
        "FLAT_PLUS_OVERAGE",
        {"included_requests": 500, "overage_price": D("0.01")},
        [],
    ),
    "GRADUATED": (
        "GRADUATED",
        {},
        [
            (100_000, D("0.001"), D("99")),
            (1_000_000, D("0.0006"), D(0)),
            (None, D("0.0003"), D(0)),
        ],
    ),
    "VOLUME": (
        "VOLUME",
        {"currency": "jpy"},
        [(10, D("5"), D(0)), (None, D("1"), D("150"))],
    ),
}

EXPECTED = {
    "FREE": Pricing(PricingModel.FREE, "usd"),
    "FLAT": Pricing(PricingModel.FLAT, "usd", fixed_fee=D("49")),
    "PER_UNIT": Pricing(PricingModel.PER_UNIT, "usd", unit_price=D("0.000400000001")),
    "OVERAGE": Pricing(
        PricingModel.FLAT_PLUS_OVERAGE,
        "usd",
        fixed_fee=D("19"),
        included_requests=10_000,
        overage_price=D("0.5"),
        overage_block_size=1_000,
    ),
    "FREE_ALLOWANCE": Pricing(
        PricingModel.FLAT_PLUS_OVERAGE,
        "usd",
        included_requests=500,
        overage_price=D("0.01"),
    ),
    "GRADUATED": Pricing(
        PricingModel.GRADUATED,
        "usd",
        bands=(
            Band(100_000, D("0.001"), D("99")),
            Band(1_000_000, D("0.0006")),
            Band(None, D("0.0003")),
        ),
    ),
    "VOLUME": Pricing(
        PricingModel.VOLUME,
        "jpy",
        bands=(Band(10, D("5")), Band(None, D("1"), D("150"))),
    ),
}


def migrate(target: str):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    leaves = executor.loader.graph.leaf_nodes()
    nodes = [(app, target if app == "publisher" else name) for app, name in leaves]
    executor.migrate(nodes)
    return executor.loader.project_state(nodes).apps


@pytest.mark.django_db(transaction=True)
def test_each_versions_requests_price_becomes_a_meter_price_row_and_back(world):
    try:
        old = migrate(BEFORE)
        ids = _old_versions(old, world)

        migrate(_latest())
        for name, pk in ids.items():
            version = TierVersion.objects.get(pk=pk)
            assert version.pricing() == EXPECTED[name], name
        rows = {
            name: list(
                TierVersion.objects.get(pk=pk)
                .meter_prices.order_by("meter")
                .values_list("meter", "pricing_model", "quota_limit")
            )
            for name, pk in ids.items()
        }
        # Free requests (FREE, or a fee alone) need no row; the others one each,
        # without a quota (the requests' quota is the tier's).
        assert rows == {
            "FREE": [],
            "FLAT": [],
            "PER_UNIT": [("requests", "PER_UNIT", None), ("tokens", "PER_UNIT", None)],
            "OVERAGE": [("requests", "FLAT_PLUS_OVERAGE", None)],
            "FREE_ALLOWANCE": [("requests", "FLAT_PLUS_OVERAGE", None)],
            "GRADUATED": [("requests", "GRADUATED", None)],
            "VOLUME": [("requests", "VOLUME", None)],
        }

        back = migrate(BEFORE)
        OldVersion = back.get_model("publisher", "TierVersion")
        for name, pk in ids.items():
            model, columns, bands = OLD_PRICES[name]
            version = OldVersion.objects.get(pk=pk)
            assert version.pricing_model == model, name
            for key, value in columns.items():
                assert getattr(version, key) == value, (name, key)
            assert [
                (b.up_to, b.unit_price, b.flat_fee)
                for b in version.bands.order_by("position")
            ] == bands, name
        remaining = back.get_model("publisher", "MeterPrice").objects.values_list(
            "version_id", "meter"
        )
        assert list(remaining) == [(ids["PER_UNIT"], "tokens")]
    finally:
        migrate(_latest())


def _latest() -> str:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return dict(executor.loader.graph.leaf_nodes())["publisher"]


def _old_versions(old, world) -> dict[str, int]:
    Tier = old.get_model("publisher", "Tier")
    TierVersion = old.get_model("publisher", "TierVersion")
    PriceBand = old.get_model("publisher", "PriceBand")
    MeterPrice = old.get_model("publisher", "MeterPrice")
    ids = {}
    for name, (model, columns, bands) in OLD_PRICES.items():
        tier = Tier.objects.create(organization_id=world.org.pk, name=name)
        version = TierVersion.objects.create(
            tier=tier, number=1, pricing_model=model, **columns
        )
        for position, (up_to, price, fee) in enumerate(bands):
            PriceBand.objects.create(
                version=version,
                position=position,
                up_to=up_to,
                unit_price=price,
                flat_fee=fee,
            )
        ids[name] = version.pk
    # A meter's price of before stays as it was.
    MeterPrice.objects.create(
        version_id=ids["PER_UNIT"], meter="tokens", pricing_model="PER_UNIT",
        unit_price=D("0.000002"),
    )  # fmt: skip
    return ids
