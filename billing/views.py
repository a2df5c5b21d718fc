"""Billing pages: the subscriber's invoices in the store, and the publisher's revenue
(with its CSV export)."""

from __future__ import annotations

import csv

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apimon.tenancy import MEMBERS, PUBLISHERS, tenant_view
from billing import selectors
from billing.currencies import from_minor
from billing.forms import RevenueFilterForm


@tenant_view(MEMBERS)
def store_invoices(request: HttpRequest) -> HttpResponse:
    invoices = selectors.invoices_for_subscriber(request)
    return render(request, "billing/store_invoices.html", {"invoices": invoices})


@tenant_view(MEMBERS)
def store_invoice(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = selectors.invoice_for_subscriber(request, invoice_id)
    return render(request, "billing/store_invoice.html", {"invoice": invoice})


@tenant_view(PUBLISHERS)
def publisher_revenue(request: HttpRequest) -> HttpResponse:
    """Paid invoices per month, API and tier: gross, platform fee, net; a chart of
    the months and the CSV of the same range."""
    form = RevenueFilterForm(request.GET)
    context: dict = {"form": form, "nav": "revenue"}
    if form.is_valid():
        start, end = form.range()
        context["revenue"] = selectors.revenue(
            request.tenant.organization, start=start, end=end
        )
        context["query"] = request.GET.urlencode() or (
            f"start={start:%Y-%m}&end={form.cleaned_data['end']:%Y-%m}"
        )
    return render(request, "billing/publisher_revenue.html", context)


@tenant_view(PUBLISHERS)
def publisher_revenue_csv(request: HttpRequest) -> HttpResponse:
    form = RevenueFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            "Bad filter: " + form.errors.as_text(),
            status=400,
            content_type="text/plain",
        )
    start, end = form.range()
    org = request.tenant.organization
    data = selectors.revenue(org, start=start, end=end)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"revenue-{org.slug}-{start:%Y-%m}-{form.cleaned_data['end']:%Y-%m}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(
        ["month", "api", "tier", "currency", "invoices", "gross", "platform_fee", "net"]
    )
    for row in data.rows:
        writer.writerow(
            [
                row.month,
                row.api,
                row.tier,
                row.currency.upper(),
                row.invoices,
                from_minor(row.gross_minor, row.currency),
                from_minor(row.fee_minor, row.currency),
                from_minor(row.net_minor, row.currency),
            ]
        )
    return response
