from __future__ import annotations

from urllib.parse import urlencode

from allauth.account.views import SignupView
from allauth.core import ratelimit
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apimon import services
from apimon.env import describe_rate
from apimon.forms import InvitationForm, OrganizationForm, RoleForm
from apimon.health import HEARTBEAT_KEY
from apimon.models import Invitation, Membership, Role
from apimon.tenancy import OWNER, resolve_tenant, tenant_view


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "apimon/landing.html")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    memberships = list(
        Membership.objects.filter(user=request.user)
        .select_related("organization", "organization__plan")
        .order_by("organization__name")
    )
    context = {
        "memberships": memberships,
        "owns_an_organization": any(m.is_owner for m in memberships),
        "heartbeat": cache.get(HEARTBEAT_KEY),
    }
    return render(request, "apimon/home.html", context)


def _over_limit(request: HttpRequest, action: str, what: str) -> str | None:
    """Count one `action` of the signed-in user against its limit in
    ACCOUNT_RATE_LIMITS (allauth's helper, Django's cache); the refusal's text when
    the user is over it."""
    if ratelimit.consume(request, action=action, user=request.user):
        return None
    rate = settings.ACCOUNT_RATE_LIMITS[action].rsplit("/", 1)[0]
    return f"You {what}: at most {describe_rate(rate)}. Try again later."


@login_required
def organization_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        limited = _over_limit(
            request, "apimon_organization", "created too many organizations"
        )
        if limited:
            form.add_error(None, limited)
            status = 429
    if request.method == "POST" and form.is_valid():
        try:
            org = services.organization_create(
                user=request.user, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{org.name} is ready. You are its owner.")
            return redirect("tenant-home", org_slug=org.slug)
    return render(
        request, "apimon/organization_form.html", {"form": form}, status=status
    )


@tenant_view()
def tenant_home(request: HttpRequest) -> HttpResponse:
    slug = request.tenant.organization.slug
    if request.tenant.can_publish:
        return redirect("publisher:dashboard", org_slug=slug)
    return redirect("store:home", org_slug=slug)


@tenant_view(OWNER)
def members(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    form = InvitationForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        limited = _over_limit(request, "apimon_invitation", "sent too many invitations")
        if limited:
            form.add_error(None, limited)
            status = 429
    if request.method == "POST" and form.is_valid():
        try:
            invitation, _token = services.invitation_create(
                organization=org,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, f"Invitation sent to {invitation.email} as {invitation.role}."
            )
            return redirect("members", org_slug=org.slug)
    context = {
        "form": form,
        "members": org.memberships.select_related("user").order_by(
            "role", "user__email"
        ),
        "invitations": org.invitations.filter(accepted_at=None, revoked_at=None),
        "roles": Role.choices,
    }
    return render(request, "apimon/members.html", context, status=status)


@tenant_view(OWNER)
@require_POST
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    org = request.tenant.organization
    invitation = get_object_or_404(Invitation, pk=invitation_id, organization=org)
    services.invitation_revoke(invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} is revoked.")
    return redirect("members", org_slug=org.slug)


@tenant_view(OWNER)
@require_POST
def member_update(request: HttpRequest, membership_id: int) -> HttpResponse:
    org = request.tenant.organization
    membership = get_object_or_404(Membership, pk=membership_id, organization=org)
    try:
        if request.POST.get("action") == "remove":
            services.membership_remove(membership=membership)
            messages.success(request, f"{membership.user.email} was removed.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                raise ValidationError("Choose a role.")
            services.membership_change_role(
                membership=membership, role=form.cleaned_data["role"]
            )
            messages.success(
                request, f"{membership.user.email} is now {membership.role}."
            )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if (
        membership.user_id == request.user.id
        and not Membership.objects.filter(pk=membership.pk, role=Role.OWNER).exists()
    ):
        return redirect("home")
    return redirect("members", org_slug=org.slug)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_for_token(token)
    if request.method == "POST" and request.user.is_authenticated:
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            org = membership.organization
            messages.success(
                request, f"Welcome to {org.name}: you are {membership.role}."
            )
            return redirect("tenant-home", org_slug=org.slug)
    status = 404 if invitation is None else 200
    return render(
        request,
        "apimon/invitation_accept.html",
        {"invitation": invitation, "next": request.get_full_path()},
        status=status,
    )


def safe_next_path(request: HttpRequest) -> str | None:
    """The `next` the request carries (form or query), if it is a path on this
    site: "/t/acme/store/apis/3/". Anything else (another host, a scheme, "//…",
    a backslash trick) is ignored."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    return target


def _with_next(url: str, target: str | None) -> str:
    return f"{url}?{urlencode({'next': target})}" if target else url


class StoreSignupView(SignupView):
    """allauth's sign-up, in an organization's store: the new user is a subscriber.
    A same-site `next` (the API page the visitor came from) is kept through sign-up,
    and through "log in and join" for those who already have an account."""

    template_name = "account/signup.html"

    def dispatch(self, request, *args, **kwargs):
        self.tenant = resolve_tenant(request, kwargs["org_slug"])
        if request.user.is_authenticated:
            return redirect(
                _with_next(
                    reverse("store-join", args=[self.tenant.organization.slug]),
                    safe_next_path(request),
                )
            )
        return super().dispatch(request, *args, **kwargs)

    def get_success_url(self) -> str:
        return safe_next_path(self.request) or reverse(
            "store:home", args=[self.tenant.organization.slug]
        )

    def form_valid(self, form):
        response = super().form_valid(form)
        if getattr(self, "user", None) is not None and self.user.pk:
            services.membership_join_store(
                organization=self.tenant.organization, user=self.user
            )
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["store_org"] = self.tenant.organization
        context["join_url"] = _with_next(
            reverse("store-join", args=[self.tenant.organization.slug]),
            safe_next_path(self.request),
        )
        return context


store_signup = StoreSignupView.as_view()


@tenant_view(public=True)
def store_join(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    target = safe_next_path(request)
    if not request.user.is_authenticated:
        return redirect(_with_next(reverse("store-signup", args=[org.slug]), target))
    if request.tenant.is_member:
        return redirect(target or reverse("store:home", args=[org.slug]))
    if request.method == "POST":
        services.membership_join_store(organization=org, user=request.user)
        messages.success(request, f"You joined {org.name}'s store as a subscriber.")
        return redirect(target or reverse("store:home", args=[org.slug]))
    return render(
        request, "apimon/store_join.html", {"organization": org, "next": target}
    )


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on pages that name no icon (Django's admin): a
    404 there is a console error on every such page."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database, Redis (when configured) and the background jobs
    (beat's heartbeat, run by a worker, recently). 200 or 503 with what failed, as
    small JSON; compose's health checks use it (README "Deployment notes")."""
    from apimon.health import readiness

    checks = readiness()
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers and compose: the database answers."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")
