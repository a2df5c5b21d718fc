"""The operator's admin pages for APIs and tiers."""

from __future__ import annotations

import pytest

from apimon.models import User
from publisher.models import ApiState, ApiStateChange, Tag, TierVersion
from tests.publisher.helpers import graduated, make_api, make_tier


@pytest.fixture
def admin_client(client, world):
    operator = User.objects.create_superuser(email="op@apimon.test", password="x")
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def catalog(world):
    tier = make_tier(world.org, name="Enterprise", price=graduated())
    api = make_api(world.org, tiers=[tier], tags=["weather"], publish=True)
    return api, tier


@pytest.mark.django_db
def test_the_admin_pages_render_for_the_operator(admin_client, catalog):
    api, tier = catalog
    version = tier.current_version
    pages = [
        "/admin/publisher/api/",
        "/admin/publisher/api/?state__exact=PUBLISHED&q=weather",
        f"/admin/publisher/api/{api.pk}/change/",
        "/admin/publisher/tier/",
        f"/admin/publisher/tier/{tier.pk}/change/",
        "/admin/publisher/tierversion/",
        f"/admin/publisher/tierversion/{version.pk}/change/",
        "/admin/publisher/tag/",
        f"/admin/publisher/tag/{Tag.objects.get().pk}/change/",
        "/admin/publisher/apistatechange/",
    ]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page
    version_page = admin_client.get(
        f"/admin/publisher/tierversion/{version.pk}/change/"
    ).content.decode()
    assert "100000" in version_page  # the bands, read-only


@pytest.mark.django_db
def test_versions_are_read_only_in_the_admin(admin_client, catalog):
    _api, tier = catalog
    version = tier.current_version
    response = admin_client.post(
        f"/admin/publisher/tierversion/{version.pk}/change/", {"currency": "eur"}
    )
    assert response.status_code == 403
    assert TierVersion.objects.get(pk=version.pk).currency == "usd"
    assert admin_client.get("/admin/publisher/tier/add/").status_code == 403


@pytest.mark.django_db
def test_the_block_action_goes_through_the_lifecycle(admin_client, catalog):
    api, _tier = catalog
    admin_client.post(
        "/admin/publisher/api/",
        {"action": "block_apis", "_selected_action": [api.pk]},
    )
    api.refresh_from_db()
    assert api.state == ApiState.BLOCKED
    assert ApiStateChange.objects.filter(api=api, action="block").exists()


@pytest.mark.django_db
def test_the_admin_index_names_models_in_plain_english(admin_client):
    html = admin_client.get("/admin/").content.decode()
    for name in ("APIs", "API state changes", "API keys", "Flush batches"):
        assert f">{name}<" in html, name
    for wrong in ("Apis", "Api keys", "Api state changes", "Flush batchs"):
        assert f">{wrong}<" not in html, wrong
