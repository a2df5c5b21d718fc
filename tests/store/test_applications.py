"""Applications: create, edit, delete; scoped to their owner."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from store import services
from store.keys import hash_key
from store.models import ApiKey, Application, Subscription, SubscriptionState
from tests.helpers import field_error
from tests.store.conftest import store_url


def test_a_subscriber_creates_an_application(world, client_for):
    client = client_for(world.subscriber)
    response = client.post(
        store_url(world.org, "applications/new/"),
        {"name": "  Dashboard ", "description": "Shows forecasts"},
    )
    app = Application.objects.get()
    assert response.status_code == 302
    assert response["Location"] == store_url(world.org, f"applications/{app.pk}/")
    assert (app.name, app.owner, app.organization) == (
        "Dashboard",
        world.subscriber,
        world.org,
    )
    page = client.get(store_url(world.org, "applications/")).content.decode()
    assert "Dashboard" in page and "Shows forecasts" in page


def test_create_goes_back_to_a_safe_next_page_only(world, client_for):
    client = client_for(world.subscriber)
    back = store_url(world.org, "apis/1/")
    response = client.post(
        store_url(world.org, "applications/new/"), {"name": "A", "next": back}
    )
    assert response["Location"] == back
    response = client.post(
        store_url(world.org, "applications/new/"),
        {"name": "B", "next": "https://evil.example.com/"},
    )
    assert "evil" not in response["Location"]


@pytest.mark.parametrize(
    "target", ["4abc", "store:home", "home", "javascript:x", "//x"]
)
def test_a_next_that_is_not_a_path_leads_to_the_application(world, client_for, target):
    """Found by the fuzz tests: a relative `next` without a slash was passed to
    redirect(), which took it for a URL name (NoReverseMatch, a 500)."""
    response = client_for(world.subscriber).post(
        store_url(world.org, "applications/new/"), {"name": "A", "next": target}
    )

    app = Application.objects.get()
    assert response.status_code == 302
    assert response["Location"] == store_url(world.org, f"applications/{app.pk}/")


def test_names_are_unique_per_subscriber_but_not_across_subscribers(world, client_for):
    client = client_for(world.subscriber)
    client.post(store_url(world.org, "applications/new/"), {"name": "Dashboard"})
    response = client.post(
        store_url(world.org, "applications/new/"), {"name": "dashboard"}
    )
    assert response.status_code == 200
    assert "You already have an application" in response.content.decode()
    assert Application.objects.count() == 1
    client_for(world.publisher).post(
        store_url(world.org, "applications/new/"), {"name": "Dashboard"}
    )
    assert Application.objects.count() == 2


def test_an_empty_name_is_refused_next_to_the_field(world, client_for):
    response = client_for(world.subscriber).post(
        store_url(world.org, "applications/new/"), {"name": ""}
    )
    assert response.status_code == 200
    assert "This field is required." in field_error(response.content, "name")
    assert not Application.objects.exists()


def test_edit_an_application(world, app, client_for):
    client = client_for(world.subscriber)
    response = client.post(
        store_url(world.org, f"applications/{app.pk}/edit/"),
        {"name": "Renamed", "description": "new"},
    )
    app.refresh_from_db()
    assert response.status_code == 302
    assert (app.name, app.description) == ("Renamed", "new")


def test_another_subscribers_application_is_404(world, app, client_for):
    client = client_for(world.publisher)
    for path in ["", "edit/", "delete/"]:
        url = store_url(world.org, f"applications/{app.pk}/{path}")
        assert client.get(url).status_code == 404
        assert client.post(url, {"name": "x"}).status_code == 404
    assert (
        client.post(
            store_url(world.org, f"applications/{app.pk}/keys/new/")
        ).status_code
        == 404
    )
    app.refresh_from_db()
    assert app.name == "Dashboard" and app.deleted_at is None


def test_an_outsider_gets_404_for_the_application(world, app, client_for):
    client = client_for(world.outsider)
    assert (
        client.get(store_url(world.org, f"applications/{app.pk}/")).status_code == 404
    )
    # and in their own organization the id does not exist either
    assert (
        client.get(store_url(world.other_org, f"applications/{app.pk}/")).status_code
        == 404
    )


def test_delete_an_application_without_subscriptions(world, app, client_for):
    issued = services.api_key_create(application=app, actor=world.subscriber)
    response = client_for(world.subscriber).post(
        store_url(world.org, f"applications/{app.pk}/delete/")
    )
    assert response.status_code == 302
    assert not Application.objects.exists()
    assert not ApiKey.objects.filter(key_hash=hash_key(issued.raw)).exists()


def test_an_application_with_live_subscriptions_is_not_deleted(
    world, shop, app, client_for
):
    services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    )
    client = client_for(world.subscriber)
    page = client.get(store_url(world.org, f"applications/{app.pk}/delete/"))
    assert "Cancel them first" in page.content.decode()
    response = client.post(
        store_url(world.org, f"applications/{app.pk}/delete/"), follow=True
    )
    assert "live subscriptions: cancel them first" in response.content.decode()
    app.refresh_from_db()
    assert app.deleted_at is None


def test_an_application_with_history_is_kept_hidden_and_its_keys_revoked(
    world, shop, app, client_for
):
    sub = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    issued = services.api_key_create(application=app, actor=world.subscriber)
    services.subscription_cancel(subscription=sub, actor=None, at_period_end=False)
    client = client_for(world.subscriber)
    client.post(store_url(world.org, f"applications/{app.pk}/delete/"))
    app.refresh_from_db()
    issued.key.refresh_from_db()
    assert app.deleted_at is not None
    assert not issued.key.is_usable()
    assert Subscription.objects.get().state == SubscriptionState.CANCELLED
    assert (
        client.get(store_url(world.org, f"applications/{app.pk}/")).status_code == 404
    )
    listing = client.get(store_url(world.org, "applications/")).content.decode()
    assert "<strong>Dashboard</strong>" not in listing
    assert "No applications yet" in listing
    # The name is free again.
    services.application_create(
        organization=world.org, owner=world.subscriber, name="Dashboard"
    )
    with pytest.raises(ValidationError):
        services.api_key_create(application=app, actor=world.subscriber)
