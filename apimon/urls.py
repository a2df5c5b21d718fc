from django.contrib import admin
from django.urls import include, path

from apimon import views
from gateway import views as gateway_views
from publisher import urls as publisher_urls
from store import publisher_urls as store_publisher_urls

# The root URLconf wires every app together (docs/architecture.md): it sits above
# every layer. The publisher console is the catalog's pages plus the store's pages
# about subscriptions, in one namespace.
publisher_console = (
    publisher_urls.urlpatterns + store_publisher_urls.urlpatterns,
    "publisher",
)

urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", views.readyz, name="readyz"),
    # External gateways post usage here (docs/metering.md, "External gateways: the ingest
    # API").
    path("api/usage/events", gateway_views.usage_events, name="usage-events"),
    path("home/", views.home, name="home"),
    path("orgs/new/", views.organization_create, name="organization-create"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("t/<slug:org_slug>/", views.tenant_home, name="tenant-home"),
    path("t/<slug:org_slug>/settings/members/", views.members, name="members"),
    path(
        "t/<slug:org_slug>/settings/members/<int:membership_id>/",
        views.member_update,
        name="member-update",
    ),
    path(
        "t/<slug:org_slug>/settings/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation-revoke",
    ),
    path(
        "t/<slug:org_slug>/settings/billing/",
        include("billing.platform_billing_urls"),
    ),
    path("t/<slug:org_slug>/store/signup/", views.store_signup, name="store-signup"),
    path("t/<slug:org_slug>/store/join/", views.store_join, name="store-join"),
    path("t/<slug:org_slug>/store/", include("store.urls")),
    path(
        "t/<slug:org_slug>/publisher/monetization/",
        include("billing.monetization_urls"),
    ),
    path("t/<slug:org_slug>/publisher/", include(publisher_console)),
    path("t/<slug:org_slug>/", include("gateway.urls")),
    path("t/<slug:org_slug>/", include("billing.urls")),
    path("billing/stripe/", include("billing.stripe_urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
]

# apimon's own error pages (apimon/errors.py).
handler400 = "apimon.errors.bad_request"
handler403 = "apimon.errors.permission_denied"
handler404 = "apimon.errors.page_not_found"
handler500 = "apimon.errors.server_error"
