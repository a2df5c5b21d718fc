"""The publisher console in a real browser: a publisher creates a GRADUATED tier with bands and
watches the live price preview, creates an API, offers it on the tier and publishes
it."""

import pytest

from apimon.services import organization_create
from publisher.models import Api, ApiState, MeterPriceBand, Tier
from tests.billing.test_meters import add_meter
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
    requests_row = page.locator("#meter-requests")
    assert requests_row.is_hidden()  # a free tier's requests are free
    page.get_by_label("Commercial").check()
    # The fixed fee is the tier's; requests are a meter row like any other, whose
    # fields follow its model.
    assert requests_row.is_visible()
    assert page.locator("input[name=fixed_fee]").is_visible()
    assert page.locator("#field-meter-requests-bands").is_hidden()
    assert page.locator("#field-meter-requests-unit_price").is_hidden()
    assert page.locator("input[name=meter-requests-quota_limit]").count() == 0
    page.select_option("select[name=meter-requests-pricing_model]", "PER_UNIT")
    assert page.locator("#field-meter-requests-unit_price").is_visible()
    page.select_option("select[name=meter-requests-pricing_model]", "GRADUATED")
    assert page.locator("#field-meter-requests-bands").is_visible()
    assert page.locator("#field-meter-requests-unit_price").is_hidden()
    assert page.locator("#field-meter-requests-overage_price").is_hidden()
    bands = "textarea[name=meter-requests-bands]"
    # A mistake first: the last band must be open-ended, and the preview says so.
    page.fill(bands, "100000 0.001 99\n1000000 0.0006\n5000000 0.0003")
    page.get_by_text("The last band must be open-ended").wait_for()
    page.fill(bands, "100000 0.001 99\n1000000 0.0006\n* 0.0003")
    # Rows at half the first band, its edges, 2× and 10× the last: $99 + 50,000 ×
    # $0.001 · $99 + $100 · $99 + $100 + 900,000 × $0.0006
    for amount in ("$149.00", "$199.00", "$739.00"):
        preview.locator("td", has_text=amount).first.wait_for()
    assert "50,000 requests" in preview.inner_text()
    screenshot(page, "publisher-tier-form")
    page.get_by_role("button", name="Create tier").click()
    page.get_by_text("The tier Scale is created.").wait_for()
    tier = Tier.objects.get(name="Scale")
    bands = [b.up_to for b in tier.current_version.pricing().bands]
    assert bands == [100_000, 1_000_000, None]
    assert MeterPriceBand.objects.filter(price__meter="requests").count() == 3
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

    # The API counts tokens; the tier prices them, and the preview follows each
    # meter in its own unit, within its quota.
    add_meter(api, "tokens", "Tokens", "token", scale=1000)
    page.goto(f"/t/weather-works/publisher/tiers/{tier.pk}/edit/")
    page.fill("input[name=quota_limit]", "2000000")
    page.select_option("select[name=meter-tokens-pricing_model]", "GRADUATED")
    page.fill("textarea[name=meter-tokens-bands]", "1000000 0.002\n* 0.0015 5")
    page.fill("input[name=meter-tokens-quota_limit]", "100000")
    page.select_option("select[name=meter-tokens-quota_unit]", "day")
    tokens = page.locator("#preview-tokens")
    # 500,000 × $0.000002 · 1,000,000 × $0.000002 · $2 + 1,000,000 × $0.0000015
    # + $5; a hard 100,000 a day stops a month at 3,100,000 tokens: $2 + $3.15 + $5
    for quantity, amount in (
        ("500,000 tokens", "$1.00"),
        ("1,000,000 tokens", "$2.00"),
        ("2,000,000 tokens", "$8.50"),
        ("3,100,000 tokens", "$10.15"),
    ):
        row = tokens.locator("tr", has_text=quantity)
        row.locator("td.num", has_text=amount).wait_for()
    assert "Stops at 3,100,000 tokens per month" in tokens.inner_text()
    assert "10,000,000 tokens" not in tokens.inner_text()
    # The requests stop at the tier's quota of 2,000,000 a month.
    requests = page.locator("#preview-requests")
    assert "2,000,000 requests" in requests.inner_text()
    assert "10,000,000 requests" not in requests.inner_text()
    screenshot(page, "publisher-tier-preview-per-meter")
    page.get_by_role("button", name="Save tier").click()
    page.get_by_text("The tier Scale is saved.").wait_for()
    assert "$10.15" in page.locator("#preview-tokens").inner_text()
