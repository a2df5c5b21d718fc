"""Subscriber access to the organization's RESTRICTED APIs, in the publisher console:
pending requests (approve, decline), approved subscribers (take access back), and an
invitation by email. The rules are in apimon.services (membership_request_access,
membership_decide_access, restricted_access_invite)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apimon import services as tenancy_services
from apimon.models import Membership, RestrictedAccess, Role
from apimon.tenancy import PUBLISHERS, tenant_view


class AccessInviteForm(forms.Form):
    email = forms.EmailField(label="Email address")


def _subscribers(org, status: str):
    return (
        Membership.objects.filter(
            organization=org, role=Role.SUBSCRIBER, restricted_access=status
        )
        .select_related("user", "access_decided_by")
        .order_by("access_requested_at", "user__email")
    )


@tenant_view(PUBLISHERS)
def access_list(request: HttpRequest) -> HttpResponse:
    org = request.tenant.organization
    form = AccessInviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        try:
            outcome = tenancy_services.restricted_access_invite(
                organization=org, email=email, invited_by=request.user
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for name, errors in exc.error_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
            else:
                form.add_error(None, exc)
        else:
            messages.success(
                request,
                f"{email} is approved for the restricted APIs."
                if outcome == "approved"
                else f"Invitation sent to {email}: accepting it makes them a "
                "subscriber with access to the restricted APIs.",
            )
            return redirect("publisher:access-list", org_slug=org.slug)
    context = {
        "form": form,
        "requested": _subscribers(org, RestrictedAccess.REQUESTED),
        "approved": _subscribers(org, RestrictedAccess.APPROVED),
        "rejected": _subscribers(org, RestrictedAccess.REJECTED),
        "nav": "access",
    }
    return render(request, "publisher/access_list.html", context)


@tenant_view(PUBLISHERS)
@require_POST
def access_decide(request: HttpRequest, membership_id: int) -> HttpResponse:
    org = request.tenant.organization
    membership = get_object_or_404(
        Membership.objects.select_related("user"),
        pk=membership_id,
        organization=org,
        role=Role.SUBSCRIBER,
    )
    approve = request.POST.get("action") == "approve"
    tenancy_services.membership_decide_access(
        membership=membership, approve=approve, actor=request.user
    )
    email = membership.user.email
    messages.success(
        request,
        f"{email} is approved for the restricted APIs."
        if approve
        else f"{email} does not see the restricted APIs (subscriptions they already "
        "have continue).",
    )
    return redirect("publisher:access-list", org_slug=org.slug)
