"""The API lifecycle: transitions, their confirmation page, their effects on
subscriptions, the gateway and the store."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apimon.models import Membership, RestrictedAccess, User
from publisher import selectors, services
from publisher.models import ApiState, ApiStateChange, LifecycleAction, Visibility
from store import selectors as store_selectors
from store.models import Subscription, SubscriptionEvent, SubscriptionState
from tests.conftest import make_user
from tests.publisher.helpers import make_api, make_tier, per_unit, subscribe

A = LifecycleAction


GATEWAY_URL = "/gateway/acme/weather/v1/fast"  # the `metering` fixture's API


def url(api, action):
    return f"/t/{api.organization.slug}/publisher/apis/{api.pk}/lifecycle/{action}/"


@pytest.fixture
def published(world):
    tier = make_tier(world.org, name="Gold")
    return make_api(world.org, tiers=[tier], publish=True)


def move(api, action):
    return services.api_transition(api=api, action=action, actor=None)


@pytest.mark.django_db
def test_publishing_needs_a_tier_that_is_not_archived(world, client_for):
    api = make_api(world.org)
    client = client_for(world.publisher)

    page = client.get(url(api, "publish")).content.decode()
    assert "Offer the API on at least one tier" in page

    response = client.post(url(api, "publish"), follow=True)
    assert "Offer the API on at least one tier" in response.content.decode()
    api.refresh_from_db()
    assert api.state == ApiState.CREATED

    tier = make_tier(world.org)
    services.api_set_tiers(api=api, tiers=[tier], actor=None)
    services.tier_archive(tier=tier, actor=None)
    with pytest.raises(ValidationError):
        move(api, A.PUBLISH)


@pytest.mark.django_db
def test_the_confirmation_page_says_what_will_happen_and_changes_nothing(
    world, client_for, published
):
    subscribe(published, published.tiers.get(), world.subscriber)
    page = client_for(world.publisher).get(url(published, "retire")).content.decode()
    assert "1 live subscription end now" in page
    assert "410 Gone" in page
    assert "cannot be undone" in page
    published.refresh_from_db()
    assert published.state == ApiState.PUBLISHED


@pytest.mark.django_db(transaction=True)
def test_a_publisher_walks_an_api_through_its_lifecycle(metering, gateway, client_for):
    """Each step reaches the real gateway with the very next request."""
    api = metering.api
    client = client_for(User.objects.get(email="owner@acme.test"))
    assert gateway.get(GATEWAY_URL, key=metering.key).status_code == 200
    steps = [
        ("deprecate", ApiState.DEPRECATED, 200),  # its subscribers keep calling it
        ("publish", ApiState.PUBLISHED, 200),
        ("block", ApiState.BLOCKED, 503),
        ("unblock", ApiState.PUBLISHED, 200),
        ("deprecate", ApiState.DEPRECATED, 200),
        ("retire", ApiState.RETIRED, 410),
    ]
    for action, state, status in steps:
        response = client.post(url(api, action))
        assert response.status_code == 302
        api.refresh_from_db()
        assert api.state == state, action
        assert gateway.get(GATEWAY_URL, key=metering.key).status_code == status, action
    assert gateway.get(GATEWAY_URL).status_code == 410  # keyless callers too
    history = list(
        ApiStateChange.objects.filter(api=api)
        .order_by("at", "pk")
        .values_list("action", "to_state")
    )
    assert history == [(a, s) for a, s, _ in steps]


@pytest.mark.django_db
def test_retired_is_final(world, client_for, published):
    move(published, A.RETIRE)
    client = client_for(world.publisher)
    for action in ("publish", "deprecate", "block", "unblock", "retire"):
        client.post(url(published, action))
        published.refresh_from_db()
        assert published.state == ApiState.RETIRED
    page = client.get(f"/t/acme/publisher/apis/{published.pk}/").content.decode()
    assert "Publish…" not in page and "Block…" not in page


@pytest.mark.parametrize(
    ("start", "action"),
    [
        ([], A.DEPRECATE),
        ([], A.RETIRE),
        ([], A.UNBLOCK),
        ([A.PUBLISH], A.PUBLISH),
        ([A.PUBLISH], A.UNBLOCK),
        ([A.PUBLISH, A.BLOCK], A.BLOCK),
        ([A.PUBLISH, A.BLOCK], A.RETIRE),
    ],
)
@pytest.mark.django_db
def test_moves_outside_the_lifecycle_are_refused(world, start, action):
    tier = make_tier(world.org)
    api = make_api(world.org, tiers=[tier])
    for step in start:
        move(api, step)
    before = api.state
    with pytest.raises(ValidationError):
        move(api, action)
    api.refresh_from_db()
    assert api.state == before


@pytest.mark.django_db
def test_an_unknown_action_is_404(world, client_for, published):
    assert client_for(world.publisher).get(url(published, "delete")).status_code == 404
    assert client_for(world.publisher).post(url(published, "delete")).status_code == 404


@pytest.mark.django_db
def test_retiring_ends_the_live_subscriptions_and_hands_them_to_billing(
    world, published, django_capture_on_commit_callbacks
):
    tier = published.tiers.get()  # free
    metered = make_tier(world.org, name="Metered", price=per_unit())
    services.api_set_tiers(api=published, tiers=[tier, metered], actor=None)
    other_api = make_api(world.org, context="other", tiers=[metered], publish=True)
    a = subscribe(published, tier, world.subscriber)
    b = subscribe(published, metered, make_user("b@x.test"), state="ON_HOLD")
    done = subscribe(published, metered, make_user("c@x.test"), state="CANCELLED")
    elsewhere = subscribe(other_api, metered, world.subscriber)

    with django_capture_on_commit_callbacks(execute=True):
        change = move(published, A.RETIRE)

    for sub, before in ((a, "ACTIVE"), (b, "ON_HOLD")):
        sub.refresh_from_db()
        assert sub.state == SubscriptionState.CANCELLED
        assert sub.cancelled_at == change.at
        event = SubscriptionEvent.objects.get(subscription=sub)
        assert (event.kind, event.from_state, event.to_state) == (
            "api_retired",
            before,
            "CANCELLED",
        )
    done.refresh_from_db()
    elsewhere.refresh_from_db()
    assert done.cancelled_at is None
    assert elsewhere.state == SubscriptionState.ACTIVE
    assert not SubscriptionEvent.objects.filter(subscription__in=[done, elsewhere])
    # Billing's job writes the final invoice of the paid one now (usage to date);
    # the free one has nothing to invoice, the others are not touched.
    assert b.next_invoice_at == change.at
    assert a.next_invoice_at is None
    assert (done.next_invoice_at, elsewhere.next_invoice_at) == (None, None)
    assert "2 live subscription(s) cancelled." in change.note


@pytest.mark.django_db
def test_blocking_keeps_subscriptions_and_unblocking_restores_the_state(
    world, published
):
    sub = subscribe(published, published.tiers.get(), world.subscriber)
    move(published, A.DEPRECATE)
    move(published, A.BLOCK)
    published.refresh_from_db()
    assert (published.state, published.state_before_block) == ("BLOCKED", "DEPRECATED")
    assert selectors.gateway_refusal_status(published) == 503
    sub.refresh_from_db()
    assert sub.state == SubscriptionState.ACTIVE

    move(published, A.UNBLOCK)
    published.refresh_from_db()
    assert (published.state, published.state_before_block) == ("DEPRECATED", "")
    assert selectors.gateway_refusal_status(published) is None


@pytest.mark.django_db
def test_the_gateway_status_of_each_state(world, published):
    assert selectors.gateway_refusal_status(published) is None
    move(published, A.RETIRE)
    assert selectors.gateway_refusal_status(published) == 410
    assert selectors.gateway_refusal_status(make_api(world.org, context="new")) == 404


@pytest.mark.django_db
def test_a_publisher_cannot_retire_another_organizations_api(world, client_for):
    tier = make_tier(world.other_org)
    theirs = make_api(world.other_org, tiers=[tier], publish=True)
    sub = subscribe(theirs, tier, world.outsider)
    client = client_for(world.publisher)

    path = f"/t/acme/publisher/apis/{theirs.pk}/lifecycle/retire/"
    assert client.get(path).status_code == 404
    assert client.post(path).status_code == 404
    theirs.refresh_from_db()
    sub.refresh_from_db()
    assert theirs.state == ApiState.PUBLISHED
    assert sub.state == SubscriptionState.ACTIVE
    assert ApiStateChange.objects.filter(api=theirs).count() == 2  # create, publish


@pytest.mark.django_db
def test_a_subscriber_gets_403_and_an_outsider_404_on_lifecycle_actions(
    world, client_for, published
):
    assert (
        client_for(world.subscriber).post(url(published, "retire")).status_code == 403
    )
    assert client_for(world.outsider).post(url(published, "retire")).status_code == 404
    published.refresh_from_db()
    assert published.state == ApiState.PUBLISHED


# -- what the store will see ---------------------------------------------------------


@pytest.mark.django_db
def test_the_store_lists_only_published_apis(world, published):
    tier = published.tiers.get()
    make_api(world.org, context="created", tiers=[tier])
    deprecated = make_api(world.org, context="old", tiers=[tier], publish=True)
    move(deprecated, A.DEPRECATE)
    blocked = make_api(world.org, context="blocked", tiers=[tier], publish=True)
    move(blocked, A.BLOCK)
    make_api(world.other_org, context="theirs", tiers=[make_tier(world.other_org)])

    visible = selectors.store_visible_apis(world.org, None)
    assert [a.context for a in visible] == ["weather"]
    assert selectors.api_accepts_subscriptions(published)
    assert not selectors.api_accepts_subscriptions(deprecated)


@pytest.mark.django_db
def test_restricted_apis_are_for_publishers_and_approved_subscribers_only(
    world, published
):
    published.visibility = Visibility.RESTRICTED
    published.save()
    assert not selectors.store_visible_apis(world.org, None).exists()
    assert not selectors.store_visible_apis(world.org, world.outsider).exists()
    assert not selectors.store_visible_apis(world.org, world.subscriber).exists()
    for insider in (world.owner, world.publisher):
        assert selectors.store_visible_apis(world.org, insider).get() == published
    Membership.objects.filter(user=world.subscriber).update(
        restricted_access=RestrictedAccess.APPROVED
    )
    assert selectors.store_visible_apis(world.org, world.subscriber).get() == published


@pytest.mark.django_db
def test_deprecated_apis_stay_visible_to_their_subscribers_only(world, published):
    from django.http import Http404

    subscribe(published, published.tiers.get(), world.subscriber)
    move(published, A.DEPRECATE)
    assert store_selectors.store_get_api(world.org, world.subscriber, published.pk)
    other = make_user("other@acme.test")
    with pytest.raises(Http404):
        store_selectors.store_get_api(world.org, other, published.pk)
    with pytest.raises(Http404):
        store_selectors.store_get_api(world.other_org, world.subscriber, published.pk)
    assert not selectors.store_tiers(published).exists()


@pytest.mark.django_db
def test_the_store_offers_only_tiers_that_are_not_archived(world, published):
    gold = published.tiers.get()
    silver = make_tier(world.org, name="Silver")
    services.api_set_tiers(api=published, tiers=[gold, silver], actor=None)
    services.tier_archive(tier=silver, actor=None)
    assert list(selectors.store_tiers(published)) == [gold]
    assert selectors.tier_accepts_subscriptions(published, gold)
    assert not selectors.tier_accepts_subscriptions(published, silver)
    assert not selectors.tier_accepts_subscriptions(
        published, make_tier(world.org, name="Not offered")
    )


@pytest.mark.django_db
def test_the_api_page_shows_its_history(world, client_for, published):
    move(published, A.DEPRECATE)
    page = client_for(world.publisher).get(f"/t/acme/publisher/apis/{published.pk}/")
    history = [c.to_state for c in page.context["history"]]
    assert history == ["DEPRECATED", "PUBLISHED", "CREATED"]
    assert Subscription.objects.count() == 0
