"""The demo's store data (called from `apimon.demo.seed`): the subscriber's
application "Weather dashboard" on the Weather API's Free tier, with one key.
Idempotent: what exists is kept, and a key is only made (and returned, the one time
it can be shown) while the application has none."""

from __future__ import annotations

from apimon.models import Organization, User
from publisher.models import Api, Tier
from store import services
from store.models import Application, Subscription, SubscriptionState

APP_NAME = "Weather dashboard"


def seed_store(org: Organization, subscriber: User) -> tuple[Subscription | None, str]:
    """(the demo subscription, the raw key if one was made now else "")."""
    api = Api.objects.filter(organization=org, context="weather", version="v1").first()
    tier = Tier.objects.filter(organization=org, name="Free").first()
    if api is None or tier is None:
        return None, ""
    app = Application.objects.filter(
        organization=org, owner=subscriber, name=APP_NAME, deleted_at=None
    ).first() or services.application_create(
        organization=org,
        owner=subscriber,
        name=APP_NAME,
        description="Shows the weather in a few cities.",
    )
    sub = (
        Subscription.objects.filter(application=app, api=api)
        .exclude(state=SubscriptionState.CANCELLED)
        .first()
    )
    if sub is None:
        sub = services.subscription_create(
            application=app, api=api, tier=tier, actor=subscriber
        ).subscription
    raw = ""
    if not app.keys.exists():
        raw = services.api_key_create(
            application=app, actor=subscriber, name="demo"
        ).raw
    return sub, raw
