"""The work Stripe does on its own, on a schedule:

- finalize drafts with `auto_advance` at `automatically_finalizes_at` (about an hour
  after creation, `EmulatorConfig.auto_finalize_delay`);
- attempt payment of open `charge_automatically` invoices with `auto_advance` at
  `next_payment_attempt`: right after finalization, then 1, 3 and 5 days after the first
  failure (`invoices.RETRY_DAYS`); after the last failure the invoice stays open;
- expire open Checkout Sessions at `expires_at`.

Server mode runs `run_due` every second; in-process, tests call `Emulator.advance()`.
Finding the due work is one indexed query (`Store.due`): the store keeps each object's
next due time (`job_for`) in a column, so the scan costs the number of due jobs, not the
number of invoices, and the lock is held per job, never over a whole pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stripe_emulator.errors import StripeError

if TYPE_CHECKING:
    from stripe_emulator.emulator import Ctx, Emulator

Job = tuple[int, str, str, str]  # (due at, kind, account, object id)

# The object types that can have automatic work.
TYPES = ("invoice", "checkout.session")


def job_for(type: str, obj: dict[str, Any]) -> tuple[int, str] | None:
    """When an object next needs automatic work, and which: (due at, kind), or None.

    The store keeps the due time in an indexed column (`objects.due_at`), recomputed
    on every insert and save, so finding the due work reads only the objects that
    have some instead of decoding every invoice of every account."""
    if type == "invoice":
        if obj.get("deleted") or not obj.get("auto_advance"):
            return None
        if obj["status"] == "draft" and obj["automatically_finalizes_at"] is not None:
            return obj["automatically_finalizes_at"], "finalize"
        if (
            obj["status"] == "open"
            and obj["collection_method"] == "charge_automatically"
            and obj["next_payment_attempt"] is not None
        ):
            return obj["next_payment_attempt"], "collect"
    elif type == "checkout.session" and obj["status"] == "open":
        return obj["expires_at"], "expire"
    return None


def _jobs(emulator: Emulator, now: int) -> list[Job]:
    """The jobs due by `now`, in order (due time, kind, account, id)."""
    jobs = []
    for account, type, obj in emulator.store.due(now):
        job = job_for(type, obj)
        if job is not None and job[0] <= now:
            jobs.append((job[0], job[1], account, obj["id"]))
    return sorted(jobs)


def next_due_at(emulator: Emulator) -> int | None:
    return emulator.store.next_due_at()


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
        due = _jobs(emulator, now)
        if not due:
            break
        for _when, kind, account, object_id in due:
            ctx = emulator.context(account)
            try:
                # One transaction (and one hold of the store's lock) per job: API
                # requests run between jobs, so the object is read again and its job
                # checked: a request may have changed it since the scan.
                with emulator.store.atomic():
                    obj = emulator.store.get(object_id, account=account)
                    if obj is None:
                        continue
                    job = job_for(obj.get("object", ""), obj)
                    if job is None or job[1] != kind or job[0] > now:
                        continue
                    if kind == "finalize":
                        finalize(ctx, obj)
                    elif kind == "collect":
                        attempt_payment(ctx, obj, payment_method_for(ctx, obj))
                    elif kind == "expire":
                        expire_session(ctx, obj)
            except StripeError as error:
                if kind != "finalize":
                    raise
                _finalization_failed(ctx, object_id, error)
            ran += 1
    return ran
