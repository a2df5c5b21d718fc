"""Template helpers of the store: `{{ subscription.state|sub_badge }}`,
`{{ key|key_status:now }}`, `{{ label|label_badge }}`."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.timesince import timeuntil

from apimon import clock
from store.models import ApiKey, SubscriptionEventKind, SubscriptionState
from store.selectors import FREE, FREEMIUM, PAID

register = template.Library()

_STATE_BADGES = {
    SubscriptionState.PENDING_PAYMENT: "warn",
    SubscriptionState.ACTIVE: "ok",
    SubscriptionState.TRIALING: "info",
    SubscriptionState.ON_HOLD: "warn",
    SubscriptionState.BLOCKED: "danger",
    SubscriptionState.CANCELLED: "",
}
_LABEL_BADGES = {FREE: "ok", PAID: "info", FREEMIUM: "warn"}


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
    now = now or clock.now()
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


@register.filter
def event_label(kind: str) -> str:
    """A SubscriptionEvent kind for people ("tier_upgraded" → "Tier upgraded")."""
    try:
        return SubscriptionEventKind(kind).label
    except ValueError:  # not a kind apimon writes: say it plainly
        return kind.replace("_", " ").capitalize()


@register.filter
def state_label(state: str) -> str:
    """A subscription state for people ("ON_HOLD" → "on hold (payment failed)")."""
    try:
        return SubscriptionState(state).label.lower()
    except ValueError:
        return state.lower()
