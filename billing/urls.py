"""Billing pages under /t/<org_slug>/ (see apimon/urls.py)."""

from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("store/invoices/", views.store_invoices, name="store-invoices"),
    path("store/invoices/<int:invoice_id>/", views.store_invoice, name="store-invoice"),
    path("publisher/revenue/", views.publisher_revenue, name="publisher-revenue"),
    path(
        "publisher/revenue.csv",
        views.publisher_revenue_csv,
        name="publisher-revenue-csv",
    ),
]
