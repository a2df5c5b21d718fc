"""The publisher console under /t/<org_slug>/publisher/ (namespace "publisher").

The console's pages about subscriptions are the store's (`store.publisher_urls`),
mounted in the same namespace by the root URLconf."""

from django.urls import path

from publisher import access_views, views

app_name = "publisher"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("apis/", views.api_list, name="api-list"),
    path("apis/new/", views.api_create, name="api-create"),
    path("apis/<int:api_id>/", views.api_detail, name="api-detail"),
    path("apis/<int:api_id>/edit/", views.api_edit, name="api-edit"),
    path(
        "apis/<int:api_id>/lifecycle/<str:action>/",
        views.api_lifecycle,
        name="api-lifecycle",
    ),
    path("apis/<int:api_id>/tiers/", views.api_tiers, name="api-tiers"),
    path("apis/<int:api_id>/meters/new/", views.meter_create, name="meter-create"),
    path(
        "apis/<int:api_id>/meters/<int:meter_id>/",
        views.meter_edit,
        name="meter-edit",
    ),
    path("tiers/", views.tier_list, name="tier-list"),
    path("tiers/new/", views.tier_create, name="tier-create"),
    path("tiers/preview/", views.tier_preview, name="tier-preview"),
    path("tiers/<int:tier_id>/", views.tier_detail, name="tier-detail"),
    path("tiers/<int:tier_id>/edit/", views.tier_edit, name="tier-edit"),
    path("tiers/<int:tier_id>/archive/", views.tier_archive, name="tier-archive"),
    # Who sees the RESTRICTED APIs: requests, approvals, invitations.
    path("access/", access_views.access_list, name="access-list"),
    path(
        "access/<int:membership_id>/",
        access_views.access_decide,
        name="access-decide",
    ),
]
