"""Stripe's fixed endpoints under /billing/stripe/ (namespace "stripe"): the Connect
OAuth redirect URI and the webhook. Not tenant-scoped: they are registered with
Stripe once for the whole installation."""

from django.urls import path

from billing import views

app_name = "stripe"
urlpatterns = [
    path("connect/callback/", views.connect_callback, name="connect-callback"),
    path("webhook/", views.webhook, name="webhook"),
]
