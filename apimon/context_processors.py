from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apimon.models import Membership


def apimon(request: HttpRequest) -> dict:
    """Navbar state: the emulator banner, the current tenant and the org switcher."""

    def my_memberships():
        if not request.user.is_authenticated:
            return []
        return list(
            Membership.objects.filter(user=request.user)
            .select_related("organization")
            .order_by("organization__name")
        )

    return {
        "STRIPE_EMULATOR": settings.STRIPE_EMULATOR,
        "tenant": getattr(request, "tenant", None),
        "my_memberships": SimpleLazyObject(my_memberships),
    }
