"""Owner pages under /t/<org_slug>/publisher/monetization/ (namespace "monetization")."""

from django.urls import path

from billing import views

app_name = "monetization"
urlpatterns = [
    path("", views.status, name="status"),
    path("plans/", views.plans, name="plans"),
    path("plans/<slug:plan_slug>/", views.upgrade, name="upgrade"),
    path("upgrade/done/", views.upgrade_done, name="upgrade-done"),
    path("connect/", views.connect, name="connect"),
    path("enable/", views.enable, name="enable"),
    path("disable/", views.disable, name="disable"),
    path("disconnect/", views.disconnect, name="disconnect"),
    path("dunning/", views.dunning, name="dunning"),
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/check/", views.drift_check, name="drift-check"),
    path(
        "catalog/drift/<int:drift_id>/repair/",
        views.drift_repair_view,
        name="drift-repair",
    ),
]
