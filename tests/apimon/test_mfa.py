"""Two-factor authentication (allauth.mfa: an authenticator app and recovery codes)
for every user; required for operator accounts before the admin when
MFA_REQUIRED_FOR_STAFF is on; offered to owners on their settings pages."""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.test import Client
from django.urls import reverse

from apimon.models import User
from tests.conftest import PASSWORD
from tests.helpers import totp_code

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
pytestmark = pytest.mark.usefixtures("fresh_cache")


def log_in(client: Client, user: User, next_url: str = "/home/"):
    return client.post(
        reverse("account_login") + f"?next={next_url}",
        {"login": user.email, "password": PASSWORD},
    )


def activation_page(client: Client):
    """The authenticator app's set-up page; allauth asks for the password again
    first (adding a second factor is a sensitive change)."""
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("account_reauthenticate"))
    client.post(page["Location"], {"password": PASSWORD})
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    return page


def is_signed_in(client: Client) -> bool:
    return client.get(reverse("home")).status_code == 200


def with_totp(user: User) -> list[str]:
    """Turn on an authenticator app with SECRET; the user's recovery codes."""
    TOTP.activate(user, SECRET)
    return RecoveryCodes.activate(user).get_unused_codes()


# -- setting it up ------------------------------------------------------------------


def test_a_user_sets_up_an_authenticator_app_with_a_real_code(client, world):
    log_in(client, world.subscriber)
    page = activation_page(client)
    secret = page.context["form"].secret
    html = page.content.decode()
    assert secret in html and "data:image/svg+xml;base64," in html  # the QR code
    wrong = client.post(reverse("mfa_activate_totp"), {"code": "000000"})
    assert wrong.status_code == 200 and "Incorrect code" in wrong.content.decode()
    assert not Authenticator.objects.filter(user=world.subscriber).exists()

    done = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert done.status_code == 302
    assert done["Location"] == reverse("mfa_view_recovery_codes")
    kinds = set(
        Authenticator.objects.filter(user=world.subscriber).values_list(
            "type", flat=True
        )
    )
    assert kinds == {Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES}
    codes = client.get(done["Location"])
    unused = RecoveryCodes(
        Authenticator.objects.get(
            user=world.subscriber, type=Authenticator.Type.RECOVERY_CODES
        )
    ).get_unused_codes()
    assert len(unused) == 10 and all(code in codes.content.decode() for code in unused)


def test_every_user_finds_it_in_the_account_menu(client_for, world):
    html = client_for(world.subscriber).get(reverse("home")).content.decode()
    assert reverse("mfa_index") in html and "Two-factor authentication" in html


# -- logging in with it -------------------------------------------------------------


def test_login_asks_for_the_code_after_the_password(client, world):
    with_totp(world.owner)
    response = log_in(client, world.owner)
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    assert not is_signed_in(client)  # the password alone is not enough

    wrong = client.post(reverse("mfa_authenticate"), {"code": "123456"})
    assert wrong.status_code == 200 and "Incorrect code" in wrong.content.decode()
    assert not is_signed_in(client)

    right = client.post(reverse("mfa_authenticate"), {"code": totp_code(SECRET)})
    assert right.status_code == 302 and right["Location"] == "/home/"
    assert is_signed_in(client)


def test_a_recovery_code_works_once(world):
    codes = with_totp(world.owner)
    first = Client()
    log_in(first, world.owner)
    assert (
        first.post(reverse("mfa_authenticate"), {"code": codes[0]}).status_code == 302
    )
    assert is_signed_in(first)

    again = Client()
    log_in(again, world.owner)
    reused = again.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert reused.status_code == 200 and "Incorrect code" in reused.content.decode()
    assert not is_signed_in(again)
    assert (
        again.post(reverse("mfa_authenticate"), {"code": codes[1]}).status_code == 302
    )
    assert is_signed_in(again)


# -- operators ---------------------------------------------------------------------


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser(email="op@apimon.test", password=PASSWORD)


def test_an_operator_without_mfa_is_sent_to_set_it_up_when_required(
    client, operator, settings
):
    settings.MFA_REQUIRED_FOR_STAFF = True
    log_in(client, operator, "/admin/")
    for url in (reverse("admin:index"), reverse("admin:apimon_user_changelist")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == reverse("mfa_activate_totp")
    # Setting it up opens the admin.
    page = activation_page(client)
    assert "Operator accounts need two-factor authentication" in page.content.decode()
    secret = page.context["form"].secret
    client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert client.get(reverse("admin:index")).status_code == 200


def test_an_operator_without_mfa_may_still_log_out_of_the_admin(
    client, operator, settings
):
    settings.MFA_REQUIRED_FOR_STAFF = True
    log_in(client, operator, "/admin/")
    client.post(reverse("admin:logout"))
    assert not is_signed_in(client)


def test_an_operator_with_mfa_logs_in_with_the_code_and_opens_the_admin(
    client, operator, settings
):
    settings.MFA_REQUIRED_FOR_STAFF = True
    with_totp(operator)
    entry = client.get(reverse("admin:index"), follow=True)
    assert entry.redirect_chain[-1][0].startswith(reverse("account_login"))
    response = log_in(client, operator, "/admin/")
    assert response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("admin:index")).status_code == 302  # not yet
    done = client.post(reverse("mfa_authenticate"), {"code": totp_code(SECRET)})
    assert done["Location"] == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200


def test_relaxed_the_admin_opens_without_mfa(client, operator, settings):
    settings.MFA_REQUIRED_FOR_STAFF = False
    log_in(client, operator, "/admin/")
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_requirement_is_for_operators_only(client, world, settings):
    settings.MFA_REQUIRED_FOR_STAFF = True
    log_in(client, world.owner)
    assert client.get(reverse("members", args=[world.org.slug])).status_code == 200


# -- offered to owners ---------------------------------------------------------------


def test_owners_are_offered_mfa_on_their_settings_pages(client_for, world):
    client = client_for(world.owner)
    for url in (
        reverse("members", args=[world.org.slug]),
        reverse("monetization:status", args=[world.org.slug]),
        reverse("home"),
    ):
        html = client.get(url).content.decode()
        assert 'id="mfa-prompt"' in html, url
        assert reverse("mfa_activate_totp") in html
    with_totp(world.owner)
    html = client.get(reverse("members", args=[world.org.slug])).content.decode()
    assert 'id="mfa-prompt"' not in html


def test_a_subscriber_gets_no_owners_prompt(client_for, world):
    html = client_for(world.subscriber).get(reverse("home")).content.decode()
    assert 'id="mfa-prompt"' not in html


def test_guessing_codes_locks_the_second_step_too(client, world):
    with_totp(world.owner)
    log_in(client, world.owner)
    for guess in ("111111", "222222", "333333", "444444", "555555"):
        client.post(reverse("mfa_authenticate"), {"code": guess})
    locked = client.post(reverse("mfa_authenticate"), {"code": totp_code(SECRET)})
    assert locked.status_code == 200
    assert "Too many failed login attempts" in locked.content.decode()
    assert not is_signed_in(client)
