"""Events and their delivery as signed webhooks.

Every change the emulator makes is recorded as an Event (listable with GET /v1/events)
and, when a webhook URL is configured, queued for delivery. Deliveries are signed
exactly as Stripe signs them: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" keyed with the endpoint secret>`, so `stripe.Webhook.construct_event`
verifies them. The signature time is wall-clock time (the receiver checks it against
its own clock), while the event's `created` is emulator time.

A delivery that does not get a 2xx answer is retried with backoff (RETRY_DELAYS), like
Stripe's live mode, for up to three days.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stripe_emulator.ids import new_id

if TYPE_CHECKING:
    from stripe_emulator.emulator import Emulator

log = logging.getLogger("stripe_emulator.webhooks")

# Seconds to wait after the n-th failed attempt; the last delay repeats.
RETRY_DELAYS = (60, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)
GIVE_UP_AFTER = 3 * 24 * 3600
DELIVERY_TIMEOUT = 10.0

Deliver = Callable[[str, bytes, dict[str, str]], int]


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def http_deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST a webhook over HTTP; the status code, or 0 when nothing answered."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError) as error:
        log.info("webhook to %s failed: %s", url, error)
        return 0


def previous_attributes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed, with the old values, as `data.previous_attributes` shows it:
    nested objects list only their changed keys."""
    changed: dict[str, Any] = {}
    for key, old_value in old.items():
        if key.startswith("_"):
            continue
        new_value = new.get(key)
        if old_value == new_value:
            continue
        if (
            isinstance(old_value, dict)
            and isinstance(new_value, dict)
            and old_value.get("object") != "list"
            and key != "metadata"
        ):
            changed[key] = previous_attributes(old_value, new_value)
        else:
            changed[key] = old_value
    for key in new:
        if key not in old and not key.startswith("_"):
            changed[key] = None
    return changed


def emit(
    emulator: Emulator,
    *,
    account: str,
    type: str,
    obj: dict[str, Any],
    previous: dict[str, Any] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Record an event about `obj` (already in its API shape) and queue its delivery."""
    from stripe_emulator.render import render

    now = emulator.clock.now()
    data: dict[str, Any] = {"object": render(emulator, obj)}
    if previous:
        data["previous_attributes"] = previous
    event: dict[str, Any] = {"id": new_id("event"), "object": "event"}
    if account != emulator.platform_id:
        event["account"] = account
    webhook_url = emulator.config.webhook_url
    event.update(
        {
            "api_version": emulator.config.api_version,
            "created": now,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if webhook_url else 0,
            "request": {"id": request_id, "idempotency_key": idempotency_key},
            "type": type,
        }
    )
    emulator.store.insert(event, account=account)
    if webhook_url:
        emulator.store.delivery_add(event["id"], webhook_url, now, due=now)
        emulator.wake()
    return event


@dataclass
class DeliveryResult:
    event_id: str
    event_type: str
    url: str
    status: int
    attempt: int


def deliver_due(
    emulator: Emulator, *, everything: bool = False
) -> list[DeliveryResult]:
    """Attempt the deliveries that are due (or, with `everything`, all pending ones).

    The store lock is not held while posting: the receiver (apimon) may call back into
    the emulator while it handles the event.
    """
    results: list[DeliveryResult] = []
    now = emulator.clock.now()
    for delivery in emulator.store.deliveries_due(None if everything else now):
        event = emulator.store.get(delivery["event_id"])
        if event is None:
            emulator.store.delivery_update(
                delivery["seq"], status="failed", last_error="gone"
            )
            continue
        body = json.dumps(event, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Cache-Control": "no-cache",
            "Accept": "*/*; q=0.5, application/xml",
            "Stripe-Signature": signature_header(
                body, emulator.config.webhook_secret, int(time.time())
            ),
        }
        try:
            status = emulator.deliver(delivery["url"], body, headers)
            error = None
        except Exception as exc:  # a broken receiver must not stop the emulator
            log.exception("webhook delivery of %s failed", event["id"])
            status, error = 0, repr(exc)
        results.append(
            DeliveryResult(
                event["id"],
                event["type"],
                delivery["url"],
                status,
                delivery["attempts"] + 1,
            )
        )
        _record_attempt(emulator, delivery, event, status, error)
    return results


def _record_attempt(
    emulator: Emulator,
    delivery: dict[str, Any],
    event: dict[str, Any],
    status: int,
    error: str | None,
) -> None:
    now = emulator.clock.now()
    attempts = delivery["attempts"] + 1
    first = delivery["first_attempt_at"] or now
    with emulator.store.atomic():
        if 200 <= status < 300:
            emulator.store.delivery_update(
                delivery["seq"],
                status="succeeded",
                attempts=attempts,
                last_status=status,
                delivered_at=now,
                first_attempt_at=first,
                next_attempt_at=None,
            )
            current = emulator.store.get(event["id"])
            if current is not None:
                current["pending_webhooks"] = max(0, current["pending_webhooks"] - 1)
                emulator.store.save(current)
            return
        delay = emulator.clock.delay(
            RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)]
        )
        gave_up = now + delay - delivery["event_created"] > emulator.clock.delay(
            GIVE_UP_AFTER
        )
        emulator.store.delivery_update(
            delivery["seq"],
            status="failed" if gave_up else "pending",
            attempts=attempts,
            last_status=status,
            last_error=error,
            first_attempt_at=first,
            next_attempt_at=None if gave_up else now + delay,
        )
