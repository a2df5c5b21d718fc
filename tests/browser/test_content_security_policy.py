"""The main pages of every role in chromium with the Content-Security-Policy
enforced: none breaks it (chromium reports each refusal on the console), and what
the moved scripts do still works — charts draw, the copy button copies, the revoke
button asks first, the tier form's price preview updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apimon.models import Membership, Role
from apimon.services import organization_create
from gateway.models import UsageRecord
from gateway.redis import get_redis, reset_clients
from store import services as store_services
from store.models import ApiKey
from tests.billing.conftest import paid_invoice
from tests.browser.conftest import csp_violations, log_in
from tests.browser.test_store import PASSWORD as STORE_OWNER_PASSWORD
from tests.browser.test_store import make_store
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(stripe_emulator):
    """The browser store tests' organization (a published API on a free and a paid
    tier), with a publisher, a subscriber whose application is on the free tier and
    used it over the last days, a paid invoice, and another organization."""
    reset_clients()
    get_redis().flushdb()
    org = make_store(stripe_emulator)
    api = org.apis.get()
    for email, role in (
        ("publisher@weather.test", Role.PUBLISHER),
        ("subscriber@weather.test", Role.SUBSCRIBER),
    ):
        Membership.objects.create(user=make_user(email), organization=org, role=role)
    organization_create(user=make_user("owner@globex.test"), name="Globex")
    subscriber = get_user_model().objects.get(email="subscriber@weather.test")
    app = store_services.application_create(
        organization=org, owner=subscriber, name="Dashboard"
    )
    sub = store_services.subscription_create(
        application=app, api=api, tier=org.tiers.get(name="Free"), actor=subscriber
    ).subscription
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours_ago, count in ((50, 120), (26, 80), (2, 40)):
        UsageRecord.objects.create(
            organization=org,
            subscription=sub,
            hour=hour - timedelta(hours=hours_ago),
            count=count,
        )
    gold = org.tiers.get(name="Gold")
    paid_invoice(sub, version=gold.current_version, fee_minor=190)
    yield {"org": org, "api": api, "app": app, "sub": sub, "gold": gold}
    reset_clients()


def visit(page, paths: list[str]) -> None:
    for path in paths:
        response = page.goto(path)
        assert response.status < 400, (path, response.status)
        page.wait_for_load_state("load")


def chart_drawn(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "c => !!window.Chart && !!Chart.getChart(c)")


def test_anonymous_pages(page, shop):
    violations = csp_violations(page)
    visit(
        page,
        [
            "/",
            "/accounts/login/",
            "/accounts/signup/",
            "/t/weather-works/store/",
            f"/t/weather-works/store/apis/{shop['api'].pk}/",
            "/t/weather-works/store/signup/",
        ],
    )
    assert violations == []


def test_subscriber_pages_copy_a_key_and_confirm_its_revocation(page, shop):
    violations = csp_violations(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, "subscriber@weather.test", PASSWORD)
    sub, app = shop["sub"], shop["app"]
    visit(
        page,
        [
            "/home/",
            "/t/weather-works/store/",
            f"/t/weather-works/store/apis/{shop['api'].pk}/",
            "/t/weather-works/store/applications/",
            f"/t/weather-works/store/subscriptions/{sub.pk}/",
            f"/t/weather-works/store/subscriptions/{sub.pk}/change/",
            "/t/weather-works/store/invoices/",
        ],
    )
    page.goto(f"/t/weather-works/store/subscriptions/{sub.pk}/usage/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('canvas')].some(c => Chart.getChart(c))"
    )

    page.goto(f"/t/weather-works/store/applications/{app.pk}/")
    page.get_by_role("button", name="Create key").click()
    raw = page.locator("#raw-key").inner_text().strip()
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw

    page.get_by_role("link", name="Done").click()
    dialogs = []
    page.once(
        "dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss())
    )
    page.get_by_role("button", name="Revoke").click()
    assert dialogs and "It stops working at once." in dialogs[0]
    assert ApiKey.objects.get().revoked_at is None  # dismissed: nothing happened
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    page.wait_for_url(f"**/applications/{app.pk}/")
    assert ApiKey.objects.get().revoked_at is not None
    assert violations == []


def test_publisher_pages_with_charts_and_the_live_price_preview(page, shop):
    violations = csp_violations(page)
    log_in(page, "publisher@weather.test", PASSWORD)
    api = shop["api"]
    visit(
        page,
        [
            "/t/weather-works/publisher/",
            "/t/weather-works/publisher/apis/",
            f"/t/weather-works/publisher/apis/{api.pk}/",
            f"/t/weather-works/publisher/apis/{api.pk}/edit/",
            "/t/weather-works/publisher/tiers/",
            f"/t/weather-works/publisher/tiers/{shop['gold'].pk}/",
            "/t/weather-works/publisher/subscriptions/",
        ],
    )
    page.goto("/t/weather-works/publisher/usage/")
    assert chart_drawn(page, "#publisher-usage-daily")
    page.goto("/t/weather-works/publisher/revenue/")
    assert chart_drawn(page, "canvas.revenue-chart")

    page.goto("/t/weather-works/publisher/tiers/new/")
    page.locator("input[name=billing_plan][value=COMMERCIAL]").check()
    page.fill("input[name=fixed_fee]", "25")
    page.locator("#price-preview").get_by_text("$25.00").first.wait_for()
    # The requests' row shows the fields of its model (static/js/tier-form.js).
    page.select_option("select[name=meter-requests-pricing_model]", "PER_UNIT")
    page.fill("input[name=meter-requests-unit_price]", "0.001")
    page.locator("#preview-requests").get_by_text("$1.00").first.wait_for()
    assert violations == []


def test_owner_and_outsider_pages(page, shop):
    violations = csp_violations(page)
    log_in(page, "owner@weather.test", STORE_OWNER_PASSWORD)
    visit(
        page,
        [
            "/t/weather-works/settings/members/",
            "/t/weather-works/publisher/monetization/",
            "/t/weather-works/publisher/monetization/plans/",
            "/t/weather-works/publisher/ingest-tokens/",
        ],
    )
    page.get_by_role("button", name="New token").click()
    page.locator("#raw-token").wait_for()
    page.locator("#user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    log_in(page, "owner@globex.test", PASSWORD)
    visit(page, ["/home/", "/orgs/new/", "/t/globex/publisher/"])
    assert violations == []


def test_the_operators_admin(page, shop):
    violations = csp_violations(page)
    get_user_model().objects.create_superuser(
        email="operator@apimon.test", password=PASSWORD
    )
    log_in(page, "operator@apimon.test", PASSWORD)
    visit(
        page,
        [
            "/admin/",
            "/admin/publisher/api/",
            f"/admin/publisher/api/{shop['api'].pk}/change/",
            "/admin/store/subscription/",
            f"/admin/store/subscription/{shop['sub'].pk}/change/",
        ],
    )
    assert violations == []
