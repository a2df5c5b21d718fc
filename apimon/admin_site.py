"""The operator's admin site: django.contrib.admin behind allauth's login.

The admin has no password form of its own. `/admin/login/` sends the browser to
allauth's login (with `next`), so the one way in is the one every user has: allauth's
rate limits and lock-out after failed passwords (`ACCOUNT_RATE_LIMITS`), and the
second step of multi-factor authentication when the account has it. A POST straight
to `/admin/login/` authenticates nothing.

When `MFA_REQUIRED_FOR_STAFF` is on (the default outside DEBUG), a staff account
without an authenticator app is sent to set one up before any admin page opens.
"""

from __future__ import annotations

from functools import update_wrapper
from urllib.parse import urlencode

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def staff_mfa_missing(user) -> bool:
    """Whether `user` is an operator account that must set up MFA before the admin."""
    return (
        settings.MFA_REQUIRED_FOR_STAFF
        and user.is_authenticated
        and (user.is_staff or user.is_superuser)
        and not is_mfa_enabled(user)
    )


class AdminSite(admin.AdminSite):
    site_header = "apimon operator admin"
    site_title = "apimon admin"

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        index = reverse("admin:index", current_app=self.name)
        target = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target,
            allowed_hosts={request.get_host()},
            require_https=request.is_secure(),
        ):
            target = index
        if request.user.is_authenticated:
            if self.has_permission(request):
                return HttpResponseRedirect(target)
            # Signed in, but not as an operator: sending them to the login page
            # would bounce straight back here (allauth redirects signed-in users).
            return render(request, "apimon/admin_denied.html", status=403)
        login = reverse("account_login")
        return HttpResponseRedirect(f"{login}?{urlencode({'next': target})}")

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)
        if view == self.logout:
            return inner  # an operator without MFA may still log out

        def mfa_required(request: HttpRequest, *args, **kwargs):
            if self.has_permission(request) and staff_mfa_missing(request.user):
                messages.warning(
                    request,
                    "Operator accounts need two-factor authentication: set up an "
                    "authenticator app, then open the admin again.",
                )
                return HttpResponseRedirect(reverse("mfa_activate_totp"))
            return inner(request, *args, **kwargs)

        return update_wrapper(mfa_required, inner)
