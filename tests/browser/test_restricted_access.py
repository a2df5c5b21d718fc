"""A restricted API in a real browser: a subscriber who joined the store does not see
it and asks for access; a publisher approves on the Subscriber access page; the
subscriber then finds it in the catalog."""

from __future__ import annotations

import pytest

from apimon.models import Membership, Role
from apimon.services import organization_create
from publisher.models import Visibility
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_user
from tests.publisher.helpers import make_api, make_tier

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-demo-password-77"


def test_a_subscriber_asks_a_publisher_approves_and_the_api_appears(page, browser):
    owner = make_user("owner@example.test", PASSWORD)
    org = organization_create(user=owner, name="Weather Works")
    free = make_tier(org, "Free")
    make_api(org, name="Forecast", context="forecast", tiers=[free], publish=True)
    make_api(
        org,
        name="Partner Ledger",
        context="ledger",
        tiers=[free],
        publish=True,
        visibility=Visibility.RESTRICTED,
    )
    subscriber = make_user("dev@example.test", PASSWORD)
    Membership.objects.create(user=subscriber, organization=org, role=Role.SUBSCRIBER)

    log_in(page, subscriber.email, PASSWORD)
    page.goto(f"/t/{org.slug}/store/")
    catalog = page.locator("#catalog")
    assert catalog.get_by_text("Forecast").is_visible()
    assert catalog.get_by_text("Partner Ledger").count() == 0
    page.locator("#restricted-access").get_by_role(
        "button", name="Request access"
    ).click()
    assert page.get_by_text("Your request is sent to Weather Works").is_visible()
    assert page.get_by_text("has not decided yet").is_visible()
    screenshot(page, "store-access-requested")

    owner_page = browser.new_context(base_url=page.url.split("/t/")[0]).new_page()
    log_in(owner_page, owner.email, PASSWORD)
    owner_page.goto(f"/t/{org.slug}/publisher/")
    owner_page.get_by_role("link", name="Subscriber access").click()
    requests = owner_page.locator("#requests")
    assert requests.get_by_text("dev@example.test").is_visible()
    screenshot(owner_page, "publisher-subscriber-access")
    requests.get_by_role("button", name="Approve dev@example.test").click()
    assert owner_page.locator("#approved").get_by_text("dev@example.test").is_visible()
    owner_page.context.close()

    page.goto(f"/t/{org.slug}/store/")
    assert page.locator("#catalog").get_by_text("Partner Ledger").is_visible()
    assert page.locator("#restricted-access").count() == 0
