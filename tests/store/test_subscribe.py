"""Subscribe: free tiers at once, paid tiers through Stripe Checkout on the
publisher's connected account, confirmed by the return or the webhook."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from django.core.exceptions import ValidationError
from django.utils import timezone

from apimon import stripe_client as sc
from apimon.payment_errors import StripeUnavailable
from pricing.periods import period_bounds
from publisher import services as publisher_services
from publisher.models import LifecycleAction, TierVersion
from store import services
from store.models import StripeCustomer, Subscription, SubscriptionState
from tests.fixtures.stripe import connect_account
from tests.publisher.helpers import make_tier
from tests.store.conftest import (
    complete_by_webhook,
    enable_monetization,
    flat,
    kinds,
    local,
    pay,
    store_url,
    subscribe_paid,
)


def test_a_free_tier_is_active_at_once(world, shop, app, client_for):
    client = client_for(world.subscriber)
    before = timezone.now()
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.free.pk},
    )
    sub = Subscription.objects.get(application=app)
    assert response.status_code == 302
    assert response["Location"] == store_url(shop.org, f"subscriptions/{sub.pk}/")
    assert sub.state == SubscriptionState.ACTIVE
    assert sub.customer is None and sub.next_invoice_at is None
    assert before <= sub.started_at <= timezone.now()
    assert (sub.current_period_start, sub.current_period_end) == period_bounds(
        sub.started_at, "month", 0
    )
    assert kinds(sub) == ["created"]
    page = client.get(response["Location"]).content.decode()
    assert "Active" in page and "Free tier: no invoices." in page


def test_a_paid_tier_goes_through_checkout_and_becomes_active(
    world, shop, app, monetized, stripe_emulator, client_for
):
    client = client_for(world.subscriber)
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    assert response.status_code == 302
    assert "/c/pay/cs_test_" in response["Location"]
    sub = Subscription.objects.get(application=app)
    assert sub.state == SubscriptionState.PENDING_PAYMENT
    assert sub.checkout_session_id in response["Location"]
    customer = sub.customer
    assert customer.stripe_account_id == monetized
    assert customer.user == world.subscriber

    # The session lives on the connected account, in setup mode, with our metadata.
    session = sc.get_client().v1.checkout.sessions.retrieve(
        sub.checkout_session_id, {}, sc.request_options(account=monetized)
    )
    assert (session.mode, session.currency, session.customer) == (
        "setup",
        "usd",
        customer.stripe_customer_id,
    )
    assert session.metadata.to_dict() == {
        "apimon_purpose": "subscription",
        "subscription_id": str(sub.pk),
        "organization_id": str(shop.org.pk),
        "action": "subscribe",
    }

    back = pay(stripe_emulator, response["Location"])
    assert back.startswith("http://testserver" + store_url(shop.org))
    assert f"session_id={sub.checkout_session_id}" in back
    response = client.get(local(back))
    assert response.status_code == 302

    sub.refresh_from_db()
    customer.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE
    # FLAT has an in-advance fee and no trial: billing issues the start invoice now.
    assert sub.next_invoice_at == sub.started_at
    assert sub.current_period_end == period_bounds(sub.started_at, "month", 1)[0]
    # The card is this subscription's (its invoices name it), not the customer's
    # default for every subscription.
    assert (sub.card_brand, sub.card_last4) == ("visa", "4242")
    method = sc.get_client().v1.payment_methods.retrieve(
        sub.payment_method_id, {}, sc.request_options(account=monetized)
    )
    assert method.customer == customer.stripe_customer_id
    assert customer.default_payment_method_id == ""
    assert kinds(sub) == [
        "created",
        "checkout_started",
        "checkout_completed",
        "activated",
    ]
    page = client.get(store_url(shop.org, f"subscriptions/{sub.pk}/")).content.decode()
    assert "Your card is saved. The subscription is active." in page
    assert "Visa •••• 4242" in page


def test_a_per_request_tier_is_invoiced_at_the_period_end(
    world, shop, app, monetized, stripe_emulator, client_for
):
    sub = subscribe_paid(
        client_for(world.subscriber), shop, app, stripe_emulator, tier=shop.metered
    )
    assert sub.state == SubscriptionState.ACTIVE
    assert sub.next_invoice_at == sub.current_period_end


def test_a_tier_with_trial_days_starts_trialing(
    world, shop, app, monetized, stripe_emulator, client_for
):
    trial = make_tier(shop.org, "Trial Gold", price=flat("49.00", trial=14))
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, trial], actor=None
    )
    sub = subscribe_paid(
        client_for(world.subscriber), shop, app, stripe_emulator, tier=trial
    )
    assert sub.state == SubscriptionState.TRIALING
    assert sub.trial_end == sub.started_at + timedelta(days=14)
    assert sub.next_invoice_at == sub.trial_end


def test_the_webhook_confirms_when_the_browser_never_comes_back(
    world, shop, app, monetized, stripe_emulator, stripe_webhook_capture, client_for
):
    client = client_for(world.subscriber)
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    pay(stripe_emulator, response["Location"])  # …and the tab is closed
    stripe_emulator.deliver_pending()
    event = next(
        e
        for e in stripe_webhook_capture.events()
        if e["type"] == "checkout.session.completed"
    )
    assert event["account"] == monetized

    services.checkout_session_completed(event["data"]["object"])

    sub = Subscription.objects.get(application=app)
    assert sub.state == SubscriptionState.ACTIVE
    # The webhook again, then the late browser: nothing happens twice.
    services.checkout_session_completed(event["data"]["object"], account=monetized)
    back = client.get(
        store_url(shop.org, f"subscriptions/{sub.pk}/checkout/return/")
        + f"?session_id={sub.checkout_session_id}"
    )
    assert back.status_code == 302
    assert kinds(sub).count("activated") == 1
    assert kinds(sub).count("checkout_completed") == 1


def test_the_return_first_then_the_webhook_does_nothing(
    world, shop, app, monetized, stripe_emulator, stripe_webhook_capture, client_for
):
    sub = subscribe_paid(client_for(world.subscriber), shop, app, stripe_emulator)
    started_at = sub.started_at
    complete_by_webhook(stripe_emulator, stripe_webhook_capture, monetized)
    sub.refresh_from_db()
    assert sub.started_at == started_at
    assert kinds(sub).count("activated") == 1


def test_an_unpaid_checkout_leaves_the_subscription_pending(
    world, shop, app, monetized, client_for
):
    client = client_for(world.subscriber)
    client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    sub = Subscription.objects.get(application=app)
    response = client.get(
        store_url(shop.org, f"subscriptions/{sub.pk}/checkout/return/")
        + f"?session_id={sub.checkout_session_id}",
        follow=True,
    )
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.PENDING_PAYMENT
    page = response.content.decode()
    assert "The card is not saved yet." in page
    assert "Complete payment" in page


def test_complete_payment_opens_checkout_again(
    world, shop, app, monetized, stripe_emulator, client_for
):
    client = client_for(world.subscriber)
    client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    sub = Subscription.objects.get(application=app)
    first = sub.checkout_session_id
    response = client.post(store_url(shop.org, f"subscriptions/{sub.pk}/checkout/"))
    sub.refresh_from_db()
    assert response.status_code == 302 and sub.checkout_session_id != first
    # Paying the first (older) session still confirms: it is one this subscription
    # started.
    first_url = (
        sc.get_client()
        .v1.checkout.sessions.retrieve(first, {}, sc.request_options(account=monetized))
        .url
    )
    client.get(local(pay(stripe_emulator, first_url)))
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE


def test_the_stripe_customer_is_made_once_per_subscriber_and_reused(
    world, shop, app, monetized, stripe_emulator, client_for
):
    client = client_for(world.subscriber)
    subscribe_paid(client, shop, app, stripe_emulator)
    other_app = services.application_create(
        organization=shop.org, owner=world.subscriber, name="Second"
    )
    subscribe_paid(client, shop, other_app, stripe_emulator, tier=shop.metered)
    assert StripeCustomer.objects.filter(user=world.subscriber).count() == 1
    customers = sc.get_client().v1.customers.list(
        {}, sc.request_options(account=monetized)
    )
    assert len(customers.data) == 1


def test_a_session_of_another_account_never_activates_anything(
    world, shop, app, monetized, stripe_emulator, client_for
):
    client = client_for(world.subscriber)
    client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    sub = Subscription.objects.get(application=app)
    # Another organization's account makes a session that claims to be ours.
    other = connect_account(stripe_emulator, email="x@globex.test")
    enable_monetization(world.other_org, other)
    options = sc.request_options(account=other)
    client_ = sc.get_client()
    customer = client_.v1.customers.create({"email": "evil@example.com"}, options)
    forged = client_.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "currency": "usd",
            "customer": customer.id,
            "success_url": "http://testserver/",
            "cancel_url": "http://testserver/",
            "metadata": {
                "apimon_purpose": "subscription",
                "subscription_id": str(sub.pk),
                "organization_id": str(shop.org.pk),
                "action": "subscribe",
            },
        },
        options,
    )
    pay(stripe_emulator, forged.url)
    session = client_.v1.checkout.sessions.retrieve(forged.id, {}, options)

    services.checkout_session_completed(session.to_dict(), account=other)
    services.checkout_session_completed(session.to_dict())
    client.get(
        store_url(shop.org, f"subscriptions/{sub.pk}/checkout/return/")
        + f"?session_id={forged.id}"
    )
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.PENDING_PAYMENT
    assert "checkout_completed" not in kinds(sub)


def test_the_webhook_ignores_unknown_organizations_and_bad_metadata(
    world, shop, app, monetized, stripe_emulator, client_for
):
    # A paid session whose subscription is still pending (the browser never came
    # back): the session is real, only the webhook's metadata is bad.
    response = client_for(world.subscriber).post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    pay(stripe_emulator, response["Location"])
    sub = Subscription.objects.get(application=app)
    options = sc.request_options(account=monetized)
    session = (
        sc.get_client()
        .v1.checkout.sessions.retrieve(sub.checkout_session_id, {}, options)
        .to_dict()
    )

    def state():
        sub.refresh_from_db()
        customer = StripeCustomer.objects.get(pk=sub.customer_id)
        on_stripe = sc.get_client().v1.customers.retrieve(
            customer.stripe_customer_id, {}, options
        )
        return {
            "subscription": (sub.state, sub.started_at, sub.next_invoice_at),
            "events": kinds(sub),
            "customer": (
                sub.payment_method_id,
                sub.card_last4,
                on_stripe.invoice_settings.default_payment_method,
            ),
            "customers": StripeCustomer.objects.count(),
        }

    before = state()
    assert before["subscription"] == (SubscriptionState.PENDING_PAYMENT, None, None)
    assert before["customer"][:2] == ("", "")

    real = session["metadata"]
    for metadata in (
        {},  # none
        real | {"organization_id": "abc"},  # not a number
        real | {"organization_id": str(world.other_org.pk)},  # no connected account
    ):
        services.checkout_session_completed(session | {"metadata": metadata})

    assert state() == before
    # The same session with its own metadata does activate it.
    services.checkout_session_completed(session, account=monetized)
    after = state()
    assert after["subscription"][0] == SubscriptionState.ACTIVE
    assert after["events"] == [*before["events"], "checkout_completed", "activated"]
    assert after["customer"][1] == "4242"


def test_one_application_holds_one_subscription_per_api(world, shop, app, client_for):
    client = client_for(world.subscriber)
    url = store_url(shop.org, f"apis/{shop.api.pk}/subscribe/")
    client.post(url, {"application": app.pk, "tier": shop.free.pk})
    response = client.post(url, {"application": app.pk, "tier": shop.free.pk})
    assert response.status_code == 200
    assert "already subscribed" in response.content.decode()
    assert Subscription.objects.filter(application=app).count() == 1


def test_a_paid_tier_is_unavailable_without_monetization(world, shop, app, client_for):
    client = client_for(world.subscriber)
    page = client.get(store_url(shop.org, f"apis/{shop.api.pk}/")).content.decode()
    assert "Not available yet: the publisher has not enabled payments." in page
    assert f'value="{shop.gold.pk}" disabled' in page
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )
    assert response.status_code == 200
    assert not Subscription.objects.exists()
    with pytest.raises(ValidationError, match="does not take payments"):
        services.subscription_create(
            application=app, api=shop.api, tier=shop.gold, actor=world.subscriber
        )


@pytest.mark.parametrize("action", [LifecycleAction.DEPRECATE, LifecycleAction.BLOCK])
def test_an_api_that_is_not_published_takes_no_new_subscriptions(
    world, shop, app, action
):
    publisher_services.api_transition(api=shop.api, action=action, actor=None)
    with pytest.raises(ValidationError, match="takes no new subscriptions"):
        services.subscription_create(
            application=app, api=shop.api, tier=shop.free, actor=world.subscriber
        )


def test_a_deprecated_api_is_not_subscribable_from_its_page(
    world, shop, app, client_for
):
    client = client_for(world.subscriber)
    client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.free.pk},
    )
    other = services.application_create(
        organization=shop.org, owner=world.subscriber, name="Other"
    )
    publisher_services.api_transition(
        api=shop.api, action=LifecycleAction.DEPRECATE, actor=None
    )
    page = client.get(store_url(shop.org, f"apis/{shop.api.pk}/"))
    assert page.status_code == 200  # the subscriber still reaches it
    assert "takes no new subscriptions" in page.content.decode()
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": other.pk, "tier": shop.free.pk},
    )
    assert response.status_code == 200
    assert not Subscription.objects.filter(application=other).exists()


def test_an_archived_or_unoffered_tier_is_refused(world, shop, app):
    lonely = make_tier(shop.org, "Not offered")
    with pytest.raises(ValidationError, match="not offered"):
        services.subscription_create(
            application=app, api=shop.api, tier=lonely, actor=world.subscriber
        )
    publisher_services.tier_archive(tier=shop.free, actor=None)
    with pytest.raises(ValidationError, match="not offered"):
        services.subscription_create(
            application=app, api=shop.api, tier=shop.free, actor=world.subscriber
        )


def test_another_subscribers_application_cannot_subscribe(world, shop, app, client_for):
    client = client_for(world.publisher)  # a member, but not the app's owner
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.free.pk},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    with pytest.raises(ValidationError):
        services.subscription_create(
            application=app, api=shop.api, tier=shop.free, actor=world.publisher
        )
    assert not Subscription.objects.exists()


def test_an_outsider_cannot_subscribe(world, shop, app, client_for):
    client = client_for(world.outsider)
    response = client.post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.free.pk},
    )
    assert response.status_code == 404
    assert not Subscription.objects.exists()


def test_another_organizations_api_is_404(world, shop, app, client_for):
    globex_api = __import__("tests.publisher.helpers", fromlist=["make_api"]).make_api(
        world.other_org,
        tiers=[make_tier(world.other_org, "Free")],
        publish=True,
    )
    client = client_for(world.subscriber)
    assert client.get(store_url(shop.org, f"apis/{globex_api.pk}/")).status_code == 404
    response = client.post(
        store_url(shop.org, f"apis/{globex_api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.free.pk},
    )
    assert response.status_code == 404


def test_a_stripe_outage_writes_nothing(world, shop, app, monetized, monkeypatch):
    def boom(*args, **kwargs):
        raise stripe.APIConnectionError("network down")

    customer = services.stripe_customer_for(
        organization=shop.org, user=world.subscriber
    )
    monkeypatch.setattr(
        sc.get_client().v1.checkout.sessions, "create", boom, raising=False
    )
    with pytest.raises(StripeUnavailable):
        services.subscription_create(
            application=app, api=shop.api, tier=shop.gold, actor=world.subscriber
        )
    assert not Subscription.objects.exists()
    assert StripeCustomer.objects.get() == customer


def test_a_tier_in_a_currency_stripe_cannot_charge_opens_no_checkout(
    world, shop, app, monetized, client_for
):
    # A tier priced before the tier form refused IQD.
    TierVersion.objects.filter(tier=shop.gold).update(currency="iqd")
    response = client_for(world.subscriber).post(
        store_url(shop.org, f"apis/{shop.api.pk}/subscribe/"),
        {"application": app.pk, "tier": shop.gold.pk},
    )

    assert response.status_code == 200
    assert "priced in IQD, which the payment provider cannot charge" in (
        response.content.decode()
    )
    assert not Subscription.objects.exists()


def test_subscribing_again_after_an_abandoned_checkout_offers_to_complete_payment(
    world, shop, app, monetized, stripe_emulator, client_for
):
    client = client_for(world.subscriber)
    url = store_url(shop.org, f"apis/{shop.api.pk}/subscribe/")
    client.post(url, {"application": app.pk, "tier": shop.gold.pk})  # then gone
    sub = Subscription.objects.get(application=app)
    first = sub.checkout_session_id

    response = client.post(url, {"application": app.pk, "tier": shop.gold.pk})

    assert response.status_code == 200
    page = response.content.decode()
    assert "change the tier" not in page
    assert (
        f"{app.name} already has a subscription to {shop.api} that waits for "
        "payment: complete the payment to start it."
    ) in page
    checkout = store_url(shop.org, f"subscriptions/{sub.pk}/checkout/")
    assert f'action="{checkout}"' in page
    assert ">Complete payment</button>" in page
    assert Subscription.objects.filter(application=app).count() == 1
    # The button opens Checkout again for that subscription.
    response = client.post(checkout)
    sub.refresh_from_db()
    assert response.status_code == 302 and sub.checkout_session_id != first
    assert response["Location"].startswith("http://127.0.0.1:12111/c/pay/")


# -- one free subscription per subscriber and API ------------------------------------

FREE_TAKEN = "You already use a free tier of Weather API v1 with Dashboard"


def subscribe_url(shop):
    return store_url(shop.org, f"apis/{shop.api.pk}/subscribe/")


@pytest.fixture
def second_app(world):
    return services.application_create(
        organization=world.org, owner=world.subscriber, name="Second"
    )


def test_a_second_application_cannot_take_the_same_free_tier(
    world, shop, app, second_app, client_for
):
    client = client_for(world.subscriber)
    client.post(subscribe_url(shop), {"application": app.pk, "tier": shop.free.pk})

    response = client.post(
        subscribe_url(shop), {"application": second_app.pk, "tier": shop.free.pk}
    )

    assert response.status_code == 200
    assert FREE_TAKEN in response.content.decode()
    assert list(Subscription.objects.values_list("application__name", flat=True)) == [
        "Dashboard"
    ]


def test_nor_another_free_tier_of_the_same_api(world, shop, app, second_app):
    other_free = make_tier(shop.org, "Community", quota_limit=50)
    publisher_services.api_set_tiers(
        api=shop.api, tiers=[shop.free, shop.gold, other_free], actor=None
    )
    services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    )

    with pytest.raises(ValidationError, match=FREE_TAKEN):
        services.subscription_create(
            application=second_app,
            api=shop.api,
            tier=other_free,
            actor=world.subscriber,
        )


def test_the_free_tier_is_free_again_once_the_subscription_is_cancelled(
    world, shop, app, second_app
):
    first = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    services.subscription_cancel(
        subscription=first, actor=world.subscriber, at_period_end=False
    )

    second = services.subscription_create(
        application=second_app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription

    assert second.state == SubscriptionState.ACTIVE


def test_a_blocked_free_subscription_still_holds_the_free_tier(
    world, shop, app, second_app
):
    first = services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    ).subscription
    services.subscription_block(subscription=first, actor=world.owner, reason="abuse")

    with pytest.raises(ValidationError, match=FREE_TAKEN):
        services.subscription_create(
            application=second_app, api=shop.api, tier=shop.free, actor=world.subscriber
        )


def test_the_limit_is_per_subscriber_and_per_api(world, shop, app, client_for):
    from apimon.services import membership_join_store
    from tests.conftest import make_user
    from tests.publisher.helpers import make_api

    services.subscription_create(
        application=app, api=shop.api, tier=shop.free, actor=world.subscriber
    )
    maps = make_api(
        shop.org, name="Maps", context="maps", tiers=[shop.free], publish=True
    )
    services.subscription_create(
        application=app, api=maps, tier=shop.free, actor=world.subscriber
    )
    other = make_user("other.subscriber@acme.test")
    membership_join_store(organization=shop.org, user=other)
    theirs = services.application_create(
        organization=shop.org, owner=other, name="Dashboard"
    )
    services.subscription_create(
        application=theirs, api=shop.api, tier=shop.free, actor=other
    )
    assert Subscription.objects.filter(tier=shop.free).count() == 3


def test_paid_tiers_are_not_limited(
    world, shop, app, second_app, monetized, stripe_emulator, client_for
):
    client = client_for(world.subscriber)
    subscribe_paid(client, shop, app, stripe_emulator)
    subscribe_paid(client, shop, second_app, stripe_emulator)
    assert Subscription.objects.filter(state=SubscriptionState.ACTIVE).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_free_subscriptions_at_once_make_one(world, shop, app, second_app):
    """Two submits of two applications race: the subscriber's membership row is
    locked around the check and the insert, so one waits and is refused."""
    import threading

    from django.db import connections

    barrier, outcomes = threading.Barrier(2), []

    def subscribe(application):
        try:
            barrier.wait()
            services.subscription_create(
                application=application,
                api=shop.api,
                tier=shop.free,
                actor=world.subscriber,
            )
            outcomes.append("subscribed")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=subscribe, args=(a,)) for a in (app, second_app)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["refused", "subscribed"]
