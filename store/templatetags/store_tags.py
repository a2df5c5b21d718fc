"""Template helpers of the store: `{{ subscription.state|sub_badge }}`,
`{{ key|key_status:now }}`, `{{ label|label_badge }}`."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timeuntil

from store.models import ApiKey, SubscriptionState

register = template.Library()

_STATE_BADGES = {
    SubscriptionState.PENDING_PAYMENT: "warn",
    SubscriptionState.ACTIVE: "ok",
    SubscriptionState.TRIALING: "info",
    SubscriptionState.ON_HOLD: "warn",
    SubscriptionState.BLOCKED: "danger",
    SubscriptionState.CANCELLED: "",
}
_LABEL_BADGES = {"FREE": "ok", "PAID": "info", "FREEMIUM": "warn"}


@register.filter
def sub_badge(state: str) -> str:
    """The badge class of a subscription state."""
    return _STATE_BADGES.get(state, "")


@register.filter
def label_badge(label: str) -> str:
    return _LABEL_BADGES.get(label, "")


@register.filter
def key_status(key: ApiKey, now: datetime | None = None) -> str:
    """ "active", "revoked", "expired" or "expires in 23 hours" (a rotated key)."""
    now = now or timezone.now()
    if key.revoked_at is not None and key.revoked_at <= now:
        return "revoked"
    if key.expires_at is not None:
        if key.expires_at <= now:
            return "expired"
        return f"works for {timeuntil(key.expires_at, now, depth=1)} more"
    return "active"


@register.filter
def key_badge(key: ApiKey, now: datetime | None = None) -> str:
    status = key_status(key, now)
    if status == "active":
        return "ok"
    return "warn" if status.startswith("works") else ""


_EVENT_LABELS = {
    "created": "Subscribed",
    "checkout_started": "Checkout opened",
    "checkout_completed": "Card saved",
    "activated": "Activated",
    "card_updated": "Card updated",
    "tier_upgraded": "Tier upgraded",
    "tier_downgrade_scheduled": "Tier change scheduled",
    "tier_downgrade_unscheduled": "Scheduled tier change dropped",
    "cancel_scheduled": "Cancellation scheduled",
    "cancel_unscheduled": "Cancellation withdrawn",
    "cancelled_now": "Cancelled",
    "blocked": "Blocked by the publisher",
    "unblocked": "Unblocked",
    "api_retired": "API retired",
}


@register.filter
def event_label(kind: str) -> str:
    """A SubscriptionEvent kind for people; kinds added by billing read plainly."""
    return _EVENT_LABELS.get(kind) or kind.replace("_", " ").capitalize()


@register.filter
def state_label(state: str) -> str:
    """A subscription state for people ("ON_HOLD" → "on hold (payment failed)")."""
    from store.models import SubscriptionState

    try:
        return SubscriptionState(state).label.lower()
    except ValueError:
        return state.lower()
