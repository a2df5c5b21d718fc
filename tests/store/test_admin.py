"""The operator's admin: applications, keys (prefix and hash only), customers,
subscriptions with state filters and block/unblock actions."""

from __future__ import annotations

import pytest

from store import services
from store.models import ApiKey, Subscription, SubscriptionState
from tests.conftest import make_user


@pytest.fixture
def operator_client(db, client):
    operator = make_user("admin@apimon.test")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def sub(world, shop, app):
    return services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription


@pytest.mark.parametrize(
    "model", ["application", "apikey", "stripecustomer", "subscription"]
)
def test_every_store_model_has_a_changelist(operator_client, sub, model):
    assert operator_client.get(f"/admin/store/{model}/").status_code == 200


def test_keys_show_prefix_and_hash_never_the_key(operator_client, app):
    issued = services.api_key_create(application=app, actor=None)
    html = operator_client.get(f"/admin/store/apikey/{issued.key.pk}/change/")
    html = html.content.decode()
    assert issued.key.prefix in html and issued.key.key_hash in html
    assert issued.raw not in html


def test_subscriptions_filter_by_state_and_show_their_history(operator_client, sub):
    listing = operator_client.get("/admin/store/subscription/", {"state": "ACTIVE"})
    assert listing.status_code == 200 and "Dashboard" in listing.content.decode()
    empty = operator_client.get("/admin/store/subscription/", {"state": "BLOCKED"})
    assert "0 subscriptions" in empty.content.decode()
    page = operator_client.get(f"/admin/store/subscription/{sub.pk}/change/")
    assert "created" in page.content.decode()


def test_block_and_unblock_actions_go_through_the_services(operator_client, sub):
    operator_client.post(
        "/admin/store/subscription/",
        {"action": "block", "_selected_action": [sub.pk]},
    )
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.BLOCKED and sub.blocked_by_publisher
    assert "platform operator" in sub.blocked_reason
    assert sub.events.filter(kind="blocked").exists()
    operator_client.post(
        "/admin/store/subscription/",
        {"action": "unblock", "_selected_action": [sub.pk]},
    )
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE


def test_the_revoke_action_stops_keys(operator_client, app):
    issued = services.api_key_create(application=app, actor=None)
    operator_client.post(
        "/admin/store/apikey/",
        {"action": "revoke", "_selected_action": [issued.key.pk]},
    )
    assert not ApiKey.objects.get().is_usable()


def test_subscriptions_cannot_be_deleted_in_the_admin(operator_client, sub):
    response = operator_client.get(f"/admin/store/subscription/{sub.pk}/delete/")
    assert response.status_code == 403
    assert Subscription.objects.filter(pk=sub.pk).exists()
