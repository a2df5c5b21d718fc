"""The operator's admin: applications, keys (prefix and hash only), customers,
subscriptions with state filters and block/unblock actions."""

from __future__ import annotations

import pytest

from apimon.models import Membership, Role
from store import services
from store.models import ApiKey, StripeCustomer, Subscription, SubscriptionState
from tests.conftest import make_user
from tests.publisher.helpers import make_api, make_tier


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


@pytest.fixture
def both_stores(world, shop, app, sub):
    """A row of each model in acme's store (the Dashboard application on the Weather
    API) and in globex's (books@ledger.test's Ledger application on a Payments API:
    nothing but its organization says "globex")."""
    books = make_user("books@ledger.test")
    Membership.objects.create(
        user=books, organization=world.other_org, role=Role.SUBSCRIBER
    )
    ledger = services.application_create(
        organization=world.other_org, owner=books, name="Ledger"
    )
    payments = make_api(
        world.other_org,
        name="Payments",
        context="payments",
        tiers=[make_tier(world.other_org, "Basic")],
        publish=True,
    )
    theirs = services.subscription_create(
        application=ledger,
        api=payments,
        tier=payments.tiers.get(),
        actor=books,
    ).subscription
    customers = [
        StripeCustomer.objects.create(
            organization=org,
            user=user,
            stripe_account_id=f"acct_{org.slug}",
            stripe_customer_id=f"cus_{org.slug}",
        )
        for org, user in (
            (world.org, world.subscriber),
            (world.other_org, books),
        )
    ]
    keys = [
        services.api_key_create(application=a, actor=None, name=f"{a.name} key").key
        for a in (app, ledger)
    ]
    return {
        "application": (app, ledger),
        "apikey": tuple(keys),
        "stripecustomer": tuple(customers),
        "subscription": (sub, theirs),
    }


def changelist(client, model: str, **params):
    response = client.get(f"/admin/store/{model}/", params)
    assert response.status_code == 200
    return response, {row.pk for row in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("model", "search"),
    [
        ("application", "globex"),  # the organization
        ("apikey", "Ledger"),  # the application
        ("stripecustomer", "books@ledger"),  # the subscriber
        ("subscription", "Payments"),  # the API
    ],
)
def test_every_store_model_lists_every_store_and_searches(
    operator_client, both_stores, model, search
):
    acme, globex = both_stores[model]

    listing, shown = changelist(operator_client, model)

    assert shown == {acme.pk, globex.pk}
    html = listing.content.decode()
    assert str(acme) in html and str(globex) in html

    found, shown = changelist(operator_client, model, q=search)

    assert shown == {globex.pk}
    assert "1 result (" in found.content.decode()
    assert changelist(operator_client, model, q="nobody-has-this")[1] == set()


def test_keys_show_prefix_and_hash_never_the_key(operator_client, app):
    issued = services.api_key_create(application=app, actor=None)
    html = operator_client.get(f"/admin/store/apikey/{issued.key.pk}/change/")
    html = html.content.decode()
    assert issued.key.prefix in html and issued.key.key_hash in html
    assert issued.raw not in html


def test_subscriptions_filter_by_state_and_show_their_history(operator_client, sub):
    listing, shown = changelist(operator_client, "subscription", state="ACTIVE")
    assert shown == {sub.pk} and "Dashboard" in listing.content.decode()
    empty, shown = changelist(operator_client, "subscription", state="BLOCKED")
    assert shown == set() and "0 subscriptions" in empty.content.decode()
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
