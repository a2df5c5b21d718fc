"""The publisher console in a real browser: a publisher creates a GRADUATED tier with bands and
watches the live price preview, creates an API, offers it on the tier and publishes
it."""

import pytest

from apimon.services import organization_create
from publisher.models import Api, ApiState, PriceBand, Tier
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_publisher_prices_a_tier_and_publishes_an_api_on_it(page):
    owner = make_user("founder@example.test")
    organization_create(user=owner, name="Weather Works")
    log_in(page, "founder@example.test", PASSWORD)

    # A graduated tier, with the preview following the form as it is filled in.
    page.goto("/t/weather-works/publisher/")
    page.get_by_role("link", name="Tiers", exact=True).click()
    page.get_by_role("link", name="New tier").first.click()
    page.fill("input[name=name]", "Scale")
    preview = page.locator("#price-preview")
    assert "pay nothing" in preview.inner_text()
    page.get_by_label("Commercial").check()
    assert page.locator("#band-table").is_hidden()
    page.select_option("select[name=pricing_model]", "GRADUATED")
    assert page.locator("#band-table").is_visible()
    assert page.locator("input[name=fixed_fee]").is_hidden()
    page.fill("input[name=bands-0-up_to]", "100000")
    page.fill("input[name=bands-0-unit_price]", "0.001")
    page.fill("input[name=bands-0-flat_fee]", "99")
    page.fill("input[name=bands-1-up_to]", "1000000")
    page.fill("input[name=bands-1-unit_price]", "0.0006")
    # A mistake first: the last band must be open-ended, and the preview says so.
    page.fill("input[name=bands-2-up_to]", "5000000")
    page.fill("input[name=bands-2-unit_price]", "0.0003")
    page.get_by_text("The last band must be open-ended").wait_for()
    page.fill("input[name=bands-2-up_to]", "")
    # $99 + 10,000 × $0.001 · $99 + $100 · $99 + $100 + 900,000 × $0.0006
    for amount in ("$109.00", "$199.00", "$739.00"):
        preview.get_by_text(amount).wait_for()
    screenshot(page, "publisher-tier-form")
    page.get_by_role("button", name="Create tier").click()
    page.get_by_text("The tier Scale is created.").wait_for()
    tier = Tier.objects.get(name="Scale")
    bands = list(tier.current_version.bands.values_list("up_to", flat=True))
    assert bands == [100_000, 1_000_000, None]
    assert PriceBand.objects.count() == 3
    screenshot(page, "publisher-tier-detail")

    # An API, offered on the tier, then published after the confirmation.
    page.get_by_role("link", name="APIs", exact=True).click()
    page.get_by_role("link", name="New API").first.click()
    page.fill("input[name=name]", "Weather API")
    page.fill("input[name=context]", "weather")
    page.fill("input[name=version]", "v1")
    page.fill("input[name=backend_url]", "https://backend.example.test/weather")
    page.fill("input[name=tags]", "weather, forecast")
    page.fill("textarea[name=documentation]", "# Weather\n\nCall `/current`.")
    page.get_by_role("button", name="Create API").click()
    page.get_by_text("Weather API v1 is created").wait_for()
    page.get_by_label("Scale").check()
    page.get_by_role("button", name="Save tiers").click()
    page.get_by_role("link", name="Publish…").click()
    assert page.get_by_text("appears in the store").is_visible()
    screenshot(page, "publisher-publish-confirmation")
    page.get_by_role("button", name="Publish Weather API").click()
    page.get_by_text("Weather API v1 is now published.").wait_for()
    assert page.locator("#api-state").inner_text().strip().lower() == "published"
    screenshot(page, "publisher-api-detail")
    api = Api.objects.get(context="weather")
    assert api.state == ApiState.PUBLISHED
    assert list(api.tiers.all()) == [tier]
