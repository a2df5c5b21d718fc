"""The billing pages in a real browser: the subscriber's invoices (list, one invoice,
the hosted page link) and the publisher's revenue chart."""

from __future__ import annotations

import pytest

from apimon import stripe_client as sc
from billing.engine import billing_run
from billing.models import Invoice
from billing.push import invoice_push
from tests.billing.conftest import (  # noqa: F401 - billing's fixtures, reused
    add_usage,
    flat,
    per_unit,
    shop,
    stripe,
    utc,
)
from tests.browser.conftest import log_in, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_subscriber_reads_invoices_and_a_publisher_sees_revenue(
    page,
    world,
    shop,  # noqa: F811
    stripe,  # noqa: F811
):
    customer = stripe.customer(shop)
    gold = shop.tier(flat("49.00"), name="Gold")
    metered = shop.tier(per_unit("0.0004"), name="Metered")
    a = shop.subscribe(gold, at=utc(2027, 1, 10), customer=customer)
    b = shop.subscribe(metered, at=utc(2027, 1, 10), customer=customer, app_name="b")
    add_usage(b, utc(2027, 1, 20), 123_456)
    for month in (1, 2, 3):  # a quarter, with Stripe's clock following
        at = utc(2027, month, 10, 0, 1)
        sc.advance_emulator_clock(at)
        billing_run(now=at, flush=False, enqueue_push=False)
        for invoice in Invoice.objects.filter(stripe_invoice_id=None):
            invoice_push(invoice_id=invoice.pk)
    assert a.invoices.count() == 3

    log_in(page, world.subscriber.email, PASSWORD)
    page.goto(f"/t/{world.org.slug}/store/invoices/")
    rows = page.locator("table tbody tr")
    assert rows.count() == 4
    assert "$49.38" in page.inner_text("table")  # 123,456 × $0.0004
    screenshot(page, "billing-store-invoices")

    page.get_by_role("link", name="ACME-000003").click()
    page.get_by_role("heading", name="Invoice ACME-000003").wait_for()
    assert "123,456" in page.inner_text("table.invoice-lines")
    assert page.get_by_role("link", name="PDF").count() == 1
    screenshot(page, "billing-store-invoice")

    # The store's subscription page embeds the invoices partial.
    page.goto(f"/t/{world.org.slug}/store/subscriptions/{a.pk}/")
    invoices = page.locator("#invoices")
    assert "ACME-000004" in invoices.inner_text()
    screenshot(page, "billing-store-subscription")

    page.context.clear_cookies()
    log_in(page, world.publisher.email, PASSWORD)
    page.goto(f"/t/{world.org.slug}/publisher/revenue/?start=2027-01&end=2027-03")
    page.locator("canvas.revenue-chart").wait_for()
    page.wait_for_function(
        "() => window.Chart && Chart.instances && Object.keys(Chart.instances).length > 0"
    )
    # Paid each month: Gold's $49.00; in February also the Metered usage of January,
    # $49.38. The platform keeps 10 % of each invoice, rounded half-up per invoice:
    # $4.90 and $4.938 → $4.94.
    rows = page.locator("#revenue-table tbody tr")
    assert [rows.nth(i).locator("td").all_inner_texts() for i in range(4)] == [
        ["2027-03", "Weather API v1", "Gold", "1", "$49.00", "$4.90", "$44.10"],
        ["2027-02", "Weather API v1", "Gold", "1", "$49.00", "$4.90", "$44.10"],
        ["2027-02", "Weather API v1", "Metered", "1", "$49.38", "$4.94", "$44.44"],
        ["2027-01", "Weather API v1", "Gold", "1", "$49.00", "$4.90", "$44.10"],
    ]  # the latest month first
    assert rows.count() == 4
    totals = page.locator(".card", has=page.get_by_role("heading", name="USD"))
    assert totals.locator("td").all_inner_texts() == [
        "Gross", "$196.38", "Platform fee", "$19.64", "Net", "$176.74",
    ]  # fmt: skip
    chart = page.evaluate(
        """() => Chart.getChart(document.querySelector("canvas.revenue-chart"))
                 .data.datasets.map((d) => [d.label, d.data])"""
    )
    assert chart == [
        ["Net", [44.10, 88.54, 44.10]],
        ["Platform fee", [4.90, 9.84, 4.90]],
    ]
    screenshot(page, "billing-publisher-revenue")
