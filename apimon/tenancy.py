"""The one place that resolves a tenant from the URL and enforces roles.

Every view under `/t/<org_slug>/…` is wrapped in `tenant_view`. It loads the
organization named in the URL and the caller's membership in it, then decides:

- anonymous caller on a members-only page → redirect to log in;
- signed-in caller who is not a member → 404 (another tenant's data does not exist for
  them, and the answer must not reveal that the organization exists);
- member whose role may not act → 403;
- otherwise the view runs with `request.tenant` set (organization, membership, role).

Store catalog pages are the one public surface of a tenant (a developer portal must be
browsable before signing up); they use `tenant_view(public=True)`, which still 404s an
unknown organization.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from apimon import logcontext
from apimon.models import Membership, Organization, Role

OWNER = frozenset({Role.OWNER})
PUBLISHERS = frozenset({Role.OWNER, Role.PUBLISHER})
MEMBERS = frozenset({Role.OWNER, Role.PUBLISHER, Role.SUBSCRIBER})


@dataclass(frozen=True)
class Tenant:
    organization: Organization
    membership: Membership | None

    @property
    def role(self) -> str | None:
        return self.membership.role if self.membership else None

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER

    @property
    def can_publish(self) -> bool:
        return self.role in PUBLISHERS

    @property
    def is_member(self) -> bool:
        return self.membership is not None


def resolve_tenant(request: HttpRequest, org_slug: str) -> Tenant:
    """Organization by slug plus the caller's membership (None for anonymous/outsiders).

    A signed-in caller's memberships are read first, each with its organization
    and plan: a member's organization comes from them (one query for both), and
    the navbar's organization switcher (`context_processors.apimon`) uses them too.
    Only an outsider or an anonymous caller reads the organization apart."""
    membership = None
    organization = None
    if request.user.is_authenticated:
        request.my_memberships = list(
            Membership.objects.filter(user=request.user)
            .select_related("organization__plan")
            .order_by("organization__name")
        )
        membership = next(
            (m for m in request.my_memberships if m.organization.slug == org_slug),
            None,
        )
        if membership is not None:
            # The tenant's own copy: what a view sets on its organization stays
            # off the switcher's row.
            organization = copy.copy(membership.organization)
    if organization is None:
        try:
            organization = Organization.objects.select_related("plan").get(
                slug=org_slug
            )
        except Organization.DoesNotExist:
            raise Http404("No such organization") from None
    logcontext.organization.set(organization.slug)
    return Tenant(organization=organization, membership=membership)


def tenant_view(
    roles: Iterable[str] = MEMBERS, *, public: bool = False
) -> Callable[[Callable], Callable]:
    """Decorate a view taking `org_slug`; see the module docstring for the rules."""
    allowed = frozenset(roles)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, org_slug: str, *args, **kwargs):
            tenant = resolve_tenant(request, org_slug)
            if not public:
                if not request.user.is_authenticated:
                    return redirect_to_login(request.get_full_path())
                if tenant.membership is None:
                    raise Http404("No such organization")
                if tenant.role not in allowed:
                    raise PermissionDenied(
                        "Your role in this organization may not do this"
                    )
            request.tenant = tenant
            return view(request, *args, **kwargs)

        wrapper.tenant_roles = allowed  # type: ignore[attr-defined]
        wrapper.tenant_public = public  # type: ignore[attr-defined]
        return wrapper

    return decorator
