"""The owner's Billing page for the organization's platform plan, under
/t/<org_slug>/settings/billing/ (namespace "platform-billing"), beside Members and
Monetization in the settings menu."""

from django.urls import path

from billing import platform_billing_views as views

app_name = "platform-billing"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("plan/<slug:plan_slug>/", views.change, name="change"),
    path("keep/", views.keep, name="keep"),
    path("cancel/", views.cancel, name="cancel"),
    path("resume/", views.resume, name="resume"),
    path("card/", views.card, name="card"),
    path("card/done/", views.card_done, name="card-done"),
]
