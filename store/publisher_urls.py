"""The publisher console's pages about its organization's subscriptions, under
/t/<org_slug>/publisher/: the store's views, in the "publisher" namespace (the root
URLconf mounts them with `publisher.urls`)."""

from django.urls import path

from store import publisher_views as views

urlpatterns = [
    path("subscriptions/", views.subscription_list, name="subscription-list"),
    path(
        "subscriptions/<int:subscription_id>/",
        views.subscription_detail,
        name="subscription-detail",
    ),
    path(
        "subscriptions/<int:subscription_id>/block/",
        views.subscription_block,
        name="subscription-block",
    ),
    path(
        "subscriptions/<int:subscription_id>/unblock/",
        views.subscription_unblock,
        name="subscription-unblock",
    ),
]
