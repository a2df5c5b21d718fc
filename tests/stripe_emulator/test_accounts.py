from __future__ import annotations

from typing import Any

import pytest
import stripe

from apimon import stripe_client as sc
from stripe_emulator import testing


def test_the_platform_account_is_the_default(stripe_client: Any) -> None:
    platform = stripe_client.v1.accounts.retrieve_current()

    assert platform.id.startswith("acct_")
    assert platform.charges_enabled is True


def test_an_account_created_by_the_platform_needs_onboarding(
    stripe_client: Any, stripe_emulator: Any
) -> None:
    account = stripe_client.v1.accounts.create(
        {
            "type": "standard",
            "country": "US",
            "email": "new@example.com",
            "metadata": {"org": "5"},
        }
    )
    assert account.id.startswith("acct_")
    assert (account.details_submitted, account.charges_enabled) == (False, False)
    assert "external_account" in account.requirements.currently_due

    link = stripe_client.v1.account_links.create(
        {
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "http://testserver/refresh",
            "return_url": "http://testserver/done",
        }
    )
    assert link.object == "account_link" and link.expires_at == link.created + 300
    status, _type, page = testing.get_page(stripe_emulator, link.url)
    assert status == 200 and "Agree and submit" in page

    back = testing.complete_onboarding(
        stripe_emulator, link.url, business_name="New Co"
    )

    assert back == "http://testserver/done"
    done = stripe_client.v1.accounts.retrieve(account.id)
    assert (done.details_submitted, done.charges_enabled, done.payouts_enabled) == (
        True,
        True,
        True,
    )
    assert done.business_profile.name == "New Co"
    assert done.requirements.currently_due == []
    event = stripe_client.v1.events.list(
        {"type": "account.updated"}, sc.request_options(account=account.id)
    ).data[0]
    assert event.account == account.id
    assert event.data.previous_attributes.charges_enabled is False
    assert event.data.previous_attributes.details_submitted is False
    # A used link, like an expired one, sends the user to refresh_url.
    from werkzeug.test import Client

    response = Client(stripe_emulator.app).get(
        link.url.removeprefix("http://127.0.0.1:12111")
    )
    assert response.status_code == 302 and response.headers["Location"] == (
        "http://testserver/refresh"
    )


def test_an_expired_account_link_redirects_to_refresh_url(
    stripe_client: Any, stripe_emulator: Any
) -> None:
    account = stripe_client.v1.accounts.create({"type": "standard"})
    link = stripe_client.v1.account_links.create(
        {
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "http://testserver/refresh",
            "return_url": "http://testserver/done",
        }
    )

    stripe_emulator.advance(301)

    from werkzeug.test import Client

    response = Client(stripe_emulator.app).get(
        link.url.removeprefix("http://127.0.0.1:12111")
    )
    assert response.headers["Location"] == "http://testserver/refresh"


def test_accounts_are_listed_and_updated(
    stripe_client: Any, stripe_account: str
) -> None:
    listed = stripe_client.v1.accounts.list()
    assert [a.id for a in listed.data] == [stripe_account]

    updated = stripe_client.v1.accounts.update(
        stripe_account, {"metadata": {"org": "9"}}
    )

    assert updated.metadata.org == "9"


def test_an_unknown_account_is_a_permission_error(stripe_client: Any) -> None:
    with pytest.raises(stripe.PermissionError) as excinfo:
        stripe_client.v1.accounts.retrieve("acct_1NotConnected00")

    assert excinfo.value.http_status == 403
    assert "does not have access to account 'acct_1NotConnected00'" in (
        excinfo.value.user_message
    )


def test_a_connected_account_sees_itself_as_the_current_account(
    stripe_client: Any, stripe_account: str, opts: dict[str, Any]
) -> None:
    current = stripe_client.v1.accounts.retrieve_current(None, opts)

    assert current.id == stripe_account
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.accounts.create({"type": "standard"}, opts)
