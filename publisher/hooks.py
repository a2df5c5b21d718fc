"""The catalog's seams to the layers above it (the store, billing, the gateway),
which it never imports (docs/architecture.md).

What the catalog announces (Django signals, sent inside the transaction that made
the change; a receiver that acts outside the database does so on commit):

- `api_changed(api=…)`: an API's address, backend, offers or lifecycle state
  changed. The gateway drops what it cached for the API; billing brings the
  organization's Stripe catalog in step.
- `tier_changed(tier=…, limits_changed=…)`: a tier's price, limits or archived
  state changed. The gateway drops cached entitlements when its limits changed;
  billing brings the Stripe catalog in step.
- `api_retired(api=…, actor=…, at=…)`: an API is being retired. The store ends its
  live subscriptions, in the same transaction; each receiver returns how many
  subscriptions it ended (the retirement's note says how many).

What the catalog asks (answered by the layer that knows, in its
`AppConfig.ready()`):

- `subscriptions_counted(by=…, organization=…, api=…, tier=…)` (the store): live
  subscriptions (every state but cancelled) per value of `by` ("api", "tier",
  "tier_version" or a tuple of them), as {key: count}.
- `newest_subscriptions(organization, limit, apis=…, tiers=…)` (the store): the
  organization's newest subscriptions, for the dashboard, their API and tier
  taken from `apis` and `tiers` ({id: row}, the caller's reads) when given.
- `version_in_use(version)` (the store): whether any subscription, in any state,
  is or will be on a tier version (such a version is never edited in place).
- `dashboard_figures(organization, now)` (billing, the gateway): figures they add
  to the publisher dashboard, as template variables.
- `catalog_cached(organization_id, key, compute)` (the store): `compute()` kept
  for the organization under `key` until its catalog changes (the store's page
  cache, `store.page_cache.cached`), for the publisher's pages' reads of the
  catalog.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import Signal

from apimon.hooks import Contributions, Provider
from apimon.models import Organization
from publisher.models import TierVersion

api_changed = Signal()
tier_changed = Signal()
api_retired = Signal()

subscriptions_counted: Provider[..., dict[Any, int]] = Provider(
    "publisher.subscriptions_counted"
)
newest_subscriptions: Provider[..., list] = Provider("publisher.newest_subscriptions")
version_in_use: Provider[[TierVersion], bool] = Provider("publisher.version_in_use")
catalog_cached: Provider[..., Any] = Provider("publisher.catalog_cached")
dashboard_figures: Contributions[[Organization, datetime]] = Contributions(
    "publisher.dashboard_figures"
)
