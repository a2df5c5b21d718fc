"""RESTRICTED means restricted: joining a store opens its PUBLIC APIs only; a
RESTRICTED API is listed, opened and subscribed to only by the owners, the publishers
and the subscribers they approved (a request from the store, decided in the console,
or an invitation). Subscriptions that exist are not touched by a decision."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from apimon.models import Invitation, Membership, RestrictedAccess, Role
from apimon.services import membership_join_store
from publisher.models import Visibility
from store.models import Application, Subscription, SubscriptionState
from tests.conftest import make_user
from tests.publisher.helpers import make_api
from tests.store.conftest import store_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def secret(shop):
    """A published RESTRICTED API on the shop's free tier."""
    return make_api(
        shop.org,
        name="Partner Ledger",
        context="ledger",
        tiers=[shop.free],
        publish=True,
        visibility=Visibility.RESTRICTED,
    )


def access(user, org) -> str:
    return Membership.objects.get(user=user, organization=org).restricted_access


def catalog_html(client, org) -> str:
    return client.get(store_url(org)).content.decode()


def subscribe(client, org, api, app, tier):
    return client.post(
        store_url(org, f"apis/{api.pk}/subscribe/"),
        {"application": app.pk, "tier": tier.pk},
    )


def request_access(client, org):
    return client.post(reverse("store:access-request", args=[org.slug]))


def decide(client, org, membership, action: str):
    return client.post(
        reverse("publisher:access-decide", args=[org.slug, membership.pk]),
        {"action": action},
    )


# -- who sees what --------------------------------------------------------------------


def test_a_member_who_only_joined_sees_no_restricted_api(
    world, shop, secret, app, client_for
):
    client = client_for(world.subscriber)
    html = catalog_html(client, shop.org)
    assert "Weather API" in html and "Partner Ledger" not in html
    assert 'id="restricted-access"' in html and "Request access" in html
    assert client.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404
    response = subscribe(client, shop.org, secret, app, shop.free)
    assert response.status_code == 404
    assert not Subscription.objects.filter(api=secret).exists()
    assert (
        "Partner Ledger"
        not in client.get(store_url(shop.org), {"q": "ledger"}).content.decode()
    )


def test_joining_by_one_post_gives_no_access(shop, secret, client_for):
    newcomer = make_user("newcomer@example.test")
    client = client_for(newcomer)
    assert client.post(reverse("store-join", args=[shop.org.slug])).status_code == 302
    membership = Membership.objects.get(user=newcomer, organization=shop.org)
    assert membership.role == Role.SUBSCRIBER
    assert membership.restricted_access == RestrictedAccess.NONE
    assert "Partner Ledger" not in catalog_html(client, shop.org)
    assert client.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404


def test_owners_and_publishers_always_see_every_api(world, shop, secret, client_for):
    for insider in (world.owner, world.publisher):
        client = client_for(insider)
        html = catalog_html(client, shop.org)
        assert "Partner Ledger" in html and 'id="restricted-access"' not in html
        assert client.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 200


def test_anonymous_visitors_and_outsiders_see_none_of_it(
    world, shop, secret, client, client_for
):
    html = catalog_html(client, shop.org)
    assert "Partner Ledger" not in html
    assert "for approved subscribers" in html  # and how to get there
    assert client.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404
    outsider = client_for(world.outsider)
    html = catalog_html(outsider, shop.org)
    assert "Partner Ledger" not in html and "Join the store" in html
    assert outsider.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404
    # An outsider cannot ask, nor decide on someone's request.
    assert request_access(outsider, shop.org).status_code == 404
    subscriber = Membership.objects.get(user=world.subscriber, organization=shop.org)
    assert decide(outsider, shop.org, subscriber, "approve").status_code == 404
    assert access(world.subscriber, shop.org) == RestrictedAccess.NONE


def test_no_card_when_the_store_has_no_restricted_api(world, shop, client_for):
    html = catalog_html(client_for(world.subscriber), shop.org)
    assert 'id="restricted-access"' not in html


# -- request, approve, reject ---------------------------------------------------------


def test_a_request_waits_for_approval_and_tells_the_deciders(
    world, shop, secret, client_for, django_capture_on_commit_callbacks
):
    client = client_for(world.subscriber)
    with django_capture_on_commit_callbacks(execute=True):
        response = request_access(client, shop.org)
    assert response.status_code == 302
    assert access(world.subscriber, shop.org) == RestrictedAccess.REQUESTED
    (message,) = mail.outbox
    assert sorted(message.to) == ["owner@acme.test", "publisher@acme.test"]
    assert "subscriber@acme.test asks for access" in message.subject
    assert "/t/acme/publisher/access/" in message.body
    html = catalog_html(client, shop.org)
    assert "has not decided yet" in html and "Partner Ledger" not in html
    # Asking again changes nothing and sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        request_access(client, shop.org)
    assert len(mail.outbox) == 1


def test_after_approval_the_subscriber_sees_and_subscribes(
    world, shop, secret, app, client_for, django_capture_on_commit_callbacks
):
    subscriber = client_for(world.subscriber)
    request_access(subscriber, shop.org)
    membership = Membership.objects.get(user=world.subscriber, organization=shop.org)

    publisher = client_for(world.publisher)
    page = publisher.get(reverse("publisher:access-list", args=[shop.org.slug]))
    assert page.status_code == 200
    assert "subscriber@acme.test" in page.content.decode().split('id="approved"')[0]
    with django_capture_on_commit_callbacks(execute=True):
        assert decide(publisher, shop.org, membership, "approve").status_code == 302
    membership.refresh_from_db()
    assert membership.restricted_access == RestrictedAccess.APPROVED
    assert membership.access_decided_by == world.publisher
    assert mail.outbox[-1].to == ["subscriber@acme.test"]
    assert "access to Acme's restricted APIs" in mail.outbox[-1].subject

    subscriber = client_for(world.subscriber)
    assert "Partner Ledger" in catalog_html(subscriber, shop.org)
    assert subscriber.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 200
    response = subscribe(subscriber, shop.org, secret, app, shop.free)
    assert response.status_code == 302
    assert Subscription.objects.get(api=secret).state == SubscriptionState.ACTIVE


def test_a_declined_subscriber_stays_out_and_cannot_ask_again(
    world, shop, secret, app, client_for
):
    subscriber = client_for(world.subscriber)
    request_access(subscriber, shop.org)
    membership = Membership.objects.get(user=world.subscriber, organization=shop.org)
    decide(client_for(world.owner), shop.org, membership, "reject")
    assert access(world.subscriber, shop.org) == RestrictedAccess.REJECTED

    subscriber = client_for(world.subscriber)
    assert "was declined" in catalog_html(subscriber, shop.org)
    assert subscriber.get(store_url(shop.org, f"apis/{secret.pk}/")).status_code == 404
    assert subscribe(subscriber, shop.org, secret, app, shop.free).status_code == 404
    again = request_access(subscriber, shop.org)
    assert again.status_code == 302
    assert access(world.subscriber, shop.org) == RestrictedAccess.REJECTED
    assert "was declined" in subscriber.get(again["Location"]).content.decode()


def test_subscribers_cannot_decide_and_owners_cannot_be_decided_on(
    world, shop, secret, client_for
):
    subscriber = client_for(world.subscriber)
    own = Membership.objects.get(user=world.subscriber, organization=shop.org)
    assert decide(subscriber, shop.org, own, "approve").status_code == 403
    assert access(world.subscriber, shop.org) == RestrictedAccess.NONE
    owner = Membership.objects.get(user=world.owner, organization=shop.org)
    assert decide(client_for(world.owner), shop.org, owner, "reject").status_code == 404
    # Another organization's subscriber, by id, through this organization: 404.
    foreign = membership_join_store(
        organization=world.other_org, user=make_user("them@globex.test")
    )
    assert (
        decide(client_for(world.owner), shop.org, foreign, "approve").status_code == 404
    )
    foreign.refresh_from_db()
    assert foreign.restricted_access == RestrictedAccess.NONE


# -- access taken back: what exists continues ---------------------------------------


def test_taking_access_back_keeps_live_subscriptions_manageable(
    world, shop, secret, app, client_for
):
    Membership.objects.filter(user=world.subscriber).update(
        restricted_access=RestrictedAccess.APPROVED
    )
    subscriber = client_for(world.subscriber)
    subscribe(subscriber, shop.org, secret, app, shop.free)
    sub = Subscription.objects.get(api=secret)
    membership = Membership.objects.get(user=world.subscriber, organization=shop.org)
    decide(client_for(world.owner), shop.org, membership, "reject")

    subscriber = client_for(world.subscriber)
    assert "Partner Ledger" not in catalog_html(subscriber, shop.org)
    # Their subscription and the API's page (to manage it) stay.
    assert (
        subscriber.get(store_url(shop.org, f"subscriptions/{sub.pk}/")).status_code
        == 200
    )
    page = subscriber.get(store_url(shop.org, f"apis/{secret.pk}/"))
    assert page.status_code == 200 and 'name="application"' not in page.content.decode()
    # No new subscription for another application.
    other = subscriber.post(
        store_url(shop.org, "applications/new/"), {"name": "Second app"}
    )
    assert other.status_code == 302
    second = Application.objects.get(name="Second app")
    refused = subscribe(subscriber, shop.org, secret, second, shop.free)
    assert refused.status_code == 200
    assert "for approved subscribers" in refused.content.decode()
    assert Subscription.objects.filter(api=secret).count() == 1


# -- invitations --------------------------------------------------------------------


def test_inviting_a_store_subscriber_approves_them_at_once(
    world, shop, secret, client_for
):
    response = client_for(world.publisher).post(
        reverse("publisher:access-list", args=[shop.org.slug]),
        {"email": "Subscriber@Acme.test"},
    )
    assert response.status_code == 302
    assert access(world.subscriber, shop.org) == RestrictedAccess.APPROVED
    assert not Invitation.objects.exists()


def test_inviting_someone_new_sends_a_subscriber_invitation_with_access(
    world, shop, secret, client, client_for
):
    response = client_for(world.publisher).post(
        reverse("publisher:access-list", args=[shop.org.slug]),
        {"email": "partner@example.test"},
    )
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.role == Role.SUBSCRIBER
    body = mail.outbox[-1].body
    assert "a subscriber with access to its restricted APIs" in body
    path = re.search(r"(/invitations/\S+/)", body).group(1)

    partner = make_user("partner@example.test")
    client = client_for(partner)
    assert client.post(path).status_code == 302
    membership = Membership.objects.get(user=partner, organization=shop.org)
    assert membership.role == Role.SUBSCRIBER
    assert membership.restricted_access == RestrictedAccess.APPROVED
    assert "Partner Ledger" in catalog_html(client, shop.org)


def test_a_subscriber_invitation_never_demotes_a_publisher(world, shop, client_for):
    from apimon.services import invitation_accept, invitation_create

    _invitation, token = invitation_create(
        organization=shop.org,
        email="someone@else.test",
        role=Role.SUBSCRIBER,
        invited_by=world.owner,
    )
    invitation_accept(token=token, user=world.publisher)
    assert Membership.objects.get(user=world.publisher).role == Role.PUBLISHER


def test_owners_and_publishers_need_no_invitation(world, shop, client_for):
    response = client_for(world.owner).post(
        reverse("publisher:access-list", args=[shop.org.slug]),
        {"email": "publisher@acme.test"},
    )
    assert response.status_code == 200
    assert "see every API already" in response.content.decode()
    assert not Invitation.objects.exists()


# -- the gateway and existing memberships ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_gateway_serves_a_subscription_whatever_the_access(metering, gateway):
    """Visibility decides who may subscribe; a subscription that exists is served."""
    from publisher.models import Api

    Api.objects.filter(pk=metering.api.pk).update(visibility=Visibility.RESTRICTED)
    Membership.objects.update_or_create(
        user=metering.subscriber,
        organization=metering.org,
        defaults={
            "role": Role.SUBSCRIBER,
            "restricted_access": RestrictedAccess.REJECTED,
        },
    )
    url = f"/gateway/{metering.org.slug}/weather/v1/fast"
    assert gateway.get(url, key=metering.key).status_code == 200


def test_the_migration_approves_subscribers_of_restricted_apis_only(
    world, shop, secret, app
):
    """Existing memberships: those with a live subscription to a restricted API keep
    access; everyone else who only joined asks like a newcomer."""
    from importlib import import_module

    from django.apps import apps

    from store import services

    migration = import_module("apimon.migrations.0004_membership_restricted_access")

    def subscription(application, state):
        Subscription.objects.create(
            organization=shop.org,
            application=application,
            api=secret,
            tier=shop.free,
            tier_version=shop.free.current_version,
            subscriber=application.owner,
            state=state,
        )

    subscription(app, SubscriptionState.ACTIVE)
    joined_only = membership_join_store(
        organization=shop.org, user=make_user("joined@example.test")
    )
    lapsed = make_user("lapsed@example.test")
    membership_join_store(organization=shop.org, user=lapsed)
    lapsed_app = services.application_create(
        organization=shop.org, owner=lapsed, name="Old"
    )
    subscription(lapsed_app, SubscriptionState.CANCELLED)
    migration.grant_live_restricted_subscribers(apps, None)

    assert access(world.subscriber, shop.org) == RestrictedAccess.APPROVED
    assert access(joined_only.user, shop.org) == RestrictedAccess.NONE
    assert access(lapsed, shop.org) == RestrictedAccess.NONE
    # Owners keep their role and see everything anyway.
    assert access(world.owner, shop.org) == RestrictedAccess.NONE
