"""Reconciliation: drift recorded when the Stripe catalog is changed behind apimon's
back, shown to the owner and in the admin, repairable."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from apimon import stripe_client as sc
from apimon.celery import BEAT_SCHEDULE
from billing.models import CatalogDrift, CatalogKind, CatalogObject, DriftKind
from billing.reconcile import catalog_reconcile, organizations_to_reconcile
from billing.tasks import reconcile_catalogs
from tests.billing.conftest import make_tier, offer
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def monetized(paid_org, owner_client, connected, catalog):
    owner_client.post(
        reverse("monetization:enable", args=[paid_org.slug]), {"password": PASSWORD}
    )
    connected.refresh_from_db()
    assert connected.monetization_enabled
    return connected


def options(connection):
    return sc.request_options(account=connection.account_id)


def a_price(catalog, name="gold") -> CatalogObject:
    return CatalogObject.objects.get(
        kind=CatalogKind.PRICE,
        tier_version=catalog[name].current_version,
        retired_at=None,
    )


def test_a_price_archived_behind_apimons_back_is_drift(
    paid_org, monetized, catalog, owner_client
):
    price = a_price(catalog)
    sc.get_client().v1.prices.update(
        price.stripe_id, {"active": False}, options(monetized)
    )

    result = catalog_reconcile(organization=paid_org)

    assert result.checked == 5 and result.new_drift == 1 and result.open_drift == 1
    drift = CatalogDrift.objects.get()
    assert drift.kind == DriftKind.ARCHIVED
    assert drift.catalog_object == price and drift.is_open
    assert price.stripe_id in drift.detail and "archived in Stripe" in drift.detail
    # The owner sees it.
    status = owner_client.get(reverse("monetization:status", args=[paid_org.slug]))
    assert "1 difference" in status.content.decode()
    assert "Archived in Stripe" in status.content.decode()
    page = owner_client.get(reverse("monetization:catalog", args=[paid_org.slug]))
    assert price.stripe_id in page.content.decode()


def test_drift_is_recorded_once_while_open(paid_org, monetized, catalog):
    price = a_price(catalog)
    sc.get_client().v1.prices.update(
        price.stripe_id, {"active": False}, options(monetized)
    )
    catalog_reconcile(organization=paid_org)

    again = catalog_reconcile(organization=paid_org)

    assert again.new_drift == 0 and again.open_drift == 1
    assert CatalogDrift.objects.count() == 1


def test_drift_resolves_when_stripe_matches_again(paid_org, monetized, catalog):
    price = a_price(catalog)
    client = sc.get_client()
    client.v1.prices.update(price.stripe_id, {"active": False}, options(monetized))
    catalog_reconcile(organization=paid_org)
    client.v1.prices.update(price.stripe_id, {"active": True}, options(monetized))

    result = catalog_reconcile(organization=paid_org)

    assert result.resolved == 1 and result.open_drift == 0
    assert CatalogDrift.objects.get().resolution == "Stripe matches apimon again"


def test_edited_metadata_is_drift_and_repair_restores_it(
    paid_org, monetized, catalog, owner_client
):
    price = a_price(catalog, "metered")
    client = sc.get_client()
    client.v1.prices.update(
        price.stripe_id,
        {"metadata": {"apimon_tier_version_id": "999"}},
        options(monetized),
    )
    catalog_reconcile(organization=paid_org)
    drift = CatalogDrift.objects.get()
    assert drift.kind == DriftKind.EDITED
    assert "metadata.apimon_tier_version_id is '999'" in drift.detail

    response = owner_client.post(
        reverse("monetization:drift-repair", args=[paid_org.slug, drift.pk])
    )

    assert response.status_code == 302
    remote = client.v1.prices.retrieve(price.stripe_id, {}, options(monetized))
    assert remote.metadata["apimon_tier_version_id"] == str(price.tier_version_id)
    drift.refresh_from_db()
    assert not drift.is_open and "owner@acme.test" in drift.resolution
    assert catalog_reconcile(organization=paid_org).open_drift == 0


def test_a_renamed_product_is_drift(paid_org, monetized, catalog):
    product = CatalogObject.objects.get(kind=CatalogKind.PRODUCT, api=catalog["maps"])
    sc.get_client().v1.products.update(
        product.stripe_id, {"name": "Renamed by hand"}, options(monetized)
    )

    catalog_reconcile(organization=paid_org)

    drift = CatalogDrift.objects.get()
    assert drift.kind == DriftKind.EDITED
    assert "name is 'Renamed by hand', apimon expects 'Maps v1'" in drift.detail


def test_repairing_an_archived_price_reactivates_it(
    paid_org, monetized, catalog, owner_client
):
    price = a_price(catalog)
    client = sc.get_client()
    client.v1.prices.update(price.stripe_id, {"active": False}, options(monetized))
    catalog_reconcile(organization=paid_org)
    drift = CatalogDrift.objects.get()

    owner_client.post(
        reverse("monetization:drift-repair", args=[paid_org.slug, drift.pk])
    )

    assert client.v1.prices.retrieve(price.stripe_id, {}, options(monetized)).active
    assert catalog_reconcile(organization=paid_org).open_drift == 0


def test_a_deleted_product_is_drift_and_repair_recreates_it(
    paid_org, monetized, catalog, stripe_emulator, owner_client
):
    product = CatalogObject.objects.get(kind=CatalogKind.PRODUCT, api=catalog["maps"])
    # Stripe refuses to delete a product with prices; wiping test data does not.
    store = stripe_emulator.store
    store.save({"id": product.stripe_id, "object": "product", "deleted": True})

    catalog_reconcile(organization=paid_org)
    drift = CatalogDrift.objects.get(catalog_object=product)
    assert drift.kind == DriftKind.DELETED

    owner_client.post(
        reverse("monetization:drift-repair", args=[paid_org.slug, drift.pk])
    )

    fresh = CatalogObject.objects.get(
        kind=CatalogKind.PRODUCT, api=catalog["maps"], retired_at=None
    )
    assert fresh.stripe_id != product.stripe_id
    price = a_price(catalog, "bands")
    assert price.product_stripe_id == fresh.stripe_id
    assert catalog_reconcile(organization=paid_org).open_drift == 0


def test_an_outsider_cannot_repair_another_organizations_drift(
    paid_org, monetized, catalog, world, client_for
):
    price = a_price(catalog)
    sc.get_client().v1.prices.update(
        price.stripe_id, {"active": False}, options(monetized)
    )
    catalog_reconcile(organization=paid_org)
    drift = CatalogDrift.objects.get()

    other = client_for(world.outsider)
    response = other.post(
        reverse("monetization:drift-repair", args=[world.other_org.slug, drift.pk])
    )

    assert response.status_code == 404
    drift.refresh_from_db()
    assert drift.is_open


def test_check_now_reconciles_from_the_page(paid_org, monetized, catalog, owner_client):
    price = a_price(catalog)
    sc.get_client().v1.prices.update(
        price.stripe_id, {"active": False}, options(monetized)
    )

    response = owner_client.post(
        reverse("monetization:drift-check", args=[paid_org.slug]), follow=True
    )

    assert (
        "Checked 5 Stripe objects: 1 differs from apimon." in response.content.decode()
    )


def test_the_hourly_job_and_the_command_check_every_connected_organization(
    paid_org, monetized, catalog, capsys
):
    assert (
        BEAT_SCHEDULE["reconcile-catalogs"]["task"]
        == "billing.tasks.reconcile_catalogs"
    )
    assert BEAT_SCHEDULE["reconcile-catalogs"]["schedule"] == 3600.0
    assert organizations_to_reconcile() == [paid_org.pk]
    price = a_price(catalog)
    sc.get_client().v1.prices.update(
        price.stripe_id, {"active": False}, options(monetized)
    )

    assert reconcile_catalogs.apply().get() == 1
    assert CatalogDrift.objects.count() == 1

    call_command("reconcile_catalog")
    out = capsys.readouterr().out
    assert "1 organization(s) checked, 1 open drift, 0 failed." in out
    assert CatalogDrift.objects.count() == 1


def test_reconciliation_pages_through_long_lists(paid_org, connected, monkeypatch):
    from billing import reconcile
    from tests.billing.conftest import make_api, make_tier, offer

    monkeypatch.setattr(reconcile, "PAGE", 2)
    tier = make_tier(paid_org, "Gold", fixed_fee="9")
    for n in range(3):
        offer(make_api(paid_org, f"Api{n}"), tier)
    from billing.catalog import catalog_sync

    catalog_sync(organization=paid_org)

    result = catalog_reconcile(organization=paid_org)

    assert result.checked == 6 and result.open_drift == 0


def test_the_admin_lists_drift_with_filters(paid_org, monetized, catalog, client):
    from tests.conftest import make_user

    admin = make_user("operator@apimon.test")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    price = a_price(catalog)
    sc.get_client().v1.prices.update(
        price.stripe_id, {"active": False}, options(monetized)
    )
    catalog_reconcile(organization=paid_org)
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")

    page = client.get("/admin/billing/catalogdrift/?open=yes&kind=archived")

    assert page.status_code == 200
    assert price.stripe_id in page.content.decode()
    response = client.post(
        "/admin/billing/catalogdrift/",
        {"action": "repair", "_selected_action": [CatalogDrift.objects.get().pk]},
    )
    assert response.status_code == 302
    assert not CatalogDrift.objects.get().is_open


def test_admin_catalog_actions_report_a_stripe_refusal_instead_of_failing(
    paid_org, monetized, catalog, client
):
    """The account removed apimon's access on Stripe's side (no webhook yet): the
    operator's "reconcile" and "sync" actions say so next to the organization."""
    from tests.conftest import make_user

    admin = make_user("operator@apimon.test")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    # A new commercial tier on an API: the sync has a price to create.
    offer(catalog["status"], make_tier(paid_org, "Plus", fixed_fee="9.00"))
    sc.get_client().oauth.deauthorize({"stripe_user_id": monetized.account_id})
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")

    for action in ("reconcile_now", "sync_now"):
        response = client.post(
            "/admin/billing/stripeconnection/",
            {"action": action, "_selected_action": [monetized.pk]},
            follow=True,
        )
        assert response.status_code == 200
        errors = [
            str(m) for m in response.context["messages"] if m.level_tag == "error"
        ]
        assert len(errors) == 1 and errors[0].startswith(f"{paid_org}: ")
