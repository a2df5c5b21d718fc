"""Usage pages, under /t/<org_slug>/ (see apimon/urls.py)."""

from django.urls import path

from gateway import views

app_name = "gateway"
urlpatterns = [
    path(
        "store/subscriptions/<int:subscription_id>/usage/",
        views.subscription_usage,
        name="subscription-usage",
    ),
    path(
        "store/subscriptions/<int:subscription_id>/usage.json",
        views.subscription_usage_data,
        name="subscription-usage-data",
    ),
    path("publisher/usage/", views.publisher_usage, name="publisher-usage"),
    path("publisher/usage.csv", views.publisher_usage_csv, name="publisher-usage-csv"),
    path("publisher/ingest-tokens/", views.ingest_tokens, name="ingest-tokens"),
    path(
        "publisher/ingest-tokens/<int:token_id>/revoke/",
        views.ingest_token_revoke,
        name="ingest-token-revoke",
    ),
]
