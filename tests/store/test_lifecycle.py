"""The subscription lifecycle's table of moves, and the functions that make them:
every allowed move moves the row and records it, a refused move writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from store import hooks, lifecycle
from store.lifecycle import MoveRefused
from store.models import Subscription, SubscriptionEvent
from store.models import SubscriptionEventKind as K
from store.models import SubscriptionState as S
from tests.publisher.helpers import make_tier
from tests.store.conftest import flat

pytestmark = pytest.mark.django_db

T0 = datetime(2027, 3, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=3)
NEW = ""
LIVE = {S.PENDING_PAYMENT, S.ACTIVE, S.TRIALING, S.ON_HOLD, S.BLOCKED}
STARTED = LIVE - {S.PENDING_PAYMENT}


def stay(*states: str) -> dict[str, set[str]]:
    return {state: {state} for state in states}


# The lifecycle as the store, billing and the catalog rely on it, written out in
# full: event kind → from state → the states it may end in.
EXPECTED: dict[str, dict[str, set[str]]] = {
    K.CREATED: {NEW: {S.PENDING_PAYMENT, S.ACTIVE}},
    K.CHECKOUT_STARTED: stay(*LIVE),
    K.CHECKOUT_COMPLETED: stay(*LIVE),
    K.ACTIVATED: {S.PENDING_PAYMENT: {S.ACTIVE, S.TRIALING}},
    K.CARD_UPDATED: stay(*STARTED),
    K.TIER_UPGRADED: {S.ACTIVE: {S.ACTIVE}, S.TRIALING: {S.TRIALING, S.ACTIVE}},
    K.TIER_DOWNGRADE_SCHEDULED: stay(S.ACTIVE),
    K.TIER_DOWNGRADE_UNSCHEDULED: stay(S.ACTIVE, S.ON_HOLD, S.BLOCKED),
    K.CANCEL_SCHEDULED: stay(*STARTED),
    K.CANCEL_UNSCHEDULED: stay(*STARTED),
    K.CANCELLED_NOW: {state: {S.CANCELLED} for state in LIVE},
    K.BLOCKED: {
        state: {S.BLOCKED}
        for state in (S.PENDING_PAYMENT, S.ACTIVE, S.TRIALING, S.ON_HOLD)
    },
    K.UNBLOCKED: {S.BLOCKED: {S.PENDING_PAYMENT, S.ON_HOLD, S.TRIALING, S.ACTIVE}},
    K.API_RETIRED: {state: {S.CANCELLED} for state in LIVE},
    K.PAYMENT_FAILED: {S.ACTIVE: {S.ON_HOLD}},
    K.PAYMENT_RECOVERED: {S.ON_HOLD: {S.ACTIVE}, S.BLOCKED: {S.ACTIVE}},
    K.BLOCKED_FOR_NONPAYMENT: {S.ON_HOLD: {S.BLOCKED}},
    K.TRIAL_ENDED: {S.TRIALING: {S.ACTIVE}},
    K.CANCELLED_AT_PERIOD_END: {state: {S.CANCELLED} for state in STARTED},
    K.TIER_DOWNGRADED: stay(S.ACTIVE, S.ON_HOLD, S.BLOCKED),
    K.TIER_VERSION_MIGRATED: stay(*STARTED),
}
STATES = [NEW, *S.values]


def test_every_event_kind_is_a_move_of_the_table():
    assert set(lifecycle.MOVES) == set(K) == set(EXPECTED)


@pytest.mark.parametrize("kind", list(K))
def test_the_table_allows_exactly_these_moves(kind):
    expected = EXPECTED[kind]
    for source in STATES:
        assert lifecycle.allowed(source, kind) == (source in expected), source
        for target in S.values:
            allowed = target in expected.get(source, ())
            assert lifecycle.allowed(source, kind, target) == allowed, (source, target)


# --- Every allowed move, made by its function -------------------------------------


@pytest.fixture
def trial(world):
    return make_tier(world.org, "Trial", price=flat("30.00", trial=14))


@pytest.fixture
def announced():
    """The changes `store.hooks.subscriptions_changed` announced."""
    seen: list = []

    def receiver(sender, *, changes, **kwargs):
        seen.extend(changes)

    hooks.subscriptions_changed.connect(receiver, dispatch_uid="test-lifecycle")
    yield seen
    hooks.subscriptions_changed.disconnect(dispatch_uid="test-lifecycle")


def reach(shop, trial, app, world, state: str, *, prepare: str = "") -> Subscription:
    """A subscription brought to `state` by the lifecycle's own moves. `prepare`:
    "scheduled" (a downgrade scheduled first), "cancel" (a cancellation scheduled
    first), "dunning" (BLOCKED for nonpayment rather than by the publisher)."""
    tier = {
        S.TRIALING: trial,
        S.PENDING_PAYMENT: shop.metered,
    }.get(state, shop.gold if prepare == "scheduled" else shop.metered)
    sub = lifecycle.create(
        application=app,
        api=shop.api,
        tier=tier,
        subscriber=world.subscriber,
        customer=None,
        at=T0,
    )
    if state == S.PENDING_PAYMENT:
        return sub
    sub = lifecycle.activate(sub, at=T0)
    if prepare == "scheduled":
        lifecycle.change_tier(lifecycle.lock(sub), tier=shop.metered, usage=0, at=T0)
    if state == S.ON_HOLD or (state == S.BLOCKED and prepare == "dunning"):
        lifecycle.put_on_hold(sub, at=T0, grace_until=T0 + timedelta(days=7))
    if state == S.BLOCKED:
        if prepare == "dunning":
            lifecycle.block_for_nonpayment([sub], at=T0, reason="Unpaid.")
        else:
            sub = lifecycle.block(sub, at=T0, actor=None, reason="Abuse.")
    if state == S.CANCELLED:
        sub = lifecycle.cancel(sub, at=T0, actor=None, at_period_end=False)
    if prepare == "cancel":
        lifecycle.cancel(sub, at=T0, actor=None, at_period_end=True)
    sub.refresh_from_db()
    assert sub.state == state
    return sub


def _bulk(change) -> None:
    lifecycle.save_all([change], now=LATER)


# kind → (what `reach` prepares, the move made by its function)
MAKE = {
    K.CHECKOUT_STARTED: ("", lambda sub, shop: lifecycle.record(sub, K.CHECKOUT_STARTED, at=LATER)),
    K.CHECKOUT_COMPLETED: ("", lambda sub, shop: lifecycle.record(sub, K.CHECKOUT_COMPLETED, at=LATER)),
    K.CARD_UPDATED: ("", lambda sub, shop: lifecycle.record(sub, K.CARD_UPDATED, at=LATER)),
    K.ACTIVATED: ("", lambda sub, shop: lifecycle.activate(sub, at=LATER)),
    K.TIER_UPGRADED: ("", lambda sub, shop: lifecycle.change_tier(lifecycle.lock(sub), tier=shop.gold, usage=0, at=LATER)),
    K.TIER_DOWNGRADE_SCHEDULED: ("", lambda sub, shop: lifecycle.change_tier(lifecycle.lock(sub), tier=shop.free, usage=0, at=LATER)),
    K.TIER_DOWNGRADE_UNSCHEDULED: ("scheduled", lambda sub, shop: lifecycle.drop_scheduled_change(sub, at=LATER, actor=None)),
    K.CANCEL_SCHEDULED: ("", lambda sub, shop: lifecycle.cancel(sub, at=LATER, actor=None, at_period_end=True)),
    K.CANCEL_UNSCHEDULED: ("cancel", lambda sub, shop: lifecycle.resume(sub, at=LATER, actor=None)),
    K.CANCELLED_NOW: ("", lambda sub, shop: lifecycle.cancel(sub, at=LATER, actor=None, at_period_end=False)),
    K.BLOCKED: ("", lambda sub, shop: lifecycle.block(sub, at=LATER, actor=None, reason="Abuse.")),
    K.UNBLOCKED: ("", lambda sub, shop: lifecycle.unblock(sub, at=LATER, actor=None)),
    K.API_RETIRED: ("", lambda sub, shop: lifecycle.cancel_for_retired_api(api=shop.api, actor=None, at=LATER)),
    K.PAYMENT_FAILED: ("", lambda sub, shop: lifecycle.put_on_hold(sub, at=LATER, grace_until=LATER + timedelta(days=7))),
    K.PAYMENT_RECOVERED: ("dunning", lambda sub, shop: lifecycle.recover(sub, at=LATER)),
    K.BLOCKED_FOR_NONPAYMENT: ("", lambda sub, shop: lifecycle.block_for_nonpayment([sub], at=LATER, reason="Unpaid.")),
    K.TRIAL_ENDED: ("", lambda sub, shop: _bulk(lifecycle.end_trial(sub, at=LATER, period=(LATER, LATER + timedelta(days=31))))),
    K.CANCELLED_AT_PERIOD_END: ("", lambda sub, shop: _bulk(lifecycle.end_at_period_end(sub, at=LATER))),
    K.TIER_DOWNGRADED: ("scheduled", lambda sub, shop: _bulk(lifecycle.apply_scheduled_tier(sub, at=LATER))),
    K.TIER_VERSION_MIGRATED: ("", lambda sub, shop: _bulk(lifecycle.migrate_tier_version(sub, version_id=shop.gold.current_version_id, at=LATER))),
}  # fmt: skip

ALLOWED = [
    (kind, source)
    for kind, paths in EXPECTED.items()
    if kind != K.CREATED
    for source in sorted(paths)
]


@pytest.mark.parametrize(("kind", "source"), ALLOWED)
def test_every_allowed_move_moves_the_row_records_it_and_announces_it(
    kind, source, shop, trial, app, world, announced
):
    prepare, move = MAKE[kind]
    sub = reach(shop, trial, app, world, source, prepare=prepare)
    before = sub.events.count()
    announced.clear()

    with transaction.atomic():
        move(lifecycle.lock(sub), shop)

    sub.refresh_from_db()
    assert sub.state in EXPECTED[kind][source]
    event = sub.events.order_by("pk").last()
    assert sub.events.count() == before + 1
    assert event.kind == kind
    if lifecycle.MOVES[kind].changes_state:
        assert (event.from_state, event.to_state) == (source, sub.state)
    else:
        assert (event.from_state, event.to_state) == ("", "")
    assert [c.event.kind for c in announced if c.event] == [kind]


@pytest.mark.parametrize(
    ("tier", "state"), [("metered", S.PENDING_PAYMENT), ("free", S.ACTIVE)]
)
def test_creating_a_subscription_records_where_it_starts(
    tier, state, shop, app, world, announced
):
    sub = lifecycle.create(
        application=app,
        api=shop.api,
        tier=getattr(shop, tier),
        subscriber=world.subscriber,
        customer=None,
        at=T0,
    )

    assert sub.state == state
    event = sub.events.get()
    assert (event.kind, event.from_state, event.to_state) == (K.CREATED, "", state)
    assert [c.subscription.pk for c in announced] == [sub.pk]


# --- A refused move in each state writes nothing ----------------------------------

REFUSED = {
    S.PENDING_PAYMENT: (
        lambda sub: lifecycle.put_on_hold(sub, at=LATER, grace_until=LATER),
        "A pending payment subscription cannot be put on hold.",
    ),
    S.ACTIVE: (
        lambda sub: lifecycle.activate(sub, at=LATER),
        "An active subscription cannot be activated.",
    ),
    S.TRIALING: (
        lambda sub: lifecycle.block_for_nonpayment([sub], at=LATER, reason="x"),
        "A trialing subscription cannot be blocked for nonpayment.",
    ),
    S.ON_HOLD: (
        lambda sub: lifecycle.end_trial(sub, at=LATER, period=(LATER, LATER)),
        "An on hold (payment failed) subscription cannot be moved out of a trial.",
    ),
    S.BLOCKED: (
        lambda sub: lifecycle.block(sub, at=LATER, actor=None, reason="Again."),
        "A blocked subscription cannot be blocked.",
    ),
    S.CANCELLED: (
        lambda sub: lifecycle.put_on_hold(sub, at=LATER, grace_until=LATER),
        "A cancelled subscription cannot be put on hold.",
    ),
}


@pytest.mark.parametrize("state", list(REFUSED))
def test_a_refused_move_writes_nothing(state, shop, trial, app, world, announced):
    sub = reach(shop, trial, app, world, state)
    events = list(sub.events.values_list("pk", flat=True))
    announced.clear()
    move, message = REFUSED[state]

    with pytest.raises(MoveRefused) as refused, transaction.atomic():
        move(lifecycle.lock(sub))

    assert refused.value.messages == [message]
    sub.refresh_from_db()
    assert sub.state == state
    assert list(sub.events.values_list("pk", flat=True)) == events
    assert announced == []


def test_a_publishers_block_is_not_lifted_by_a_payment(shop, trial, app, world):
    sub = reach(shop, trial, app, world, S.BLOCKED)

    with pytest.raises(MoveRefused), transaction.atomic():
        lifecycle.recover(lifecycle.lock(sub), at=LATER)

    sub.refresh_from_db()
    assert sub.state == S.BLOCKED
    assert not SubscriptionEvent.objects.filter(
        subscription=sub, kind=K.PAYMENT_RECOVERED
    ).exists()
