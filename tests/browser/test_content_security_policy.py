"""The main pages of every role in chromium with the Content-Security-Policy
enforced: none breaks it (chromium reports each refusal on the console), and what
the moved scripts do still works — charts draw, the copy button copies, the revoke
button asks first, the tier form's price preview updates."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apimon.models import Membership, Role
from apimon.services import organization_create
from billing.models import Invoice, InvoiceKind, InvoiceStatus
from billing.rating import Pricing, PricingModel
from gateway.models import UsageRecord
from gateway.redis import get_redis, reset_clients
from publisher import services as publisher_services
from publisher.models import QuotaUnit
from store import services as store_services
from store.models import ApiKey
from tests.browser.conftest import csp_violations, log_in
from tests.conftest import PASSWORD, make_user
from tests.publisher.test_openapi import SPEC

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme():
    """An organization with a published API on a free and a paid tier, a
    subscriber with an application, usage over the last days and a paid invoice."""
    reset_clients()
    get_redis().flushdb()
    owner = make_user("owner@acme.test")
    org = organization_create(user=owner, name="Acme")
    for email, role in (
        ("publisher@acme.test", Role.PUBLISHER),
        ("subscriber@acme.test", Role.SUBSCRIBER),
    ):
        Membership.objects.create(user=make_user(email), organization=org, role=role)
    organization_create(user=make_user("owner@globex.test"), name="Globex")
    free = publisher_services.tier_create(
        organization=org,
        actor=owner,
        name="Free",
        limits=publisher_services.TierLimits(
            quota_limit=1000, quota_unit=QuotaUnit.DAY
        ),
    )
    gold = publisher_services.tier_create(
        organization=org,
        actor=owner,
        name="Gold",
        limits=publisher_services.TierLimits(),
        price=publisher_services.TierPrice(
            pricing=Pricing(
                model=PricingModel.FLAT, currency="usd", fixed_fee=Decimal("19.00")
            )
        ),
    )
    api = publisher_services.api_create(
        organization=org,
        actor=owner,
        name="Weather API",
        version="v1",
        context="weather",
        backend_url="https://backend.example.com/",
        documentation="# Weather\n\nCall **/current**.",
        openapi_spec=SPEC,
        tags=["weather"],
    )
    publisher_services.api_set_tiers(api=api, tiers=[free, gold], actor=owner)
    publisher_services.api_transition(api=api, action="publish", actor=owner)
    subscriber = get_user_model().objects.get(email="subscriber@acme.test")
    app = store_services.application_create(
        organization=org, owner=subscriber, name="Dashboard"
    )
    sub = store_services.subscription_create(
        application=app, api=api, tier=free, actor=subscriber
    ).subscription
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours_ago, count in ((50, 120), (26, 80), (2, 40)):
        UsageRecord.objects.create(
            organization=org,
            subscription=sub,
            hour=hour - timedelta(hours=hours_ago),
            count=count,
        )
    now = timezone.now()
    Invoice.objects.create(
        organization=org,
        subscription=sub,
        kind=InvoiceKind.RENEWAL,
        number="ACME-000001",
        status=InvoiceStatus.PAID,
        period_start=now - timedelta(days=30),
        period_end=now,
        currency="usd",
        total_minor=1900,
        application_fee_minor=190,
        api=api,
        tier_version=gold.current_version,
        paid_at=now,
    )
    yield {"org": org, "api": api, "app": app, "sub": sub, "gold": gold}
    reset_clients()


def visit(page, paths: list[str]) -> None:
    for path in paths:
        response = page.goto(path)
        assert response.status < 400, (path, response.status)
        page.wait_for_load_state("load")


def chart_drawn(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "c => !!window.Chart && !!Chart.getChart(c)")


def test_anonymous_pages(page, acme):
    violations = csp_violations(page)
    visit(
        page,
        [
            "/",
            "/accounts/login/",
            "/accounts/signup/",
            "/t/acme/store/",
            f"/t/acme/store/apis/{acme['api'].pk}/",
            "/t/acme/store/signup/",
        ],
    )
    assert violations == []


def test_subscriber_pages_copy_a_key_and_confirm_its_revocation(page, acme):
    violations = csp_violations(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, "subscriber@acme.test", PASSWORD)
    sub, app = acme["sub"], acme["app"]
    visit(
        page,
        [
            "/home/",
            "/t/acme/store/",
            f"/t/acme/store/apis/{acme['api'].pk}/",
            "/t/acme/store/applications/",
            f"/t/acme/store/subscriptions/{sub.pk}/",
            f"/t/acme/store/subscriptions/{sub.pk}/change/",
            "/t/acme/store/invoices/",
        ],
    )
    page.goto(f"/t/acme/store/subscriptions/{sub.pk}/usage/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('canvas')].some(c => Chart.getChart(c))"
    )

    page.goto(f"/t/acme/store/applications/{app.pk}/")
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


def test_publisher_pages_with_charts_and_the_live_price_preview(page, acme):
    violations = csp_violations(page)
    log_in(page, "publisher@acme.test", PASSWORD)
    api = acme["api"]
    visit(
        page,
        [
            "/t/acme/publisher/",
            "/t/acme/publisher/apis/",
            f"/t/acme/publisher/apis/{api.pk}/",
            f"/t/acme/publisher/apis/{api.pk}/edit/",
            "/t/acme/publisher/tiers/",
            f"/t/acme/publisher/tiers/{acme['gold'].pk}/",
            "/t/acme/publisher/subscriptions/",
        ],
    )
    page.goto("/t/acme/publisher/usage/")
    assert chart_drawn(page, "#publisher-usage-daily")
    page.goto("/t/acme/publisher/revenue/")
    assert chart_drawn(page, "canvas.revenue-chart")

    page.goto("/t/acme/publisher/tiers/new/")
    page.locator("input[name=billing_plan][value=COMMERCIAL]").check()
    page.select_option("select[name=pricing_model]", "FLAT")
    page.fill("input[name=fixed_fee]", "25")
    page.locator("#price-preview").get_by_text("$25.00").first.wait_for()
    assert violations == []


def test_owner_and_outsider_pages(page, acme):
    violations = csp_violations(page)
    log_in(page, "owner@acme.test", PASSWORD)
    visit(
        page,
        [
            "/t/acme/settings/members/",
            "/t/acme/publisher/monetization/",
            "/t/acme/publisher/monetization/plans/",
            "/t/acme/publisher/ingest-tokens/",
        ],
    )
    page.get_by_role("button", name="New token").click()
    page.locator("#raw-token").wait_for()
    page.locator("#user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    log_in(page, "owner@globex.test", PASSWORD)
    visit(page, ["/home/", "/orgs/new/", "/t/globex/publisher/"])
    assert violations == []


def test_the_operators_admin(page, acme):
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
            f"/admin/publisher/api/{acme['api'].pk}/change/",
            "/admin/store/subscription/",
            f"/admin/store/subscription/{acme['sub'].pk}/change/",
        ],
    )
    assert violations == []
