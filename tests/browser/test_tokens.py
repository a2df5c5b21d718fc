"""Tokens end to end in a real browser: a subscriber's application calls the sample
API's text endpoint through the gateway, which counts the tokens the backend reports;
the subscriber sees them on the subscription page's chart, the publisher picks them
on the usage page's chart, and the period's invoice has a tokens line."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apimon import stripe_client as sc
from billing.engine import billing_run
from billing.models import Invoice
from billing.push import invoice_push
from gateway.services import usage_flush
from pricing.rating import Band, Pricing, PricingModel
from publisher import meters
from publisher import services as publisher_services
from publisher.models import Api, ApiState, MeterSource
from store import services as store_services
from tests.billing.conftest import (  # noqa: F401 - billing's fixtures, reused
    shop,
    stripe,
)
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD
from tests.gateway.conftest import (  # noqa: F401 - the gateway's fixtures, reused
    backend_url,
    redis_db,
    serving,
    short_lived_connections,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def text_api(shop, backend_url):  # noqa: F811
    """The sample API's text endpoint sold by the token: the first 1,000 tokens of
    a month free, then $2 per 1,000 (graduated), shown per 1,000 tokens."""
    api = Api.objects.create(
        organization=shop.org, name="Text generation API", version="v1",
        context="text", backend_url=f"{backend_url}/text/v1",
        state=ApiState.PUBLISHED,
    )  # fmt: skip
    meters.meter_create(
        api=api, actor=None, key="tokens", display_name="Tokens",
        unit_label="token", display_scale=1000, source=MeterSource.RESPONSE,
    )  # fmt: skip
    tier = publisher_services.tier_create(
        organization=shop.org,
        actor=None,
        name="Text Pro",
        price=publisher_services.TierPrice(
            pricing=Pricing(model=PricingModel.FREE, currency="usd"),
            meters=(
                publisher_services.MeterPriceSpec(
                    meter="tokens",
                    pricing=Pricing(
                        model=PricingModel.GRADUATED,
                        currency="usd",
                        bands=(
                            Band(1_000, Decimal("0")),
                            Band(None, Decimal("0.002")),
                        ),
                    ),
                ),
            ),
        ),
    )
    publisher_services.api_set_tiers(api=api, tiers=[tier], actor=None)
    shop.api = api  # what the shop's subscribers subscribe to
    return tier


def test_a_subscriber_sees_the_tokens_they_used_and_is_invoiced_for_them(
    page,
    world,
    shop,  # noqa: F811
    stripe,  # noqa: F811
    text_api,
    redis_db,  # noqa: F811
    short_lived_connections,  # noqa: F811
):
    tier = text_api
    started = timezone.now() - timedelta(minutes=10)
    sub = shop.subscribe(
        tier, at=started, customer=stripe.customer(shop), app_name="Writer"
    )
    key = store_services.api_key_create(
        application=sub.application, actor=world.subscriber, name="writer"
    ).raw

    # Three completions: 4 prompt words + max_tokens each, 3,054 tokens in all.
    with serving(apimon_clock=True) as gateway:
        for max_tokens in (996, 2000, 46):
            answer = gateway.request(
                "POST",
                f"/gateway/{shop.org.slug}/text/v1/complete",
                key=key,
                json={"prompt": "Tell me a story", "max_tokens": max_tokens},
            )
            assert answer.status_code == 200, answer.text
            assert "apimon-meter-tokens" not in answer.headers
    usage_flush()

    log_in(page, world.subscriber.email, PASSWORD)
    page.goto(f"/t/{shop.org.slug}/store/subscriptions/{sub.pk}/")
    details = page.locator("#details")
    assert details.locator("dd.meter-price").inner_text() == (
        "Graduated — up to 1,000: $0.00 per 1K tokens; above: $2.00 per 1K tokens\n"
        "Quota: unlimited"
    )
    used = details.locator("#usage-so-far")
    assert used.locator("[data-meter-used=tokens]").inner_text() == "3,054 tokens"
    assert used.locator("[data-meter-used=requests]").inner_text() == "3 requests"
    tokens = page.locator("[data-meter=tokens]")
    tokens.get_by_text("tokens this billing period").wait_for()
    assert tokens.locator("h3").inner_text() == "Tokens"
    assert tokens.locator("[data-meter-quota]").inner_text() == "No quota on tokens."
    assert (
        tokens.locator("[data-meter-period]").inner_text()
        == "3,054 tokens this billing period."
    )
    # Plotted per 1,000 tokens, as the prices are.
    daily = page.evaluate(
        "() => Chart.getChart(document.querySelector('[data-meter-daily]'))"
        ".data.datasets[0].data"
    )
    assert sum(daily) == pytest.approx(3.054)
    screenshot(page, "tokens-subscription")

    # The publisher's usage page charts requests, or the meter they pick.
    page.context.clear_cookies()
    log_in(page, world.publisher.email, PASSWORD)
    page.goto(f"/t/{shop.org.slug}/publisher/usage/")
    head = page.locator("#usage-chart-head")
    assert head.locator("h3").inner_text() == "Requests per day"
    assert head.locator(".badge").text_content() == "3 requests"
    page.select_option("#usage-meter", "tokens")
    assert head.locator("h3").inner_text() == "Tokens per day"
    assert head.locator(".badge").text_content() == "3,054 tokens"
    chart = page.evaluate(
        "() => { const c = Chart.getChart(document.getElementById("
        "'publisher-usage-daily')); return [c.data.datasets[0].data, "
        "c.options.scales.y.title.text]; }"
    )
    assert sum(chart[0]) == pytest.approx(3.054)  # per 1,000 tokens
    assert chart[1] == "1K tokens"
    screenshot(page, "tokens-publisher-usage")
    page.context.clear_cookies()
    log_in(page, world.subscriber.email, PASSWORD)

    # The period ends: the engine invoices the tokens, and Stripe gets the invoice.
    at = sub.current_period_end + timedelta(minutes=1)
    sc.advance_emulator_clock(at)
    billing_run(now=at, flush=False, enqueue_push=False)
    invoice = Invoice.objects.get(subscription=sub)
    invoice_push(invoice_id=invoice.pk)
    invoice.refresh_from_db()
    # 2,054 tokens over the free 1,000, at $2 per 1,000.
    assert invoice.total_minor == 411

    page.goto(f"/t/{shop.org.slug}/store/invoices/")
    page.get_by_role("link", name=invoice.number).click()
    page.get_by_role("heading", name=f"Invoice {invoice.number}").wait_for()
    lines = page.locator("table.invoice-lines").inner_text()
    assert "Tokens: 2,054 × $2.00 / 1K" in lines, lines
    assert "$4.11" in lines
    screenshot(page, "tokens-invoice")
