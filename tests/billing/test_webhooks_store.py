"""The store's Checkout (subscription on the connected account) completed through
apimon's own webhook endpoint: routed by `metadata.apimon_purpose` to the store."""

from __future__ import annotations

import pytest

from store.models import Subscription, SubscriptionState
from tests.gateway.conftest import (  # noqa: F401 - fixtures the store's need
    backend_url,
    gateway,
    metering,
    redis_db,
    short_lived_connections,
)
from tests.store.conftest import (  # noqa: F401 - the store's fixtures, reused
    app,
    clean_redis,
    monetized,
    pay,
    shop,
    store_url,
)

pytestmark = pytest.mark.django_db


def test_a_subscribers_checkout_completed_webhook_activates_the_subscription(
    world,
    shop,  # noqa: F811
    app,  # noqa: F811
    monetized,  # noqa: F811
    stripe_emulator,
    stripe_webhooks,
    client_for,
    django_capture_on_commit_callbacks,
):
    client = client_for(world.subscriber)
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    pay(stripe_emulator, response["Location"])  # the browser never comes back

    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhooks.deliver()

    assert ("checkout.session.completed", 200) in stripe_webhooks.responses
    subscription = Subscription.objects.get(application=app)
    assert subscription.state == SubscriptionState.ACTIVE
