"""A subscription's lifecycle: the table of moves, and the one module that makes
them.

    new ──created──▶ PENDING_PAYMENT ──activated──▶ ACTIVE or TRIALING
    new ──created──▶ ACTIVE (a free tier starts at once)
    TRIALING ──trial_ended──▶ ACTIVE
    ACTIVE ──payment_failed──▶ ON_HOLD ──blocked_for_nonpayment──▶ BLOCKED
    ON_HOLD, or BLOCKED by dunning ──payment_recovered──▶ ACTIVE
    PENDING_PAYMENT / ACTIVE / TRIALING / ON_HOLD ──blocked──▶ BLOCKED (publisher)
    BLOCKED (publisher) ──unblocked──▶ what the rows say (pending, on hold,
                                       trialing or active)
    any live state ──cancelled_now / api_retired──▶ CANCELLED (final)
    a started state ──cancelled_at_period_end──▶ CANCELLED (final)

and moves that keep the state: checkout and card events, tier changes (an upgrade
in a trial to a free tier also ends the trial), scheduling and withdrawing a
cancellation or a downgrade, a tier version taking effect at a period boundary.

Every write of a subscription's `state`, its tier, its billing bookkeeping
(`started_at`, `current_period_start/end`, `trial_end`, `next_invoice_at`) and its
history (`SubscriptionEvent`) goes through here:

- `MOVES` is the table: event kind → the state it starts from → the states it may
  end in. A move not in the table raises `MoveRefused`.
- One function per move, on a locked row (`select_for_update`): the moves a
  subscriber or a publisher asks for lock it themselves (`activate`, `cancel`,
  `resume`, `block`, `unblock`, `drop_scheduled_change`, a retired API's), the others
  take a row their caller locked with `lock()` (a tier change, a checkout event,
  dunning's `put_on_hold` and `recover`), and the moves of billing's batch jobs
  (the dunning job, the billing engine's period steps) rows the job claimed with
  skip_locked, written in bulk by `save_all`. Each move builds a `Change`, the
  fields it sets and the history event it records, and writes both together.
- Every write is announced with `store.hooks.subscriptions_changed`, in the same
  transaction, so the layers above act on it without the store importing them.

How billing reads the rows (docs/billing.md): activation sets the period anchor
`started_at` = now and period 0 of the version's cycle; `next_invoice_at` = now for
an in-advance fee without trial (billing issues the start invoice), the trial's end
when trialing, else the period's end, and None on a free tier (no invoices). An
upgrade records `usage_before` (the period's usage up to the change) and
`prorated` (False in a trial) on its `tier_upgraded` event: billing rates usage
before the change on the old version and after it on the new, and adds the
prorations to the invoice that closes the period. A downgrade waits in
`scheduled_tier_version` until billing opens the next period. Cancelling now (or a
retired API) makes a started paid subscription due at once for its final invoice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apimon.models import User
from pricing.periods import period_bounds, period_containing
from publisher.models import Api, Tier, TierVersion
from store import hooks
from store.models import (
    Application,
    StripeCustomer,
    Subscription,
    SubscriptionEvent,
    SubscriptionState,
)
from store.models import SubscriptionEventKind as Kind
from store.tier_change import UPGRADE, classify_change, is_free

S = SubscriptionState
NEW = ""  # the "state" of a subscription not yet created
LIVE = frozenset(
    {S.PENDING_PAYMENT, S.ACTIVE, S.TRIALING, S.ON_HOLD, S.BLOCKED}
)  # every state but CANCELLED
STARTED = LIVE - {S.PENDING_PAYMENT}
# A downgrade is never scheduled in a trial (every change then applies at once).
PAST_TRIAL = STARTED - {S.TRIALING}


def _stay(sources: Iterable[str]) -> dict[str, frozenset[str]]:
    return {state: frozenset({state}) for state in sources}


@dataclass(frozen=True)
class Move:
    verb: str  # "A cancelled subscription cannot be <verb>."
    paths: dict[str, frozenset[str]]  # from state → the states it may end in

    @property
    def changes_state(self) -> bool:
        return any(targets != {source} for source, targets in self.paths.items())


# event kind → the move it records
MOVES: dict[Kind, Move] = {
    Kind.CREATED: Move("created", {NEW: frozenset({S.PENDING_PAYMENT, S.ACTIVE})}),
    Kind.CHECKOUT_STARTED: Move("sent to checkout", _stay(LIVE)),
    Kind.CHECKOUT_COMPLETED: Move("given a card", _stay(LIVE)),
    Kind.ACTIVATED: Move(
        "activated", {S.PENDING_PAYMENT: frozenset({S.ACTIVE, S.TRIALING})}
    ),
    Kind.CARD_UPDATED: Move("given a new card", _stay(STARTED)),
    Kind.TIER_UPGRADED: Move(
        "upgraded",
        {
            S.ACTIVE: frozenset({S.ACTIVE}),
            S.TRIALING: frozenset({S.TRIALING, S.ACTIVE}),
        },
    ),
    Kind.TIER_DOWNGRADE_SCHEDULED: Move("downgraded", _stay({S.ACTIVE})),
    Kind.TIER_DOWNGRADE_UNSCHEDULED: Move("kept on its tier", _stay(PAST_TRIAL)),
    Kind.CANCEL_SCHEDULED: Move("cancelled at the period end", _stay(STARTED)),
    Kind.CANCEL_UNSCHEDULED: Move("resumed", _stay(STARTED)),
    Kind.CANCELLED_NOW: Move(
        "cancelled", {state: frozenset({S.CANCELLED}) for state in LIVE}
    ),
    Kind.BLOCKED: Move(
        "blocked",
        {
            state: frozenset({S.BLOCKED})
            for state in (S.PENDING_PAYMENT, S.ACTIVE, S.TRIALING, S.ON_HOLD)
        },
    ),
    Kind.UNBLOCKED: Move(
        "unblocked",
        {S.BLOCKED: frozenset({S.PENDING_PAYMENT, S.ON_HOLD, S.TRIALING, S.ACTIVE})},
    ),
    Kind.API_RETIRED: Move(
        "ended by its API's retirement",
        {state: frozenset({S.CANCELLED}) for state in LIVE},
    ),
    Kind.PAYMENT_FAILED: Move("put on hold", {S.ACTIVE: frozenset({S.ON_HOLD})}),
    Kind.PAYMENT_RECOVERED: Move(
        "recovered",
        {S.ON_HOLD: frozenset({S.ACTIVE}), S.BLOCKED: frozenset({S.ACTIVE})},
    ),
    Kind.BLOCKED_FOR_NONPAYMENT: Move(
        "blocked for nonpayment", {S.ON_HOLD: frozenset({S.BLOCKED})}
    ),
    Kind.TRIAL_ENDED: Move("moved out of a trial", {S.TRIALING: frozenset({S.ACTIVE})}),
    Kind.CANCELLED_AT_PERIOD_END: Move(
        "ended at its period end",
        {state: frozenset({S.CANCELLED}) for state in STARTED},
    ),
    Kind.TIER_DOWNGRADED: Move("moved to its scheduled tier", _stay(PAST_TRIAL)),
    Kind.TIER_VERSION_MIGRATED: Move("moved to a new price", _stay(STARTED)),
}

# What billing's bookkeeping may write without a move (the engine's period steps).
BOOKKEEPING = frozenset(
    {"started_at", "current_period_start", "current_period_end", "next_invoice_at"}
)


class MoveRefused(ValidationError):
    """The move is not in `MOVES` for the subscription's state (or a guard of the
    move refuses it). The message is safe to show."""


def allowed(from_state: str, kind: Kind, to_state: str | None = None) -> bool:
    """Whether MOVES lets `kind` start from `from_state` (and end in `to_state`)."""
    targets = MOVES[kind].paths.get(from_state)
    if targets is None:
        return False
    return to_state is None or to_state in targets


def can(subscription: Subscription, kind: Kind) -> bool:
    """Whether `kind` may happen to `subscription` in its state now."""
    return allowed(subscription.state, kind)


def _state_name(state: str) -> str:
    return S(state).label.lower() if state in S.values else (state or "new")


def _check(from_state: str, kind: Kind, to_state: str) -> None:
    if not allowed(from_state, kind, to_state):
        move = MOVES[kind]
        state = _state_name(from_state)
        article = "An" if state[0] in "aeiou" else "A"
        raise MoveRefused(
            f"{article} {state} subscription cannot be {move.verb}.",
            code="invalid_move",
        )


# --- Changes ----------------------------------------------------------------------


@dataclass
class Change:
    """One write of one subscription: the fields set (attribute names) and the
    history event recorded with them (None for billing's bookkeeping)."""

    subscription: Subscription
    fields: dict[str, Any] = field(default_factory=dict)
    event: SubscriptionEvent | None = None

    @property
    def kind(self) -> str | None:
        return self.event.kind if self.event else None

    def apply_to(self, subscription: Subscription) -> None:
        """Set the fields on `subscription` (the row, or a copy never saved)."""
        for name, value in self.fields.items():
            setattr(subscription, name, value)


def _change(
    subscription: Subscription,
    kind: Kind,
    *,
    at: datetime,
    to_state: str | None = None,
    fields: dict[str, Any] | None = None,
    actor: User | None = None,
    note: str = "",
    data: dict | None = None,
    from_version: TierVersion | int | None = None,
    to_version: TierVersion | int | None = None,
    from_state: str | None = None,
    checked: bool = True,
) -> Change:
    """The change of `kind` on `subscription` as it is now (or from `from_state`),
    checked against MOVES (unless it is only shown, never saved: `checked=False`).
    Moves that can change the state record it (from and to) on their event."""
    from_state = subscription.state if from_state is None else from_state
    to_state = from_state if to_state is None else to_state
    if checked:
        _check(from_state, kind, to_state)
    fields = dict(fields or {})
    if to_state != subscription.state:
        fields["state"] = to_state
    states = MOVES[kind].changes_state
    event = SubscriptionEvent(
        subscription=subscription,
        kind=kind,
        at=at,
        from_state=from_state if states else "",
        to_state=to_state if states else "",
        actor=actor,
        note=note,
        data=data or {},
    )
    for name, version in (("from", from_version), ("to", to_version)):
        attr = f"{name}_tier_version"
        if isinstance(version, TierVersion):
            setattr(event, attr, version)
        elif version is not None:
            setattr(event, f"{attr}_id", version)
    return Change(subscription, fields, event)


def bookkeeping(subscription: Subscription, **fields: Any) -> Change:
    """A write of billing's period bookkeeping alone (no move, no history)."""
    unknown = set(fields) - BOOKKEEPING
    if unknown:
        raise ValueError(f"not bookkeeping: {sorted(unknown)}")
    return Change(subscription, fields)


def lock(subscription: Subscription | int, *related: str) -> Subscription:
    """The subscription's row, locked until the transaction ends (with `related`
    rows joined, not locked)."""
    pk = subscription if isinstance(subscription, int) else subscription.pk
    rows = Subscription.objects.select_for_update(of=("self",))
    if related:
        rows = rows.select_related(*related)
    return rows.get(pk=pk)


def _save(change: Change) -> Change:
    """Write one change on a locked row and announce it."""
    sub = change.subscription
    change.apply_to(sub)
    if change.fields:
        sub.save(update_fields=[*change.fields, "updated_at"])
    if change.event is not None:
        change.event.save()
    _announce([change])
    return change


def _announce(changes: list[Change]) -> None:
    if changes:
        hooks.subscriptions_changed.send(sender=Subscription, changes=changes)


def save_all(changes: list[Change], *, now: datetime) -> None:
    """Write many changes of rows the caller has locked: the fields with one
    statement per set of columns (and per 1,000 rows), the events with one insert,
    then one announcement. Several changes of one subscription are merged in order.
    """
    merged: dict[int, dict[str, Any]] = defaultdict(dict)
    subs: dict[int, Subscription] = {}
    for change in changes:
        change.apply_to(change.subscription)
        if change.fields:
            merged[change.subscription.pk].update(change.fields)
            subs[change.subscription.pk] = change.subscription
    groups: dict[tuple[str, ...], list[Subscription]] = defaultdict(list)
    for pk, fields in merged.items():
        subs[pk].updated_at = now
        groups[tuple(sorted(fields))].append(subs[pk])
    for names, rows in groups.items():
        _update_rows(rows, [*names, "updated_at"])
    SubscriptionEvent.objects.bulk_create(c.event for c in changes if c.event)
    _announce(changes)


def _update_rows(subs: list[Subscription], attnames: list[str]) -> None:
    """Save these columns of these subscriptions in one statement per 1,000 rows.
    (Django's bulk_update builds a CASE per column and row, which costs seconds
    for a batch of a few hundred.)"""
    meta = Subscription._meta
    fields = [meta.get_field(name.removesuffix("_id")) for name in attnames]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
            cursor.executemany(
                f"UPDATE {table} SET {sets} WHERE id = %s",  # noqa: S608
                [
                    [
                        f.get_db_prep_save(getattr(s, f.attname), connection)
                        for f in fields
                    ]
                    + [s.pk]
                    for s in subs
                ],
            )
            return
        casts = [f"%s::{f.db_type(connection)}" for f in fields]
        row = f"(%s, {', '.join(casts)})"
        columns = ", ".join(quote(f.column) for f in fields)
        sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
        for offset in range(0, len(subs), 1000):
            chunk = subs[offset : offset + 1000]
            params: list[Any] = []
            for sub in chunk:
                params.append(sub.pk)
                params += [
                    f.get_db_prep_save(getattr(sub, f.attname), connection)
                    for f in fields
                ]
            cursor.execute(
                f"UPDATE {table} AS t SET {sets} FROM (VALUES "  # noqa: S608
                f"{', '.join([row] * len(chunk))}) AS v (id, {columns}) "
                "WHERE t.id = v.id",
                params,
            )


# --- Subscribing and paying (the store) --------------------------------------------


def _activation(subscription: Subscription, at: datetime) -> dict[str, Any]:
    """The fields of a subscription that starts at `at` (see the module docstring)."""
    version = subscription.tier_version
    start, end = period_bounds(at, version.billing_cycle, 0)
    fields: dict[str, Any] = {
        "started_at": at,
        "current_period_start": start,
        "current_period_end": end,
    }
    paid = not is_free(version)
    if paid and version.trial_days > 0:
        fields["state"] = S.TRIALING
        fields["trial_end"] = at + timedelta(days=version.trial_days)
        fields["next_invoice_at"] = fields["trial_end"]
        return fields
    fields["state"] = S.ACTIVE
    fields["trial_end"] = None
    if not paid:
        fields["next_invoice_at"] = None
    elif version.fixed_fee > 0:
        fields["next_invoice_at"] = at  # the in-advance fee of period 0
    else:
        fields["next_invoice_at"] = end
    return fields


def create(
    *,
    application: Application,
    api: Api,
    tier: Tier,
    subscriber: User,
    customer: StripeCustomer | None,
    at: datetime,
) -> Subscription:
    """A new subscription of `application` to `api` on `tier`'s current version:
    PENDING_PAYMENT on a commercial tier (until checkout saves a card), started at
    once on a free one."""
    subscription = Subscription.objects.create(
        organization=api.organization,
        application=application,
        api=api,
        tier=tier,
        tier_version=tier.current_version,
        subscriber=subscriber,
        customer=customer,
        state=S.PENDING_PAYMENT,
        created_at=at,
    )
    started = {} if tier.is_commercial else _activation(subscription, at)
    _save(
        _change(
            subscription,
            Kind.CREATED,
            at=at,
            from_state=NEW,
            to_state=started.pop("state", S.PENDING_PAYMENT),
            fields=started,
            actor=subscriber,
            to_version=subscription.tier_version,
        )
    )
    return subscription


def record(
    subscription: Subscription,
    kind: Kind,
    *,
    at: datetime,
    actor: User | None = None,
    note: str = "",
    data: dict | None = None,
) -> SubscriptionEvent:
    """A move that changes nothing but the history (checkout started or
    completed, a card updated), on a row the caller has locked."""
    if MOVES[kind].changes_state:
        raise ValueError(f"{kind} changes the state: use its own function")
    change = _change(subscription, kind, at=at, actor=actor, note=note, data=data)
    _save(change)
    assert change.event is not None
    return change.event


def save_card(
    subscription: Subscription,
    kind: Kind,
    *,
    at: datetime,
    payment_method_id: str,
    brand: str,
    last4: str,
    note: str = "",
    data: dict | None = None,
) -> SubscriptionEvent:
    """Checkout saved a card for this subscription alone, on a row the caller has
    locked: from now on its invoices charge it, and no other subscription's. The
    event (`kind`: checkout completed, or card updated) names the card and the one
    it replaces."""
    previous = subscription.card_label
    fields = {
        "payment_method_id": payment_method_id,
        "card_brand": brand[:20],
        "card_last4": last4[:4],
    }
    label = f"{brand.title()} •••• {last4}" if last4 else "a card"
    if not note:
        note = f"{label} (was {previous})" if previous and previous != label else label
    data = {**(data or {}), "card": label, "previous_card": previous}
    change = _change(subscription, kind, at=at, fields=fields, note=note, data=data)
    _save(change)
    assert change.event is not None
    return change.event


@transaction.atomic
def activate(subscription: Subscription, *, at: datetime) -> Subscription:
    """Checkout saved the card of a PENDING_PAYMENT subscription: it starts."""
    sub = lock(subscription, "tier_version")
    _save(_activated(sub, at))
    return sub


@transaction.atomic
def backdate(subscription: Subscription, *, at: datetime) -> Subscription:
    """Move a subscription made just now back to `at`, as if everything had
    happened then: created then, and, if it started, started then with every field
    its start derives (periods, trial end, next invoice). For writing a history (the
    demo's 60 days), never for a live subscription: it is the same moves, earlier,
    so its events are moved too and no new one is written."""
    sub = lock(subscription, "tier_version")
    fields: dict[str, Any] = {"created_at": at}
    if sub.started_at is not None:
        fields.update(_activation(sub, at))
    for name, value in fields.items():
        setattr(sub, name, value)
        setattr(subscription, name, value)
    sub.save(update_fields=[*fields, "updated_at"])
    sub.events.update(at=at)
    _announce([Change(sub, fields)])
    return sub


def _activated(sub: Subscription, at: datetime) -> Change:
    fields = _activation(sub, at)
    to_state = fields.pop("state")
    return _change(
        sub,
        Kind.ACTIVATED,
        at=at,
        to_state=to_state,
        fields=fields,
        to_version=sub.tier_version,
    )


# --- Tier changes -------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def plan_tier_change(
    subscription: Subscription,
    *,
    tier: Tier,
    version: TierVersion,
    usage: int,
    at: datetime,
    actor: User | None = None,
    checked: bool = True,
    meter_usage: Mapping[str, int] | None = None,
) -> tuple[str, str, Change]:
    """(UPGRADE or DOWNGRADE, why, the change) of moving `subscription` to
    `version` of `tier` at `at`, with `usage` requests and `meter_usage` units of
    other meters so far this period. Writes
    nothing: `change_tier` saves it; the tier-change preview applies it to a copy,
    unchecked (the page shows what a change would do even when the subscription
    cannot change now; confirming it then says why)."""
    sub = subscription
    kind, reason = classify_change(
        subscription=sub,
        tier=tier,
        version=version,
        usage=usage,
        meter_usage=meter_usage,
    )
    old = sub.tier_version
    if kind != UPGRADE:
        change = _change(
            sub,
            Kind.TIER_DOWNGRADE_SCHEDULED,
            at=at,
            actor=actor,
            fields={"scheduled_tier": tier, "scheduled_tier_version": version},
            data={"effective_at": _iso(sub.current_period_end)},
            from_version=old,
            to_version=version,
            checked=checked,
        )
        return kind, reason, change
    trialing = sub.state == S.TRIALING
    note = ""
    if sub.scheduled_tier_version_id:
        note = f"Replaces the change to {sub.scheduled_tier} scheduled for "
        note += "the next period."
    fields: dict[str, Any] = {
        "tier": tier,
        "tier_version": version,
        "scheduled_tier": None,
        "scheduled_tier_version": None,
    }
    start, end = sub.current_period_start, sub.current_period_end
    if version.billing_cycle != old.billing_cycle and sub.started_at:
        # Only free→paid or within a trial (classify_change): nothing was charged
        # for the period, so it follows the new cycle from the same anchor.
        _i, start, end = period_containing(sub.started_at, version.billing_cycle, at)
        fields.update(current_period_start=start, current_period_end=end)
    to_state = sub.state
    if trialing and is_free(version):
        to_state = S.ACTIVE
        fields.update(trial_end=None, next_invoice_at=None)
    elif (
        not is_free(version)
        and not trialing
        and end
        and (sub.next_invoice_at is None or sub.next_invoice_at > end)
    ):
        fields["next_invoice_at"] = end
    change = _change(
        sub,
        Kind.TIER_UPGRADED,
        at=at,
        to_state=to_state,
        fields=fields,
        actor=actor,
        note=note,
        data={
            "usage_before": usage,
            "prorated": not trialing,
            "period_start": _iso(start),
            "period_end": _iso(end),
        },
        from_version=old,
        to_version=version,
        checked=checked,
    )
    return kind, reason, change


def change_tier(
    subscription: Subscription,
    *,
    tier: Tier,
    usage: int,
    at: datetime,
    actor: User | None = None,
    meter_usage: Mapping[str, int] | None = None,
) -> str:
    """Upgrade now or schedule a downgrade to `tier`'s current version, on a row
    the caller has locked; returns UPGRADE or DOWNGRADE."""
    kind, _reason, change = plan_tier_change(
        subscription,
        tier=tier,
        version=tier.current_version,
        usage=usage,
        at=at,
        actor=actor,
        meter_usage=meter_usage,
    )
    _save(change)
    return kind


@transaction.atomic
def drop_scheduled_change(
    subscription: Subscription, *, at: datetime, actor: User | None
) -> Subscription:
    """Keep the current tier after all: drop a scheduled downgrade."""
    sub = lock(subscription, "tier_version", "scheduled_tier_version")
    if sub.scheduled_tier_version_id is None:
        raise MoveRefused("No tier change is scheduled.")
    _save(
        _change(
            sub,
            Kind.TIER_DOWNGRADE_UNSCHEDULED,
            at=at,
            actor=actor,
            fields={"scheduled_tier": None, "scheduled_tier_version": None},
            from_version=sub.tier_version,
            to_version=sub.scheduled_tier_version,
        )
    )
    return sub


# --- Cancelling ---------------------------------------------------------------------


def _final_invoice_due(sub: Subscription, at: datetime) -> dict[str, Any]:
    """A started paid subscription ended now is due at once for its final invoice
    (usage to date); anything else has nothing left to invoice."""
    paid = sub.started_at is not None and not is_free(sub.tier_version)
    return {"next_invoice_at": at if paid else None}


@transaction.atomic
def cancel(
    subscription: Subscription,
    *,
    at: datetime,
    actor: User | None,
    at_period_end: bool = True,
) -> Subscription:
    """Cancel at the end of the current period (access continues until then,
    billing ends it with its final invoice), or now: access ends at once and a
    started paid subscription is due for its final invoice. A subscription that
    never started (PENDING_PAYMENT) has no period: it is always cancelled now."""
    sub = lock(subscription, "tier", "tier_version")
    if sub.state == S.CANCELLED:
        raise MoveRefused("This subscription is already cancelled.")
    if sub.started_at is None or sub.current_period_end is None:
        at_period_end = False
    if at_period_end:
        if not sub.cancel_at_period_end:
            _save(
                _change(
                    sub,
                    Kind.CANCEL_SCHEDULED,
                    at=at,
                    actor=actor,
                    fields={"cancel_at_period_end": True},
                    data={"effective_at": _iso(sub.ends_at)},
                )
            )
        return sub
    due = _final_invoice_due(sub, at)
    _save(
        _change(
            sub,
            Kind.CANCELLED_NOW,
            at=at,
            to_state=S.CANCELLED,
            actor=actor,
            fields={"cancelled_at": at, "cancel_at_period_end": False, **due},
            data={"final_invoice": due["next_invoice_at"] is not None},
        )
    )
    return sub


@transaction.atomic
def resume(subscription: Subscription, *, at: datetime, actor: User | None):
    """Withdraw a scheduled cancellation."""
    sub = lock(subscription, "organization", "tier_version")
    if sub.state == S.CANCELLED or not sub.cancel_at_period_end:
        raise MoveRefused("No cancellation is scheduled.")
    _save(
        _change(
            sub,
            Kind.CANCEL_UNSCHEDULED,
            at=at,
            actor=actor,
            fields={"cancel_at_period_end": False},
        )
    )
    return sub


def cancel_for_retired_api(*, api: Api, actor: User | None, at: datetime) -> int:
    """Every live subscription of `api` ends now, its API retired by the publisher:
    CANCELLED, and a paid one due at once for its final invoice (usage to date; no
    new fixed fee). Locks the rows; returns how many ended."""
    subs = list(
        Subscription.objects.select_for_update(of=("self",))
        .filter(api=api, state__in=LIVE)
        .select_related("tier_version")
        .order_by("pk")
    )
    changes = []
    for sub in subs:
        fields: dict[str, Any] = {"cancelled_at": at, "cancel_at_period_end": False}
        due = sub.next_invoice_at
        if not is_free(sub.tier_version) and (due is None or due > at):
            fields["next_invoice_at"] = at
        changes.append(
            _change(
                sub,
                Kind.API_RETIRED,
                at=at,
                to_state=S.CANCELLED,
                fields=fields,
                actor=actor,
                note=f"{api} was retired by its publisher.",
            )
        )
    save_all(changes, now=at)
    return len(changes)


# --- Blocking (the publisher) -------------------------------------------------------


@transaction.atomic
def block(subscription: Subscription, *, at: datetime, actor: User | None, reason: str):
    """The publisher blocks a subscription: the gateway refuses its calls and the
    subscriber sees `reason`. Billing is not ended (cancel for that)."""
    sub = lock(subscription)
    _save(
        _change(
            sub,
            Kind.BLOCKED,
            at=at,
            to_state=S.BLOCKED,
            actor=actor,
            note=reason,
            fields={"blocked_reason": reason, "blocked_by_publisher": True},
        )
    )
    return sub


def _state_after_unblock(subscription: Subscription, now: datetime) -> str:
    if subscription.started_at is None:
        return S.PENDING_PAYMENT
    if subscription.on_hold_since is not None:
        return S.ON_HOLD
    if subscription.trial_end and subscription.trial_end > now:
        return S.TRIALING
    return S.ACTIVE


@transaction.atomic
def unblock(subscription: Subscription, *, at: datetime, actor: User | None):
    """Lift a publisher's block. The state returns to what the rows say (pending,
    on hold, trialing or active); a block by dunning is lifted by paying instead."""
    sub = lock(subscription)
    if sub.state != S.BLOCKED or not sub.blocked_by_publisher:
        raise MoveRefused("This subscription is not blocked by the publisher.")
    _save(
        _change(
            sub,
            Kind.UNBLOCKED,
            at=at,
            to_state=_state_after_unblock(sub, at),
            actor=actor,
            fields={"blocked_reason": "", "blocked_by_publisher": False},
        )
    )
    return sub


# --- Payments (billing's dunning) ---------------------------------------------------


def put_on_hold(
    subscription: Subscription, *, at: datetime, grace_until: datetime
) -> Change:
    """A payment failed: ACTIVE → ON_HOLD, served until `grace_until`. On a row the
    caller has locked."""
    return _save(
        _change(
            subscription,
            Kind.PAYMENT_FAILED,
            at=at,
            to_state=S.ON_HOLD,
            fields={"on_hold_since": at, "grace_until": grace_until},
            note=f"A payment failed; served until {grace_until:%Y-%m-%d %H:%M} UTC.",
        )
    )


def is_blocked_for_nonpayment(subscription: Subscription) -> bool:
    return (
        subscription.state == S.BLOCKED
        and not subscription.blocked_by_publisher
        and subscription.on_hold_since is not None
    )


def recover(subscription: Subscription, *, at: datetime) -> SubscriptionEvent:
    """Every failed invoice is paid: ON_HOLD, or BLOCKED by dunning, → ACTIVE. On a
    row the caller has locked; returns the event (the invoice for the rest of the
    period of a blocked subscription points at it)."""
    if subscription.state == S.BLOCKED and not is_blocked_for_nonpayment(subscription):
        raise MoveRefused("A publisher's block is not lifted by a payment.")
    change = _save(
        _change(
            subscription,
            Kind.PAYMENT_RECOVERED,
            at=at,
            to_state=S.ACTIVE,
            fields={"on_hold_since": None, "grace_until": None, "blocked_reason": ""},
            note="Every failed invoice is paid.",
        )
    )
    assert change.event is not None
    return change.event


def block_for_nonpayment(
    subscriptions: list[Subscription], *, at: datetime, reason: str
) -> None:
    """The grace period after a failed payment is over: ON_HOLD → BLOCKED, for rows
    the caller has claimed."""
    save_all(
        [
            _change(
                sub,
                Kind.BLOCKED_FOR_NONPAYMENT,
                at=at,
                to_state=S.BLOCKED,
                fields={"blocked_reason": reason},
                note=reason,
            )
            for sub in subscriptions
        ],
        now=at,
    )


# --- Period boundaries (planned by the billing engine, saved with save_all) --------


def end_trial(
    subscription: Subscription, *, at: datetime, period: tuple[datetime, datetime]
) -> Change:
    """The trial is over: ACTIVE, re-anchored at the trial's end (as Stripe moves
    the billing cycle anchor), with its first paid period."""
    start, end = period
    return _change(
        subscription,
        Kind.TRIAL_ENDED,
        at=at,
        to_state=S.ACTIVE,
        fields={
            "started_at": at,
            "current_period_start": start,
            "current_period_end": end,
        },
        note="The trial ended; the first paid period starts.",
    )


def end_at_period_end(subscription: Subscription, *, at: datetime) -> Change:
    """A cancellation scheduled for the period's end (or the trial's) takes effect."""
    in_trial = subscription.state == S.TRIALING
    return _change(
        subscription,
        Kind.CANCELLED_AT_PERIOD_END,
        at=at,
        to_state=S.CANCELLED,
        fields={
            "cancelled_at": at,
            "next_invoice_at": None,
            "cancel_at_period_end": False,
        },
        note=(
            "Cancelled at the end of the trial, as the subscriber asked."
            if in_trial
            else "Cancelled at the end of the period, as the subscriber asked."
        ),
    )


def apply_scheduled_tier(subscription: Subscription, *, at: datetime) -> Change:
    """A scheduled downgrade takes effect as the next period opens."""
    sub = subscription
    new = sub.scheduled_tier_version_id
    return _change(
        sub,
        Kind.TIER_DOWNGRADED,
        at=at,
        fields={
            "tier_id": sub.scheduled_tier_id or sub.tier_id,
            "tier_version_id": new,
            "scheduled_tier_id": None,
            "scheduled_tier_version_id": None,
        },
        from_version=sub.tier_version_id,
        to_version=new,
        note="The scheduled tier change took effect.",
    )


def migrate_tier_version(
    subscription: Subscription, *, version_id: int, at: datetime
) -> Change:
    """The publisher moved existing subscribers to a new price of their tier: it
    takes effect as the next period opens."""
    return _change(
        subscription,
        Kind.TIER_VERSION_MIGRATED,
        at=at,
        fields={"tier_version_id": version_id},
        from_version=subscription.tier_version_id,
        to_version=version_id,
        note="The publisher moved existing subscribers to a new price.",
    )
