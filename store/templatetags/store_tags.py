"""Template helpers of the store: `{{ subscription.state|sub_badge }}`,
`{{ key|key_status:now }}`, `{{ label|label_badge }}`, and
`{% shared_fragment %}`: a part of a page every visitor of a store sees alike,
rendered once and kept in the page cache."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.template.defaulttags import CsrfTokenNode
from django.utils.timesince import timeuntil

from apimon import clock
from store import page_cache
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


@register.tag
def shared_fragment(parser, token):
    """`{% shared_fragment "name" audience key… %}…{% endshared_fragment %}`: the
    enclosed part rendered once per organization, audience and keys, and kept in
    the page cache (`store.page_cache`: retired by any change to the catalog).

    The key holds the tenant's organization (its id, slug and name) besides the
    fragment's name, the `audience` (who may see what: the PUBLIC APIs only, or
    the RESTRICTED ones too) and every value the part shows that the catalog does
    not hold. What differs between visitors (their subscriptions, forms, CSRF
    token, signed-in state) must stay outside: a `{% csrf_token %}` inside is
    refused when the template loads."""
    bits = token.split_contents()
    if len(bits) < 3:
        raise template.TemplateSyntaxError(
            f"{bits[0]} takes a name, an audience and optional keys"
        )
    nodelist = parser.parse(("endshared_fragment",))
    parser.delete_first_token()
    if nodelist.get_nodes_by_type(CsrfTokenNode):
        raise template.TemplateSyntaxError(
            f"{bits[0]} {bits[1]}: a CSRF token is per visitor, never shared"
        )
    return SharedFragmentNode(
        nodelist, [parser.compile_filter(bit) for bit in bits[1:]]
    )


class SharedFragmentNode(template.Node):
    def __init__(self, nodelist, keys) -> None:
        self.nodelist = nodelist
        self.keys = keys

    def render(self, context) -> str:
        organization = context["tenant"].organization
        name, audience, *keys = (k.resolve(context) for k in self.keys)
        if audience not in page_cache.AUDIENCES:  # never shared by mistake
            raise ValueError(f"shared_fragment {name}: no audience ({audience!r})")
        key = ("fragment", organization.slug, organization.name, name, audience, *keys)
        return page_cache.cached(
            organization.pk, key, lambda: self.nodelist.render(context)
        )
