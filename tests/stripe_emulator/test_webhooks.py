from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from apimon import stripe_client as sc
from stripe_emulator.webhooks import RETRY_DELAYS, signature_header
from tests.fixtures.stripe import WebhookCapture, create_customer_with_card
from tests.stripe_emulator import webhook_urls


def test_webhooks_are_signed_like_stripes(
    stripe_client: Any,
    opts: dict[str, Any],
    stripe_emulator: Any,
    stripe_webhook_capture: WebhookCapture,
) -> None:
    stripe_client.v1.customers.create({"email": "s@example.com"}, opts)

    stripe_emulator.deliver_pending()

    url, body, headers = stripe_webhook_capture.received[-1]
    assert url == "http://127.0.0.1:8000/billing/stripe/webhook/"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    signature = headers["Stripe-Signature"]
    assert signature.startswith("t=") and ",v1=" in signature
    event = stripe.Webhook.construct_event(body, signature, "whsec_emulator_apimon")
    assert event.type == "customer.created"
    assert sc.construct_event(body, signature).id == event.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", signature, "whsec_emulator_apimon")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, signature, "whsec_other")


def test_the_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    import hashlib
    import hmac

    header = signature_header(b'{"id": "evt_1"}', "whsec_x", 1700000000)

    digest = hmac.new(
        b"whsec_x", b'1700000000.{"id": "evt_1"}', hashlib.sha256
    ).hexdigest()
    assert header == f"t=1700000000,v1={digest}"


def test_connect_events_carry_the_account_version_and_current_object(
    stripe_client: Any,
    opts: dict[str, Any],
    stripe_account: str,
    stripe_emulator: Any,
    stripe_webhook_capture: WebhookCapture,
) -> None:
    customer = stripe_client.v1.customers.create({"email": "old@example.com"}, opts)
    stripe_client.v1.customers.update(customer.id, {"email": "new@example.com"}, opts)

    stripe_emulator.deliver_pending()

    updated = [
        e for e in stripe_webhook_capture.events() if e["type"] == "customer.updated"
    ]
    event = updated[-1]
    assert event["account"] == stripe_account
    assert event["api_version"] == sc.API_VERSION == "2026-10-28.endive"
    assert event["livemode"] is False and event["object"] == "event"
    assert event["id"].startswith("evt_")
    current = stripe_client.raw_request(
        "get", f"/v1/customers/{customer.id}", stripe_account=stripe_account
    ).data
    assert event["data"]["object"] == current
    assert event["data"]["previous_attributes"] == {"email": "old@example.com"}
    assert event["request"]["id"].startswith("req_")


def test_platform_events_have_no_account(
    stripe_client: Any, stripe_emulator: Any, stripe_webhook_capture: WebhookCapture
) -> None:
    stripe_client.v1.customers.create({})

    stripe_emulator.deliver_pending()

    assert "account" not in stripe_webhook_capture.events()[-1]


def test_the_invoice_lifecycle_events_apimon_handles(
    stripe_client: Any,
    opts: dict[str, Any],
    stripe_account: str,
    stripe_emulator: Any,
    stripe_webhook_capture: WebhookCapture,
) -> None:
    good, _ = create_customer_with_card(stripe_account)
    bad, _ = create_customer_with_card(
        stripe_account, card="pm_card_chargeCustomerFail"
    )
    for customer in (good, bad):
        invoice = stripe_client.v1.invoices.create(
            {"customer": customer, "auto_advance": True}, opts
        )
        stripe_client.v1.invoice_items.create(
            {"customer": customer, "invoice": invoice.id, "amount": 999}, opts
        )

    stripe_emulator.advance(3600)
    stripe_emulator.deliver_pending()

    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in stripe_webhook_capture.events():
        by_type.setdefault(event["type"], []).append(event)
    assert len(by_type["invoice.finalized"]) == 2
    paid = by_type["invoice.paid"][0]["data"]["object"]
    assert (paid["customer"], paid["status"], paid["amount_paid"]) == (
        good,
        "paid",
        999,
    )
    failed = by_type["invoice.payment_failed"][0]["data"]["object"]
    assert (failed["customer"], failed["status"], failed["attempt_count"]) == (
        bad,
        "open",
        1,
    )
    assert (
        failed["next_payment_attempt"]
        == failed["status_transitions"]["finalized_at"] + 86400
    )
    for kind in (
        "invoice.created",
        "invoiceitem.created",
        "customer.created",
        "payment_method.attached",
        "charge.succeeded",
        "charge.failed",
    ):
        assert kind in by_type


def test_a_failing_endpoint_is_retried_with_backoff(
    stripe_client: Any,
    stripe_emulator: Any,
    stripe_webhook_capture: WebhookCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Emulator time is wall time plus an offset: stop the wall for this test, so
    # "one second before the retry is due" does not become due while it runs (a
    # wall second passing, or crossing into the next one, between two checks).
    wall = float(int(time.time()))
    monkeypatch.setattr(stripe_emulator.clock, "_wall", lambda: wall)
    stripe_webhook_capture.status = 500
    customer = stripe_client.v1.customers.create({})
    event_id = stripe_client.v1.events.list().data[0].id

    assert len(stripe_emulator.deliver_pending()) == 1
    assert stripe_emulator.deliver_pending() == []  # not due yet
    assert stripe_client.v1.events.retrieve(event_id).pending_webhooks == 1
    stripe_emulator.advance(RETRY_DELAYS[0] - 1)
    assert stripe_emulator.deliver_pending() == []
    stripe_emulator.advance(1)
    assert [r.attempt for r in stripe_emulator.deliver_pending()] == [2]
    stripe_emulator.advance(RETRY_DELAYS[1])
    stripe_webhook_capture.status = 200
    results = stripe_emulator.deliver_pending()

    assert [(r.status, r.attempt) for r in results] == [(200, 3)]
    assert stripe_client.v1.events.retrieve(event_id).pending_webhooks == 0
    bodies = {
        json.loads(body)["id"] for _u, body, _h in stripe_webhook_capture.received
    }
    assert bodies == {event_id}  # the same event each time
    assert customer.id


def test_delivery_gives_up_after_three_days(
    stripe_client: Any, stripe_emulator: Any, stripe_webhook_capture: WebhookCapture
) -> None:
    stripe_webhook_capture.status = 503
    stripe_client.v1.customers.create({})
    attempts = 0
    for _ in range(40):  # five days, in three-hour steps
        attempts += len(stripe_emulator.deliver_pending())
        stripe_emulator.advance(3 * 3600)

    assert 8 <= attempts <= 16
    failed = stripe_emulator.store.deliveries()[0]
    assert failed["status"] == "failed" and failed["last_status"] == 503


def test_a_receiver_may_call_back_into_the_emulator(
    stripe_client: Any, opts: dict[str, Any], stripe_emulator: Any
) -> None:
    seen: list[str] = []

    def receiver(url: str, body: bytes, headers: dict[str, str]) -> int:
        event = sc.construct_event(body, headers["Stripe-Signature"])
        fetched = stripe_client.v1.customers.retrieve(
            event.data.object.id, None, sc.request_options(account=event.account)
        )
        seen.append(fetched.email)
        return 200

    stripe_emulator.set_webhook_sink(receiver)
    stripe_client.v1.customers.create({"email": "x@example.com"}, opts)

    stripe_emulator.deliver_pending()

    assert seen == ["x@example.com"]


def test_events_are_listed_filtered_and_retrieved(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)

    everything = stripe_client.v1.events.list({}, opts).data
    customer_events = stripe_client.v1.events.list({"type": "customer.*"}, opts).data
    some = stripe_client.v1.events.list(
        {"types": ["customer.created", "payment_method.attached"]}, opts
    ).data

    assert {e.type for e in customer_events} == {"customer.created", "customer.updated"}
    assert {e.type for e in some} == {"customer.created", "payment_method.attached"}
    one = stripe_client.v1.events.retrieve(everything[0].id, None, opts)
    assert one.id == everything[0].id and one.account == stripe_account
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.events.retrieve(everything[0].id)  # not the platform's
    assert customer


def test_webhooks_reach_a_django_endpoint_through_the_test_client(
    stripe_client: Any, opts: dict[str, Any], stripe_webhooks: Any, settings: Any
) -> None:
    settings.ROOT_URLCONF = "tests.stripe_emulator.webhook_urls"
    webhook_urls.received.clear()
    stripe_client.v1.customers.create({"email": "d@example.com"}, opts)

    results = stripe_webhooks.deliver()

    assert {r.status for r in results} == {200}
    types = [e.type for e in webhook_urls.received]
    assert types == ["account.application.authorized", "customer.created"]
    assert stripe_webhooks.responses[-1] == ("customer.created", 200)
    assert webhook_urls.received[-1].data.object.email == "d@example.com"
