"""What the gateway may serve, cached in Redis and invalidated explicitly.

Services that change anything the gateway decides on call `invalidate(...)` after
their transaction commits: revoking or rotating a key, blocking/unblocking or changing
the state or tier of a subscription, a lifecycle transition of an API, a change of a
tier's limits. The gateway then sees the change within one second.
"""

from __future__ import annotations

from collections.abc import Iterable


def invalidate(
    *,
    key_hashes: Iterable[str] = (),
    subscription_ids: Iterable[int] = (),
    api_ids: Iterable[int] = (),
    tier_ids: Iterable[int] = (),
) -> None:
    """Drop cached entitlements that depend on these rows. Safe to call any time.

    Interface fixed now so that publisher and store services can call it; the metering
    gateway (issue 7) gives it its body.
    """
    # Consumed on purpose: callers may pass generators.
    for _ in (*key_hashes, *subscription_ids, *api_ids, *tier_ids):
        pass
