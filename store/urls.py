from django.urls import path

from store import views

app_name = "store"
urlpatterns = [
    path("", views.home, name="home"),
    # The gateway's 429 answers link to this URL as the upgrade page: keep it.
    path("apis/<int:api_id>/", views.api_detail, name="api-detail"),
    path("apis/<int:api_id>/subscribe/", views.subscribe, name="subscribe"),
    path("access/", views.access_request, name="access-request"),
    path("applications/", views.application_list, name="application-list"),
    path("applications/new/", views.application_create, name="application-create"),
    path(
        "applications/<int:application_id>/",
        views.application_detail,
        name="application-detail",
    ),
    path(
        "applications/<int:application_id>/edit/",
        views.application_edit,
        name="application-edit",
    ),
    path(
        "applications/<int:application_id>/delete/",
        views.application_delete,
        name="application-delete",
    ),
    path(
        "applications/<int:application_id>/keys/new/",
        views.key_create,
        name="key-create",
    ),
    path("keys/<int:key_id>/rotate/", views.key_rotate, name="key-rotate"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
    path("subscriptions/", views.subscription_list, name="subscription-list"),
    path(
        "subscriptions/<int:subscription_id>/",
        views.subscription_detail,
        name="subscription-detail",
    ),
    path(
        "subscriptions/<int:subscription_id>/change/",
        views.subscription_change,
        name="subscription-change",
    ),
    path(
        "subscriptions/<int:subscription_id>/change/unschedule/",
        views.subscription_unschedule,
        name="subscription-unschedule",
    ),
    path(
        "subscriptions/<int:subscription_id>/cancel/",
        views.subscription_cancel,
        name="subscription-cancel",
    ),
    path(
        "subscriptions/<int:subscription_id>/resume/",
        views.subscription_resume,
        name="subscription-resume",
    ),
    path(
        "subscriptions/<int:subscription_id>/checkout/",
        views.subscription_checkout,
        name="subscription-checkout",
    ),
    path(
        "subscriptions/<int:subscription_id>/checkout/return/",
        views.checkout_return,
        name="checkout-return",
    ),
]
