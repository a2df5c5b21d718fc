"""The store's seams to the layers above it (billing and the gateway), which it
never imports (docs/architecture.md).

What the store announces (Django signals, sent inside the transaction that made
the change; a receiver that acts outside the database does so on commit):

- `subscriptions_changed(changes=[store.lifecycle.Change, …])`: every move of a
  subscription's lifecycle and every write of its billing bookkeeping, one send
  per batch. Each change names the fields it set and carries the history event it
  recorded (None for bookkeeping). The gateway drops the cached entitlements of
  the subscriptions whose state, tier or anchor moved; billing pays the failed
  invoices again after a new card (`card_updated`).
- `keys_changed(key_hashes=[…])`: API keys revoked, rotated or deleted with their
  application; the gateway drops what it cached for them.

What the store asks (answered by the layer that knows, in its `AppConfig.ready()`):

- `takes_payments(organization) -> bool` (billing): new paid subscriptions are
  possible (paid plan, Stripe connected, monetization on).
- `payment_account(organization) -> str | None` (billing): the id of the
  organization's connected Stripe account, or None when none is connected.
- `usage_so_far(subscription, now) -> int` (the gateway): requests of the current
  period up to `now`, flushed or still counted in Redis.
- `meter_usage_so_far(subscription, now, meter_keys) -> {key: units}` (the
  gateway): the same for other meters.
- `next_invoice_preview(subscription, now, pending_upgrade=None)` (billing): the
  billing engine's dry run of the subscription's next invoice, or None.
- `failed_payments_owed(subscription) -> {currency: minor units}` (billing): what
  the subscription's failed, still unpaid invoices owe (a new card pays it at once).
- `pay_failed_invoices(subscription) -> int` (billing): pay those invoices now, in
  this process, with the subscription's card (the return from a card update shows
  the outcome instead of "on hold" until a reload); returns how many were paid.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import Signal

from apimon.hooks import Provider
from apimon.models import Organization
from store.models import Subscription

subscriptions_changed = Signal()
keys_changed = Signal()

takes_payments: Provider[[Organization], bool] = Provider("store.takes_payments")
payment_account: Provider[[Organization], str | None] = Provider(
    "store.payment_account"
)
usage_so_far: Provider[[Subscription, datetime], int] = Provider("store.usage_so_far")
meter_usage_so_far: Provider[[Subscription, datetime, list[str]], dict[str, int]] = (
    Provider("store.meter_usage_so_far")
)
# (subscription, now, *, pending_upgrade=None) -> billing.selectors.Preview | None
next_invoice_preview: Provider[..., Any] = Provider("store.next_invoice_preview")
failed_payments_owed: Provider[[Subscription], dict[str, int]] = Provider(
    "store.failed_payments_owed"
)
pay_failed_invoices: Provider[[Subscription], int] = Provider(
    "store.pay_failed_invoices"
)
