"""Two-factor authentication in a real browser: an owner follows the prompt on the
Members page, sets up an authenticator app from the page's secret (the QR code is
shown in apimon's layout), and the next login asks for the code."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator

from apimon.models import Membership, Role, User
from apimon.services import organization_create
from tests.browser.conftest import log_in, screenshot
from tests.helpers import totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-demo-password-77"


def test_an_owner_sets_up_an_authenticator_app_and_logs_in_with_it(page):
    owner = User.objects.create_user(email="owner@example.test", password=PASSWORD)
    org = organization_create(user=owner, name="Weather Works")
    assert Membership.objects.get(user=owner, organization=org).role == Role.OWNER
    log_in(page, owner.email, PASSWORD)

    page.goto(f"/t/{org.slug}/settings/members/")
    prompt = page.locator("#mfa-prompt")
    assert prompt.is_visible()
    prompt.get_by_role("link", name="Set up two-factor authentication").click()
    # allauth asks for the password again before a second factor is added.
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/accounts/2fa/totp/activate/")

    qr = page.locator("img[src^='data:image/svg+xml']")
    assert qr.is_visible()
    box = qr.bounding_box()
    assert box and box["width"] >= 120 and box["height"] >= 120
    assert page.locator("nav.navbar").is_visible()  # apimon's layout, not a bare page
    secret = page.locator("#authenticator_secret").input_value()
    screenshot(page, "mfa-totp-setup")

    used = totp_code(secret)
    page.fill("input[name=code]", used)
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url("**/accounts/2fa/recovery-codes/")
    assert Authenticator.objects.filter(
        user=owner, type=Authenticator.Type.TOTP
    ).exists()
    screenshot(page, "mfa-recovery-codes")

    page.locator("#user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    page.goto("/accounts/login/")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/accounts/2fa/authenticate/")
    screenshot(page, "mfa-login-code")
    # A code works once: wait for the app's next one, as a person would.
    while (code := totp_code(secret)) == used:
        time.sleep(1)
    page.fill("input[name=code]", code)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/" not in url)
    page.goto(f"/t/{org.slug}/settings/members/")
    assert page.locator("#mfa-prompt").count() == 0
