"""The publisher's revenue page: paid invoices per month, API and tier — gross, the
platform's fee, net — with a chart and a CSV export; only the organization's
publishers and owners see it."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from billing.engine import billing_run
from billing.models import Invoice, InvoiceStatus
from tests.billing.conftest import add_usage, flat, per_unit, utc
from tests.publisher.helpers import make_api

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(shop):
    """Gold ($49, API Weather) paid in January and February; Metered ($0.01 per
    request, API Maps) paid in February; one open invoice (not revenue)."""
    gold = shop.tier(flat("49.00"), name="Gold")
    metered = shop.tier(per_unit("0.01"), name="Metered")
    maps = make_api(shop.org, name="Maps", context="maps", tiers=[metered])
    a = shop.subscribe(gold, at=utc(2027, 1, 10))
    b = shop.subscribe(metered, at=utc(2027, 1, 10), app_name="b")
    b.api = maps
    b.save()
    add_usage(b, utc(2027, 1, 20), 1234)  # $12.34
    billing_run(now=utc(2027, 2, 10, 0, 1), flush=False, enqueue_push=False)

    def pay(invoice, at):
        Invoice.objects.filter(pk=invoice.pk).update(
            status=InvoiceStatus.PAID, paid_at=at
        )

    start = Invoice.objects.get(subscription=a, kind="start")
    renewal = Invoice.objects.get(subscription=a, kind="renewal")
    usage = Invoice.objects.get(subscription=b)
    pay(start, utc(2027, 1, 10, 1))
    pay(renewal, utc(2027, 2, 10, 1))
    pay(usage, utc(2027, 2, 10, 2))
    shop.subscribe(gold, at=utc(2027, 2, 11), app_name="c")
    billing_run(now=utc(2027, 2, 11, 0, 1), flush=False, enqueue_push=False)  # open
    return shop


def url(org, path="revenue/"):
    return f"/t/{org.slug}/publisher/{path}"


def test_revenue_per_month_api_and_tier(client_for, world, sales):
    response = client_for(world.publisher).get(
        url(world.org), {"start": "2027-01", "end": "2027-03"}
    )

    assert response.status_code == 200
    revenue = response.context["revenue"]
    rows = [
        (r.month, r.api, r.tier, r.invoices, r.gross_minor, r.fee_minor, r.net_minor)
        for r in revenue.rows
    ]
    # 10 % commission: $49.00 → $4.90; $12.34 → $1.234 → $1.23
    assert rows == [
        ("2027-02", "Maps v1", "Metered", 1, 1234, 123, 1111),
        ("2027-02", "Weather API v1", "Gold", 1, 4900, 490, 4410),
        ("2027-01", "Weather API v1", "Gold", 1, 4900, 490, 4410),
    ]
    assert revenue.totals == {"usd": {"gross": 11034, "fee": 1103, "net": 9931}}
    assert revenue.series["usd"] == {
        "months": ["2027-01", "2027-02", "2027-03"],
        "gross": [4900, 6134, 0],
        "fee": [490, 613, 0],
        "net": [4410, 5521, 0],
    }
    html = response.content.decode()
    assert "$99.31" in html  # net
    assert "revenue-chart" in html
    assert "chart-4.6.1.umd.min.js" in html


def test_the_csv_has_the_same_rows(client_for, world, sales):
    response = client_for(world.owner).get(
        url(world.org, "revenue.csv"), {"start": "2027-01", "end": "2027-02"}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "revenue-acme-2027-01-2027-02.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "month", "api", "tier", "currency", "invoices", "gross", "platform_fee", "net"
    ]  # fmt: skip
    assert rows[1:] == [
        ["2027-02", "Maps v1", "Metered", "USD", "1", "12.34", "1.23", "11.11"],
        ["2027-02", "Weather API v1", "Gold", "USD", "1", "49.00", "4.90", "44.10"],
        ["2027-01", "Weather API v1", "Gold", "USD", "1", "49.00", "4.90", "44.10"],
    ]


def test_a_month_without_sales(client_for, world, sales):
    response = client_for(world.publisher).get(
        url(world.org), {"start": "2026-05", "end": "2026-06"}
    )
    assert "No paid invoices in these months" in response.content.decode()


def test_a_bad_range_is_explained_next_to_the_field(client_for, world):
    client = client_for(world.publisher)
    response = client.get(url(world.org), {"start": "2027-05", "end": "2027-01"})
    assert "The last month is before the first." in response.content.decode()
    assert "revenue" not in response.context
    assert client.get(url(world.org), {"start": "May"}).context["form"].errors
    csv_response = client.get(url(world.org, "revenue.csv"), {"start": "nope"})
    assert csv_response.status_code == 400


def test_subscribers_may_not_see_revenue(client_for, world):
    assert client_for(world.subscriber).get(url(world.org)).status_code == 403
    assert (
        client_for(world.subscriber).get(url(world.org, "revenue.csv")).status_code
        == 403
    )


def test_an_outsider_gets_404_and_their_own_page_shows_none_of_ours(
    client_for, world, sales
):
    client = client_for(world.outsider)
    assert client.get(url(world.org)).status_code == 404
    assert client.get(url(world.org, "revenue.csv")).status_code == 404
    theirs = client.get(url(world.other_org), {"start": "2027-01", "end": "2027-03"})
    assert theirs.context["revenue"].rows == []


def test_the_publisher_menu_links_to_revenue(client_for, world):
    html = client_for(world.publisher).get(url(world.org)).content.decode()
    assert f'href="/t/{world.org.slug}/publisher/revenue/"' in html


def test_the_publisher_dashboard_shows_this_months_net_revenue_and_recent_requests(
    client_for, world, shop
):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    sub = shop.subscribe(
        shop.tier(flat("49.00"), name="Gold"), at=now - timedelta(hours=1)
    )
    billing_run(now=now, flush=False, enqueue_push=False)  # the start invoice
    Invoice.objects.filter(subscription=sub).update(
        status=InvoiceStatus.PAID, paid_at=now
    )
    add_usage(sub, now - timedelta(minutes=30), 321)

    page = client_for(world.publisher).get(url(world.org, "")).content.decode()

    revenue_card = page[page.index('id="net-this-month"') :]
    assert "$44.10" in revenue_card[:400]  # $49.00 less the 10 % platform fee
    requests_card = page[page.index('id="requests-30-days"') :]
    assert ">321<" in requests_card[:400]


def test_by_default_the_range_reaches_payments_dated_ahead(client_for, world, sales):
    """A demo's `run_billing --at` pays invoices in "future" months (here 2027,
    while today is earlier): the default twelve months end at the newest payment."""
    response = client_for(world.publisher).get(url(world.org))

    form = response.context["form"]
    today = timezone.now().strftime("%Y-%m")
    assert form.initial["end"] == max("2027-02", today)
    if today <= "2027-02":
        months = {row.month for row in response.context["revenue"].rows}
        assert months == {"2027-01", "2027-02"}


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("0000-01", "2027-01", "start"),
        ("2027-01", "0000-12", "end"),
        ("9999-01", "9999-12", "start"),
        ("9998-12", "9999-12", "end"),
    ],
)
def test_months_outside_the_calendar_are_a_form_error_not_a_500(
    client_for, world, start, end, field
):
    client = client_for(world.publisher)
    response = client.get(url(world.org), {"start": start, "end": end})

    assert response.status_code == 200
    assert "revenue" not in response.context
    assert response.context["form"].errors[field] == [
        "Pick a month from 1970-01 to 9998-12."
    ]
    csv_response = client.get(
        url(world.org, "revenue.csv"), {"start": start, "end": end}
    )
    assert csv_response.status_code == 400
    assert b"Pick a month from 1970-01 to 9998-12." in csv_response.content
