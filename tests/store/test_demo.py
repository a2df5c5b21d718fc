"""The demo's store data (`manage.py seed_demo`)."""

from __future__ import annotations

from store.models import ApiKey, SubscriptionState


def test_the_demo_seeds_a_free_subscription_and_one_key_once(db):
    from apimon import demo

    first = demo.seed()
    second = demo.seed()
    sub = first.subscription
    assert sub.state == SubscriptionState.ACTIVE and sub.tier.name == "Free"
    assert sub.subscriber.email == "subscriber@acme.localhost"
    assert first.api_key.startswith("am_") and second.api_key == ""
    assert second.subscription == sub
    assert ApiKey.objects.filter(application=sub.application).count() == 1
