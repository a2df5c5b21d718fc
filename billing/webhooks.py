"""Stripe webhooks: receive (verify, store once), then process once in Celery through
ONE registry of handlers.

Adding a handler: append the dotted path of a function taking the event (a dict, as
Stripe sent it) to `HANDLERS[event_type]`:

    HANDLERS = {
        ...
        "invoice.paid": ["billing.invoicing.invoice_paid_from_event"],
    }

Handlers must be idempotent: Stripe delivers at least once, an event can be replayed
from the admin, and a failed event is retried (all its handlers run again). They run
in one transaction per event; an exception rolls them back, records `last_error` and
the task retries with backoff. Dotted paths keep this module free of import cycles
and let a handler live in any app.

`checkout.session.completed` is routed by the session's `metadata.apimon_purpose`
(`CHECKOUT_PURPOSES`): the platform plan upgrade here, subscriptions in the store.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from apimon import jsonbody
from apimon import stripe_client as sc
from apimon.jobs import job_failure_record, job_failures_resolve
from billing.models import StripeConnection, WebhookEvent, WebhookStatus

log = logging.getLogger(__name__)

WEBHOOK_JOB = "webhook processing"

HANDLERS: dict[str, list[str]] = {
    "account.updated": ["billing.webhooks.on_account_updated"],
    "account.application.deauthorized": ["billing.webhooks.on_account_deauthorized"],
    "checkout.session.completed": ["billing.webhooks.on_checkout_session_completed"],
    # A catalog object changed on a connected account (by apimon or by hand): check
    # the catalog soon rather than at the next hourly reconciliation.
    "product.updated": ["billing.webhooks.on_catalog_changed"],
    "product.deleted": ["billing.webhooks.on_catalog_changed"],
    "price.updated": ["billing.webhooks.on_catalog_changed"],
    "price.deleted": ["billing.webhooks.on_catalog_changed"],
    # The billing engine's invoices (subscriptions' and platform plans'): state only
    # moves forward, so any order and any replay end the same (docs/billing.md).
    "invoice.paid": ["billing.services.invoice_paid"],
    "invoice.payment_failed": ["billing.services.invoice_payment_failed"],
    "invoice.finalized": ["billing.services.invoice_finalized"],
    "invoice.voided": ["billing.services.invoice_voided"],
    "invoice.marked_uncollectible": ["billing.services.invoice_marked_uncollectible"],
}

# checkout.session.completed by metadata.apimon_purpose → a function taking the
# Checkout Session (dict) and `account=` (the connected account, None on the platform).
CHECKOUT_PURPOSES: dict[str, str] = {
    "platform_plan": "billing.webhooks.platform_plan_checkout_completed",
    "subscription": "store.services.checkout_session_completed",
}

# An event not processed this long after it arrived lost its task: the billing job
# enqueues it again (webhook_sweep).
STALE = timedelta(minutes=2)


class HandlerFailed(Exception):
    """A handler raised; the event is kept and retried."""


# --- Receiving ----------------------------------------------------------------------


def webhook_event_receive(
    *, payload: bytes, signature: str
) -> tuple[WebhookEvent, bool]:
    """Verify the signature (`sc.verify_webhook`: signed within 300 s either side of
    now) and store the event once.

    Raises StripeSignatureInvalid, or ValueError when the body is not a Stripe
    event (not a JSON object, no string id and type, too long for the columns, a
    NUL character PostgreSQL cannot store): nothing is stored.
    Returns (event, created); a duplicate delivery returns the stored one."""
    data = sc.verify_webhook(payload, signature)
    _check_event(data)
    defaults = {
        "type": data.get("type", ""),
        "account": data.get("account") or "",
        "livemode": bool(data.get("livemode")),
        "api_version": data.get("api_version") or "",
        "payload": data,
    }
    try:
        with transaction.atomic():
            event, created = WebhookEvent.objects.get_or_create(
                event_id=data["id"], defaults=defaults
            )
    except IntegrityError:  # the same event arrived twice at once
        return WebhookEvent.objects.get(event_id=data["id"]), False
    if created:
        from billing.tasks import process_webhook_event

        pk = event.pk
        transaction.on_commit(lambda: process_webhook_event.delay(pk), robust=True)
    return event, created


def _text(value: Any, max_length: int, *, required: bool = False) -> bool:
    if value is None or value == "":
        return not required
    return isinstance(value, str) and len(value) <= max_length


def _check_event(data: dict) -> None:
    """The fields `WebhookEvent` keeps fit its columns. Stripe never sends anything
    else; a body that does is refused (400) rather than stored."""
    field = WebhookEvent._meta.get_field
    if not (
        _text(data.get("id"), field("event_id").max_length, required=True)
        and _text(data.get("type"), field("type").max_length, required=True)
        and _text(data.get("account"), field("account").max_length)
        and _text(data.get("api_version"), field("api_version").max_length)
    ):
        raise ValueError("Not a Stripe event: id, type, account or api_version.")
    if jsonbody.has_nul(data):
        raise ValueError("A Stripe event holds no NUL character.")


# --- Processing ---------------------------------------------------------------------


def webhook_event_process(event_pk: int, *, replay: bool = False) -> str:
    """Run the event's handlers once. Returns the resulting status ("skipped" if
    another worker holds it or it is already processed and this is no replay).

    The worker holds the event's row lock while its handlers run, so two workers
    never run the same event at once; a worker that dies (SIGKILL, a lost
    connection) releases the lock with its connection, and the next delivery or
    sweep takes the event at once.
    """
    with transaction.atomic():
        claimable = WebhookEvent.objects.select_for_update(skip_locked=True).filter(
            pk=event_pk
        )
        if not replay:
            claimable = claimable.filter(processed_at__isnull=True)
        event = claimable.first()
        if event is None:
            return "skipped"
        event.attempts += 1
        try:
            with transaction.atomic():
                for path in HANDLERS.get(event.type, []):
                    import_string(path)(event.payload)
        except Exception as exc:
            event.status = WebhookStatus.FAILED
            event.last_error = "".join(
                traceback.format_exception_only(type(exc), exc)
            ).strip()[:4000]
            event.save(update_fields=["status", "last_error", "attempts"])
            job_failure_record(
                job=WEBHOOK_JOB,
                ref=_ref(event),
                organization_id=_organization_of(event),
                error=exc,
            )
            failure = HandlerFailed(event.last_error)
            failure.__cause__ = exc
        else:
            failure = None
            handled = bool(HANDLERS.get(event.type))
            event.status = WebhookStatus.PROCESSED if handled else WebhookStatus.IGNORED
            event.processed_at = timezone.now()
            event.last_error = ""
            event.save(
                update_fields=["status", "processed_at", "last_error", "attempts"]
            )
            job_failures_resolve(job=WEBHOOK_JOB, refs=[_ref(event)])
    if failure is not None:
        raise failure
    return event.status


def _ref(event: WebhookEvent) -> str:
    return f"webhook event {event.pk} ({event.event_id}, {event.type})"


def _organization_of(event: WebhookEvent) -> int | None:
    if not event.account:
        return None
    return (
        StripeConnection.objects.filter(account_id=event.account)
        .values_list("organization_id", flat=True)
        .first()
    )


def webhook_sweep(*, now: datetime, stale: timedelta = STALE) -> int:
    """Enqueue again the events received a while ago and still neither processed
    nor failed: their task was lost (a worker killed while it held the
    message, a broker that lost its queue). Events that failed are not swept: their
    task retries them with backoff, then the admin replays them."""
    from billing.tasks import process_webhook_event

    ids = list(
        WebhookEvent.objects.filter(
            status=WebhookStatus.RECEIVED,
            processed_at__isnull=True,
            received_at__lte=now - stale,
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in ids:
        enqueue_each(process_webhook_event, pk)
    return len(ids)


def enqueue_each(task, pk: int) -> None:
    """Enqueue one item's task. Where tasks run in the caller (eager, the tests) a
    failing one is recorded by the task and must not stop the sweep's others."""
    try:
        task.delay(pk)
    except Exception:
        log.exception("%s(%s) failed", task.name, pk)


def webhook_event_replay(*, event: WebhookEvent) -> str:
    """Run an event's handlers again now (admin "Replay")."""
    return webhook_event_process(event.pk, replay=True)


# --- Handlers -------------------------------------------------------------------------


def _object(event: dict[str, Any]) -> dict[str, Any]:
    return (event.get("data") or {}).get("object") or {}


def on_account_updated(event: dict[str, Any]) -> None:
    from billing.services import stripe_account_updated

    account = _object(event)
    stripe_account_updated(account=account)


def on_account_deauthorized(event: dict[str, Any]) -> None:
    from billing.services import stripe_account_deauthorized

    # The account is the event's `account`; data.object is the application.
    account_id = event.get("account")
    if account_id:
        stripe_account_deauthorized(account_id=account_id)


def on_checkout_session_completed(event: dict[str, Any]) -> None:
    session = _object(event)
    purpose = (session.get("metadata") or {}).get("apimon_purpose")
    path = CHECKOUT_PURPOSES.get(purpose or "")
    if path is None:
        log.info("checkout session %s: no apimon purpose", session.get("id"))
        return
    import_string(path)(session, account=event.get("account") or None)


def platform_plan_checkout_completed(
    session: dict[str, Any], *, account: str | None = None
) -> None:
    from billing.services import CheckoutNotComplete, platform_checkout_complete

    if account:
        # Plan upgrades happen on the platform's own account, never a connected one.
        log.info("checkout session %s on %s ignored", session.get("id"), account)
        return
    try:
        platform_checkout_complete(session_id=session["id"])
    except CheckoutNotComplete as exc:
        # Not one of ours (another installation on the same Stripe account).
        log.info("checkout session %s ignored: %s", session.get("id"), exc)


def on_catalog_changed(event: dict[str, Any]) -> None:
    from billing.reconcile import schedule_reconcile_for_account

    if event.get("account"):
        schedule_reconcile_for_account(event["account"])
