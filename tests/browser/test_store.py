"""The store in a real browser: a visitor signs up in the store, creates
an application, subscribes it to a paid tier by typing a test card on the (emulated)
Stripe Checkout page, and is back in the store with the subscription ACTIVE and a key
shown once."""

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from django.utils import timezone

from apimon.models import Membership, Organization, PlatformPlan, Role
from apimon.services import organization_create
from billing.models import StripeConnection
from pricing.rating import Pricing, PricingModel
from publisher import services as publisher_services
from publisher.models import QuotaUnit
from store import lifecycle
from store.keys import hash_key
from store.models import ApiKey, Subscription, SubscriptionState
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_user
from tests.fixtures.stripe import connect_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-demo-password-77"
DOCS = """# Weather API

Current conditions and forecasts for any city.

```
GET /forecast?city=Berlin
```
"""
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Weather", "version": "1"},
    "paths": {
        "/forecast": {"get": {"summary": "Forecast for a city", "responses": {}}},
        "/current": {"get": {"summary": "Current conditions", "responses": {}}},
    },
}


def prorated(fee_minor: int, start, end, at) -> int:
    """`fee_minor` × the part of [start, end) left at `at`, rounded half-up."""
    micro = timedelta(microseconds=1)
    share = Fraction(fee_minor) * Fraction((end - at) // micro, (end - start) // micro)
    return math.floor(share + Fraction(1, 2))


def utc_text(text: str) -> datetime:
    """'2 Dec 2026 19:45:18' (or '… 19:45' on the minute), as the lines show it."""
    pattern = "%d %b %Y %H:%M:%S" if text.count(":") == 2 else "%d %b %Y %H:%M"
    return datetime.strptime(text, pattern).replace(tzinfo=UTC)


def day(value: datetime) -> str:
    return f"{value.day} {value:%b %Y}"


def cents(amount: str) -> int:
    """'$12.34' → 1234."""
    return int(Decimal(amount.removeprefix("$").replace(",", "")) * 100)


def make_store(emulator) -> Organization:
    owner = make_user("owner@weather.test", password=PASSWORD)
    org = organization_create(user=owner, name="Weather Works")
    free = publisher_services.tier_create(
        organization=org,
        actor=owner,
        name="Free",
        description="Try it out.",
        limits=publisher_services.TierLimits(
            quota_limit=1000, quota_unit=QuotaUnit.DAY, rate_limit=5
        ),
    )
    gold = publisher_services.tier_create(
        organization=org,
        actor=owner,
        name="Gold",
        description="For production apps.",
        limits=publisher_services.TierLimits(
            quota_limit=100_000, quota_unit=QuotaUnit.PERIOD, stop_on_quota_reach=False
        ),
        price=publisher_services.TierPrice(
            pricing=Pricing(
                model=PricingModel.FLAT_PLUS_OVERAGE,
                currency="usd",
                fixed_fee=Decimal("19.00"),
                included_requests=100_000,
                overage_price=Decimal("0.50"),
                overage_block_size=1000,
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
        description="Current conditions and forecasts for any city.",
        documentation=DOCS,
        tags=["weather", "forecast"],
        openapi_spec=OPENAPI,
    )
    publisher_services.api_set_tiers(api=api, tiers=[free, gold], actor=owner)
    publisher_services.api_transition(api=api, action="publish", actor=owner)
    org.plan = PlatformPlan.objects.create(
        name="Pro", slug="pro", allows_monetization=True, monthly_price_minor=4900
    )
    org.save(update_fields=["plan"])
    StripeConnection.objects.create(
        organization=org,
        account_id=connect_account(emulator, business_name="Weather Works"),
        monetization_enabled=True,
    )
    return org


def test_a_subscriber_signs_up_subscribes_to_a_paid_tier_and_gets_a_key(
    page, live_server, live_stripe_emulator
):
    org = make_store(live_stripe_emulator.emulator)
    store = f"/t/{org.slug}/store/"

    page.goto(store)
    assert page.get_by_text("Weather API").first.is_visible()
    screenshot(page, "store-home")
    page.get_by_role("link", name="Sign up").first.click()
    page.fill("input[name=email]", "dev@example.test")
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"**{store}")
    membership = Membership.objects.get(user__email="dev@example.test")
    assert (membership.organization, membership.role) == (org, Role.SUBSCRIBER)

    # An application first, from the API page.
    page.get_by_role("link", name="Weather API").click()
    assert page.get_by_text("PAID", exact=True).count() == 0  # free + paid: FREEMIUM
    assert page.locator("#api-label").inner_text() == "FREEMIUM"
    page.get_by_role("link", name="Create an application").click()
    page.fill("input[name=name]", "Forecast dashboard")
    page.get_by_role("button", name="Create application").click()
    page.wait_for_url("**/apis/*/")
    screenshot(page, "store-api")

    page.locator("label.tier-option", has_text="Gold").click()
    page.get_by_role("button", name="Subscribe").click()

    # The emulator's Checkout page, on the publisher's connected account.
    page.wait_for_url(f"{live_stripe_emulator.url}/c/pay/**")
    page.fill("input[name=cardnumber]", "4242 4242 4242 4242")
    page.fill("input[name=exp-date]", "12 / 34")
    page.fill("input[name=cvc]", "123")
    page.get_by_role("button", name="Save card").click()

    page.wait_for_url("**/store/subscriptions/*/")
    sub = Subscription.objects.get(subscriber__email="dev@example.test")
    assert sub.state == SubscriptionState.ACTIVE
    assert page.locator("#state").inner_text() == "ACTIVE"
    assert page.get_by_text(
        "Your card is saved. The subscription is active."
    ).is_visible()
    assert "Visa •••• 4242" in page.locator("#card").inner_text()
    screenshot(page, "store-subscription-active")

    page.locator("#keys").get_by_role("button", name="Create key").click()
    raw = page.locator("#raw-key").inner_text().strip()
    key = ApiKey.objects.get(application=sub.application)
    assert raw.startswith(key.prefix) and hash_key(raw) == key.key_hash
    assert page.get_by_text("this is the only time it is shown").is_visible()
    screenshot(page, "store-key-once")

    page.get_by_role("link", name="Done").click()
    assert raw not in page.content()
    assert page.get_by_text(f"{key.prefix}…").first.is_visible()
    screenshot(page, "store-application")


def test_an_upgrade_from_free_with_a_preview_and_a_publisher_block(
    page, live_server, live_stripe_emulator
):
    from store import services

    org = make_store(live_stripe_emulator.emulator)
    api = org.apis.get()
    dev = make_user("dev@example.test", password=PASSWORD)
    Membership.objects.create(user=dev, organization=org, role=Role.SUBSCRIBER)
    app = services.application_create(organization=org, owner=dev, name="Dashboard")
    # Started ten days ago, as the store starts a free subscription: ten days into
    # its month.
    sub = lifecycle.create(
        application=app,
        api=api,
        tier=org.tiers.get(name="Free"),
        subscriber=dev,
        customer=None,
        at=timezone.now() - timedelta(days=10),
    )
    start, end = sub.current_period_start, sub.current_period_end

    log_in(page, "dev@example.test", PASSWORD)
    page.goto(f"/t/{org.slug}/store/subscriptions/{sub.pk}/")
    page.get_by_role("link", name="Change tier").click()
    before = timezone.now()
    page.locator("label.tier-option", has_text="Gold").click()  # htmx preview
    page.get_by_role("button", name="Add a card and change").wait_for()
    after = timezone.now()
    assert page.locator("#change-kind").inner_text().startswith("APPLIES NOW")
    # The next invoice, at the end of the period: the rest of this period on Gold
    # ($19.00 × the time left, prorated at the instant of the preview), then the
    # next period's fee. Free has no fee, so nothing is credited.
    lines = page.locator("#preview table.invoice-lines tbody tr")
    shown = [lines.nth(i).locator("td").all_inner_texts() for i in range(lines.count())]
    (proration, proration_amount), (fee, fee_amount), (total, total_amount) = shown
    shown_at, shown_end = re.fullmatch(
        r"Remaining time on Gold \((.+) – (.+) UTC\)", proration
    ).groups()
    assert before.replace(microsecond=0) <= utc_text(shown_at) <= after
    assert utc_text(shown_end) == end.replace(microsecond=0)
    possible = {prorated(1900, start, end, at) for at in (before, after)}
    assert cents(proration_amount) in possible
    assert fee.startswith(f"Flat fee {day(end)} – ")  # the next period's
    assert fee.endswith(" (includes 100,000 requests)") and fee_amount == "$19.00"
    assert total == "Total"
    assert cents(total_amount) == cents(proration_amount) + 1900
    screenshot(page, "store-change-tier")
    page.get_by_role("button", name="Add a card and change").click()
    page.wait_for_url(f"{live_stripe_emulator.url}/c/pay/**")
    page.fill("input[name=cardnumber]", "4242 4242 4242 4242")
    page.fill("input[name=exp-date]", "12 / 34")
    page.fill("input[name=cvc]", "123")
    page.get_by_role("button", name="Save card").click()
    page.wait_for_url(f"**/store/subscriptions/{sub.pk}/")
    sub.refresh_from_db()
    assert sub.tier.name == "Gold"
    assert "Gold tier" in page.locator(".page-head").inner_text()

    page.locator("#user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    log_in(page, "owner@weather.test", PASSWORD)
    page.goto(f"/t/{org.slug}/publisher/subscriptions/")
    screenshot(page, "publisher-subscriptions")
    page.get_by_role("link", name="dev@example.test").click()
    page.fill("textarea[name=reason]", "Unusual traffic from your key; write to us.")
    page.get_by_role("button", name="Block subscription").click()
    assert page.locator("#state").inner_text() == "BLOCKED"
    screenshot(page, "publisher-subscription-blocked")

    page.locator("#user-menu summary").click()
    page.get_by_role("button", name="Log out").click()
    log_in(page, "dev@example.test", PASSWORD)
    page.goto(f"/t/{org.slug}/store/subscriptions/{sub.pk}/")
    assert (
        "Unusual traffic from your key" in page.locator("#blocked-reason").inner_text()
    )
    screenshot(page, "store-subscription-blocked")
