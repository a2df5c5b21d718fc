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
    assert "Metered" in page.inner_text("#revenue-table")
    screenshot(page, "billing-publisher-revenue")
