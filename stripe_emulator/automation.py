"""The work Stripe does on its own, on a schedule:

- finalize drafts with `auto_advance` at `automatically_finalizes_at` (about an hour
  after creation, `EmulatorConfig.auto_finalize_delay`);
- attempt payment of open `charge_automatically` invoices with `auto_advance` at
  `next_payment_attempt`: right after finalization, then 1, 3 and 5 days after the first
  failure (`invoices.RETRY_DAYS`); after the last failure the invoice stays open;
- expire open Checkout Sessions at `expires_at`.

Server mode runs `run_due` every second; in-process, tests call `Emulator.advance()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from stripe_emulator.errors import StripeError

if TYPE_CHECKING:
    from stripe_emulator.emulator import Ctx, Emulator

Job = tuple[int, str, str, str]  # (due at, kind, account, object id)


def _jobs(emulator: Emulator) -> Iterator[Job]:
    for account, invoice in emulator.store.list_with_owner("invoice"):
        if invoice.get("deleted") or not invoice.get("auto_advance"):
            continue
        if (
            invoice["status"] == "draft"
            and invoice["automatically_finalizes_at"] is not None
        ):
            yield (
                invoice["automatically_finalizes_at"],
                "finalize",
                account,
                invoice["id"],
            )
        elif (
            invoice["status"] == "open"
            and invoice["collection_method"] == "charge_automatically"
            and invoice["next_payment_attempt"] is not None
        ):
            yield invoice["next_payment_attempt"], "collect", account, invoice["id"]
    for account, session in emulator.store.list_with_owner("checkout.session"):
        if session["status"] == "open":
            yield session["expires_at"], "expire", account, session["id"]


def next_due_at(emulator: Emulator) -> int | None:
    return min((job[0] for job in _jobs(emulator)), default=None)


def _finalization_failed(ctx: Ctx, invoice_id: str, error: StripeError) -> None:
    """Stripe stops advancing a draft it cannot finalize and says why."""
    with ctx.store.atomic():
        invoice = ctx.store.get(invoice_id)
        assert invoice is not None
        invoice["auto_advance"] = False
        invoice["automatically_finalizes_at"] = None
        invoice["last_finalization_error"] = {
            key: value
            for key, value in error.body()["error"].items()
            if key in ("code", "doc_url", "message", "param", "type")
        }
        ctx.store.save(invoice)
        ctx.emit("invoice.finalization_failed", invoice)


def run_due(emulator: Emulator) -> int:
    from stripe_emulator.api.checkout import expire_session
    from stripe_emulator.api.invoices import (
        attempt_payment,
        finalize,
        payment_method_for,
    )

    ran = 0
    for _ in range(1000):
        now = emulator.clock.now()
        due = sorted(job for job in _jobs(emulator) if job[0] <= now)
        if not due:
            break
        for _when, kind, account, object_id in due:
            ctx = emulator.context(account)
            try:
                with emulator.store.atomic():
                    obj = emulator.store.get(object_id, account=account)
                    if obj is None:
                        continue
                    if kind == "finalize" and obj["status"] == "draft":
                        finalize(ctx, obj)
                    elif kind == "collect" and obj["status"] == "open":
                        attempt_payment(ctx, obj, payment_method_for(ctx, obj))
                    elif kind == "expire" and obj["status"] == "open":
                        expire_session(ctx, obj)
            except StripeError as error:
                if kind != "finalize":
                    raise
                _finalization_failed(ctx, object_id, error)
            ran += 1
    return ran
