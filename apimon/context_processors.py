from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apimon import clock
from apimon.models import Membership


def apimon(request: HttpRequest) -> dict:
    """Navbar state: the emulator banner (with the demo clock's time), the current tenant and the org switcher."""

    def my_memberships():
        if not request.user.is_authenticated:
            return []
        read = getattr(request, "my_memberships", None)  # by a tenant's page
        if read is not None:
            return read
        return list(
            Membership.objects.filter(user=request.user)
            .select_related("organization")
            .order_by("organization__name")
        )

    def user_has_mfa() -> bool:
        return request.user.is_authenticated and is_mfa_enabled(request.user)

    return {
        "STRIPE_EMULATOR": settings.STRIPE_EMULATOR,
        # The demo clock's time when it is set (pages then say which "now" they use).
        "DEMO_NOW": clock.now() if clock.offset() else None,
        # A callable: templates call it only where they ask (the owners' prompt).
        "user_has_mfa": user_has_mfa,
        "tenant": getattr(request, "tenant", None),
        "my_memberships": SimpleLazyObject(my_memberships),
    }
