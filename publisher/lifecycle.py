"""The API lifecycle as data: which action moves an API from which state
to which, and what each state means to the store and the gateway.

    CREATED ──publish──▶ PUBLISHED ──deprecate──▶ DEPRECATED
                            ▲                        │
                            └───────publish──────────┘
    PUBLISHED / DEPRECATED ──retire──▶ RETIRED (final)
    CREATED / PUBLISHED / DEPRECATED ──block──▶ BLOCKED ──unblock──▶ the state before

`publisher.services.api_transition` performs a move; the gateway and the store read
`api.state` and these tables.
"""

from __future__ import annotations

from publisher.models import Api, ApiState, LifecycleAction

A, S = LifecycleAction, ApiState

# action → the states it may start from
TRANSITIONS: dict[str, tuple[str, ...]] = {
    A.PUBLISH: (S.CREATED, S.DEPRECATED),
    A.DEPRECATE: (S.PUBLISHED,),
    A.RETIRE: (S.PUBLISHED, S.DEPRECATED),
    A.BLOCK: (S.CREATED, S.PUBLISHED, S.DEPRECATED),
    A.UNBLOCK: (S.BLOCKED,),
}
_TARGETS = {
    A.PUBLISH: S.PUBLISHED,
    A.DEPRECATE: S.DEPRECATED,
    A.RETIRE: S.RETIRED,
    A.BLOCK: S.BLOCKED,
}

_PAST = {
    A.PUBLISH: "published",
    A.DEPRECATE: "deprecated",
    A.RETIRE: "retired",
    A.BLOCK: "blocked",
    A.UNBLOCK: "unblocked",
}

# What the gateway answers for an API in each state: None = serve subscribers,
# else the refusal status. CREATED APIs were never published, so they "do not exist".
GATEWAY_STATUS: dict[str, int | None] = {
    S.CREATED: 404,
    S.PUBLISHED: None,
    S.DEPRECATED: None,
    S.RETIRED: 410,
    S.BLOCKED: 503,
}
# Only these take new subscriptions in the store.
SUBSCRIBABLE_STATES = (S.PUBLISHED,)
# Subscribers keep seeing their subscription's API in the store in these states.
SUBSCRIBER_VISIBLE_STATES = (S.PUBLISHED, S.DEPRECATED, S.BLOCKED)


def target_state(api: Api, action: str) -> str:
    if action == A.UNBLOCK:
        return api.state_before_block or S.CREATED
    return _TARGETS[LifecycleAction(action)]


def allowed_actions(api: Api) -> list[str]:
    return [action for action, sources in TRANSITIONS.items() if api.state in sources]


def transition_problem(api: Api, action: str, *, offered_tiers: int) -> str | None:
    """Why `action` cannot be done now, or None if it can."""
    if action not in TRANSITIONS:
        return f"Unknown action “{action}”."
    if api.state not in TRANSITIONS[action]:
        state = ApiState(api.state).label.lower()
        return f"A {state} API cannot be {_PAST[action]}."
    if action == A.PUBLISH and offered_tiers < 1:
        return "Offer the API on at least one tier (not archived) before publishing it."
    return None
