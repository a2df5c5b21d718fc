"""Middleware of the apimon project."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apimon import views

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"


class HealthCheckMiddleware:
    """Answers ``GET /healthz`` and ``GET /readyz`` before any other middleware runs.

    Health checks come from inside the deployment (compose's check on
    ``http://127.0.0.1:8000/healthz``, a load balancer probing a node by its address):
    over plain HTTP and with a Host header that is not in ALLOWED_HOSTS. Placed first in
    MIDDLEWARE, this answers them before CommonMiddleware validates the host (400
    DisallowedHost) and before SecurityMiddleware redirects to HTTPS. The answer says
    only that the database answers; every other path is untouched.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            if request.path == HEALTHZ_PATH:
                return views.healthz(request)
            if request.path == READYZ_PATH:
                return views.readyz(request)
        return self.get_response(request)
