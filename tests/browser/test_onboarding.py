"""Onboarding in a real browser: sign up, create an organization, invite a
publisher (the link from the email), and a second user signs up in the store."""

import re

import pytest
from django.core import mail

from apimon.models import Membership, Role
from tests.browser.conftest import screenshot, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-demo-password-77"


def test_a_new_user_creates_an_organization_invites_a_publisher_and_a_subscriber_joins(
    page, live_server
):
    page.goto("/")
    screenshot(page, "landing")
    page.get_by_role("link", name="Create an account").click()
    sign_up(page, "founder@example.test", PASSWORD)
    page.get_by_role("link", name="New organization").first.click()
    page.fill("input[name=name]", "Weather Works")
    page.get_by_role("button", name="Create organization").click()
    page.wait_for_url("**/t/weather-works/publisher/")
    assert "Weather Works is ready" in page.content()

    page.locator("#settings-menu summary").click()
    page.locator("#settings-menu").get_by_role("link", name="Members").click()
    page.fill("input[name=email]", "pub@example.test")
    page.get_by_role("button", name="Send invitation").click()
    assert page.get_by_text("Invitation sent to pub@example.test").is_visible()
    screenshot(page, "members")
    link = re.search(r"http://\S+/invitations/\S+/", mail.outbox[-1].body).group(0)
    path = "/invitations/" + link.rsplit("/invitations/", 1)[1]

    page.locator("#user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    page.goto(path)
    page.get_by_role("link", name="Sign up to accept").click()
    sign_up(page, "pub@example.test", PASSWORD)
    page.wait_for_url(f"**{path}")
    page.get_by_role("button", name="Accept invitation").click()
    page.wait_for_url("**/t/weather-works/publisher/")
    assert Membership.objects.get(user__email="pub@example.test").role == Role.PUBLISHER

    page.locator("#user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    page.goto("/t/weather-works/store/")
    page.get_by_role("link", name="Sign up").first.click()
    assert "Sign up to Weather Works" in page.content()
    sign_up(page, "dev@example.test", PASSWORD)
    page.wait_for_url("**/t/weather-works/store/")
    screenshot(page, "store-after-signup")
    membership = Membership.objects.get(user__email="dev@example.test")
    assert membership.role == Role.SUBSCRIBER
    assert membership.organization.slug == "weather-works"
