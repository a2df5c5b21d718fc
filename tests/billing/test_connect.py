"""Connect with Stripe (OAuth, Standard accounts): the happy path and every failure,
each ending on a clear page that changed nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.models import Membership, Role
from apimon.payment_errors import StripeAccessDenied
from billing.models import OAuthState, StripeConnection
from stripe_emulator import testing
from tests.billing.conftest import (
    connect_through_apimon,
    path_of,
    put_on_plan,
    query,
    start_connect,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

CALLBACK = "/billing/stripe/connect/callback/"


def test_connect_sends_the_owner_to_stripes_authorize_page(
    paid_org, owner_client, stripe_emulator
):
    url = start_connect(owner_client, paid_org)

    assert url.startswith("http://127.0.0.1:12111/oauth/authorize?")
    params = query(url)
    assert params["scope"] == "read_write"
    assert params["response_type"] == "code"
    assert params["client_id"] == "ca_emulator_apimon"
    assert params["redirect_uri"] == "http://127.0.0.1:8000" + CALLBACK
    assert params["stripe_user[email]"] == "owner@acme.test"
    state = OAuthState.objects.get()
    assert state.organization == paid_org
    assert len(params["state"]) >= 40 and params["state"] != state.state_hash
    assert state.expires_at - state.created_at == timedelta(minutes=10)


def test_the_callback_stores_the_connected_account_and_reads_it(
    paid_org, owner_client, stripe_emulator, world
):
    response = connect_through_apimon(
        owner_client, stripe_emulator, paid_org, country="DE", business_name="Acme GmbH"
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("monetization:status", args=[paid_org.slug])
    connection = StripeConnection.objects.get(organization=paid_org)
    assert connection.account_id.startswith("acct_")
    assert connection.country == "DE"
    assert connection.default_currency == "eur"
    assert connection.charges_enabled and connection.payouts_enabled
    assert connection.connected_by == world.owner
    assert not connection.monetization_enabled
    assert connection.account_data["business_name"] == "Acme GmbH"
    page = owner_client.get(response["Location"]).content.decode()
    assert f"Your Stripe account {connection.account_id} is connected" in page
    assert "Enable Monetization" in page
    # No secret is kept: only the account id.
    assert "sk_" not in str(connection.account_data)


def _denied_path(authorize_url: str) -> str:
    state = query(authorize_url)["state"]
    return (
        f"{CALLBACK}?error=access_denied&error_description=The+user+denied+your+"
        f"request&state={state}"
    )


def test_denying_access_ends_on_a_page_that_says_so(
    paid_org, owner_client, stripe_emulator
):
    url = start_connect(owner_client, paid_org)

    response = owner_client.get(_denied_path(url))

    assert response.status_code == 200
    assert "You did not connect a Stripe account" in response.content.decode()
    assert not StripeConnection.objects.exists()
    # The state was spent: the same link cannot be used to connect afterwards.
    assert OAuthState.objects.get().used_at is not None


@pytest.mark.parametrize(
    ("state", "reason"),
    [("", "missing_state"), ("not-a-state-apimon-made", "unknown_state")],
)
def test_a_missing_or_unknown_state_is_refused(
    paid_org, owner_client, stripe_emulator, state, reason
):
    url = start_connect(owner_client, paid_org)
    code = testing.code_from(testing.authorize(stripe_emulator, url))

    response = owner_client.get(f"{CALLBACK}?code={code}&state={state}")

    assert response.status_code == 400
    assert f'data-reason="{reason}"' in response.content.decode()
    assert not StripeConnection.objects.exists()


def test_an_expired_state_is_refused(paid_org, owner_client, stripe_emulator):
    url = start_connect(owner_client, paid_org)
    back = testing.authorize(stripe_emulator, url)
    OAuthState.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = owner_client.get(path_of(back))

    assert response.status_code == 400
    assert "This link has expired" in response.content.decode()
    assert not StripeConnection.objects.exists()


def test_a_state_works_once(paid_org, owner_client, stripe_emulator):
    url = start_connect(owner_client, paid_org)
    back = testing.authorize(stripe_emulator, url)
    assert owner_client.get(path_of(back)).status_code == 302
    StripeConnection.objects.all().delete()

    again = owner_client.get(path_of(back))

    assert again.status_code == 400
    assert "This link was already used" in again.content.decode()
    assert not StripeConnection.objects.exists()


def test_a_code_already_used_is_refused(paid_org, owner_client, stripe_emulator):
    url = start_connect(owner_client, paid_org)
    back = testing.authorize(stripe_emulator, url)
    sc.oauth_exchange(testing.code_from(back))  # someone else used the code first

    response = owner_client.get(path_of(back))

    assert response.status_code == 400
    assert "This authorization was already used" in response.content.decode()
    assert not StripeConnection.objects.exists()


def test_the_state_is_bound_to_the_session(
    paid_org, owner_client, stripe_emulator, world, client
):
    url = start_connect(owner_client, paid_org)
    back = testing.authorize(stripe_emulator, url)
    owner_client.logout()  # a new sign-in is a new session
    client.force_login(world.owner, backend="django.contrib.auth.backends.ModelBackend")

    response = client.get(path_of(back))

    assert response.status_code == 400
    assert "another sign-in" in response.content.decode()
    assert not StripeConnection.objects.exists()


def test_the_state_is_bound_to_the_user(
    paid_org, owner_client, stripe_emulator, world, client_for
):
    other_owner = make_user("second-owner@acme.test")
    Membership.objects.create(user=other_owner, organization=paid_org, role=Role.OWNER)
    url = start_connect(owner_client, paid_org)
    back = testing.authorize(stripe_emulator, url)

    response = client_for(other_owner).get(path_of(back))

    assert response.status_code == 400
    assert not StripeConnection.objects.exists()


def test_a_user_who_is_no_longer_owner_cannot_finish(
    paid_org, owner_client, stripe_emulator, world
):
    url = start_connect(owner_client, paid_org)
    back = testing.authorize(stripe_emulator, url)
    Membership.objects.filter(user=world.owner, organization=paid_org).update(
        role=Role.PUBLISHER
    )

    response = owner_client.get(path_of(back))

    assert response.status_code == 400
    assert "no longer an owner" in response.content.decode()
    assert not StripeConnection.objects.exists()


def test_an_account_connected_to_another_organization_is_refused(
    paid_org, owner_client, stripe_emulator, world, client_for
):
    put_on_plan(world.other_org)
    outsider = client_for(world.outsider)
    assert (
        connect_through_apimon(outsider, stripe_emulator, world.other_org).status_code
        == 302
    )
    taken = StripeConnection.objects.get(organization=world.other_org).account_id

    owner = client_for(world.owner)
    url = start_connect(owner, paid_org)
    back = testing.authorize(stripe_emulator, url, existing_account=taken)
    response = owner.get(path_of(back))

    assert response.status_code == 400
    assert "already connected to another organization" in response.content.decode()
    assert not StripeConnection.objects.filter(organization=paid_org).exists()
    # The other organization keeps its connection, on apimon and on Stripe.
    assert StripeConnection.objects.get(organization=world.other_org).is_connected
    sc.get_client().v1.accounts.retrieve(taken)


def test_an_account_in_a_country_without_payouts_is_refused_and_released(
    paid_org, owner_client, stripe_emulator
):
    response = connect_through_apimon(
        owner_client, stripe_emulator, paid_org, country="IR"
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "Stripe cannot pay out to this account" in page
    assert "(IR)" in page
    assert not StripeConnection.objects.exists()
    # apimon gave up its access to that account.
    accounts = stripe_emulator.store.list("account", account=None)
    iranian = [a for a in accounts if a.get("country") == "IR"]
    assert iranian
    with pytest.raises(StripeAccessDenied):
        sc.get_client().v1.customers.list(
            {}, sc.request_options(account=iranian[0]["id"])
        )


def test_a_trial_organization_cannot_connect(world, owner_client, stripe_emulator):
    response = owner_client.post(reverse("monetization:connect", args=[world.org.slug]))

    assert response.status_code == 302
    assert response["Location"] == reverse("monetization:status", args=[world.org.slug])
    assert not OAuthState.objects.exists()


def test_the_callback_needs_a_signed_in_user(client):
    response = client.get(f"{CALLBACK}?code=ac_x&state=y")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_outsider_cannot_start_a_connection_for_another_organization(
    paid_org, world, client_for, stripe_emulator
):
    response = client_for(world.outsider).post(
        reverse("monetization:connect", args=[paid_org.slug])
    )

    assert response.status_code == 404
    assert not OAuthState.objects.exists()
