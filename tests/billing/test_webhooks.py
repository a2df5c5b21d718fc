"""The webhook endpoint: verified, stored once, processed once in Celery, replayable,
idempotent under retries; and the handlers of this issue."""

from __future__ import annotations

import json
import time

import pytest
import stripe
from django.core import mail
from django.urls import reverse

from apimon import stripe_client as sc
from billing import webhooks
from billing.models import StripeConnection, WebhookEvent, WebhookStatus
from billing.models import monetization_enabled as is_monetized
from billing.webhooks import HandlerFailed, webhook_event_process
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

URL = "/billing/stripe/webhook/"
SECRET = "whsec_emulator_apimon"


def signed(payload: dict, *, secret: str = SECRET, at: int | None = None) -> tuple:
    body = json.dumps(payload).encode()
    timestamp = at or int(time.time())
    signature = stripe.WebhookSignature._compute_signature(
        f"{timestamp}.{body.decode()}", secret
    )
    return body, f"t={timestamp},v1={signature}"


def post(client, payload: dict, **kwargs):
    body, header = signed(payload, **kwargs)
    return client.post(
        URL,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": header},
    )


def event(type_: str, obj: dict, *, account: str | None = None, id_="evt_test_1"):
    return {
        "id": id_,
        "object": "event",
        "type": type_,
        "account": account,
        "api_version": sc.API_VERSION,
        "livemode": False,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def test_the_url_is_the_emulators_default_target():
    assert reverse("stripe:webhook") == URL


def test_a_bad_signature_is_refused_and_nothing_stored(client, stripe_emulator):
    response = post(
        client, event("account.updated", {"id": "acct_x"}), secret="whsec_wrong"
    )

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_a_signature_older_than_five_minutes_is_refused(client, stripe_emulator):
    response = post(
        client, event("account.updated", {"id": "acct_x"}), at=int(time.time()) - 301
    )

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_a_missing_signature_or_a_body_that_is_not_json_is_refused(
    client, stripe_emulator
):
    assert (
        client.post(URL, data=b"{}", content_type="application/json").status_code == 400
    )
    timestamp = int(time.time())
    body = b"not json"
    sig = stripe.WebhookSignature._compute_signature(f"{timestamp}.not json", SECRET)
    response = client.post(
        URL,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": f"t={timestamp},v1={sig}"},
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


def test_an_event_is_stored_once_and_processed_once(
    client, stripe_emulator, django_capture_on_commit_callbacks
):
    payload = event("customer.created", {"id": "cus_1"})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = post(client, payload)
    with django_capture_on_commit_callbacks(execute=True) as again:
        second = post(client, payload)  # Stripe retries the delivery

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(callbacks) == 1 and again == []
    stored = WebhookEvent.objects.get()
    assert stored.event_id == "evt_test_1" and stored.type == "customer.created"
    assert stored.api_version == sc.API_VERSION
    assert stored.status == WebhookStatus.IGNORED  # no handler for this type
    assert stored.attempts == 1 and stored.processed_at is not None
    assert webhook_event_process(stored.pk) == "skipped"


def test_account_updated_shows_charges_enabled_changes(
    paid_org, connected, client, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            client,
            event(
                "account.updated",
                {
                    "id": connected.account_id,
                    "object": "account",
                    "country": "US",
                    "default_currency": "usd",
                    "charges_enabled": False,
                    "payouts_enabled": False,
                    "requirements": {"disabled_reason": "requirements.past_due"},
                },
                account=connected.account_id,
            ),
        )

    assert response.status_code == 200
    connected.refresh_from_db()
    assert not connected.charges_enabled and not connected.payouts_enabled
    assert connected.account_data["disabled_reason"] == "requirements.past_due"
    html = owner_client.get(
        reverse("monetization:status", args=[paid_org.slug])
    ).content.decode()
    assert "finish your account in Stripe" in html
    assert WebhookEvent.objects.get().status == WebhookStatus.PROCESSED


def test_deauthorization_in_stripe_disconnects_pauses_billing_and_tells_the_owner(
    paid_org,
    owner_client,
    connected,
    catalog,
    stripe_emulator,
    stripe_webhooks,
    django_capture_on_commit_callbacks,
):
    owner_client.post(
        reverse("monetization:enable", args=[paid_org.slug]), {"password": PASSWORD}
    )
    stripe_webhooks.deliver()  # earlier events (account.application.authorized, …)
    # The publisher removes apimon from their Stripe account (not through apimon).
    sc.get_client().oauth.deauthorize({"stripe_user_id": connected.account_id})

    with django_capture_on_commit_callbacks(execute=True):
        stripe_webhooks.deliver()

    assert ("account.application.deauthorized", 200) in stripe_webhooks.responses
    connected.refresh_from_db()
    assert connected.disconnected_at is not None
    assert connected.billing_paused and not connected.monetization_enabled
    paid_org.refresh_from_db()
    assert not is_monetized(paid_org)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@acme.test"]
    assert "billing is paused" in message.subject
    assert connected.account_id in message.body
    stored = WebhookEvent.objects.get(type="account.application.deauthorized")
    assert stored.status == WebhookStatus.PROCESSED

    # Replaying it (admin) changes nothing more and sends no second email.
    webhooks.webhook_event_replay(event=stored)
    assert len(mail.outbox) == 1


def test_a_failing_handler_keeps_the_error_and_a_replay_processes_it(
    client, stripe_emulator, monkeypatch, django_capture_on_commit_callbacks
):
    calls = []

    def broken(event):
        calls.append(event["id"])
        if len(calls) == 1:
            raise RuntimeError("database went away")

    monkeypatch.setitem(
        webhooks.HANDLERS, "test.event", ["tests.billing.test_webhooks.HANDLER"]
    )
    monkeypatch.setattr("tests.billing.test_webhooks.HANDLER", broken, raising=False)
    post(client, event("test.event", {"id": "obj_1"}))
    stored = WebhookEvent.objects.get()

    with pytest.raises(HandlerFailed):
        webhook_event_process(stored.pk)
    stored.refresh_from_db()
    assert stored.status == WebhookStatus.FAILED
    assert "RuntimeError: database went away" in stored.last_error
    assert stored.processed_at is None and stored.claimed_until is None

    assert webhooks.webhook_event_replay(event=stored) == WebhookStatus.PROCESSED
    stored.refresh_from_db()
    assert stored.attempts == 2 and stored.last_error == ""
    assert calls == ["evt_test_1", "evt_test_1"]


def test_the_task_retries_a_failing_handler_with_backoff():
    from billing.tasks import process_webhook_event

    assert HandlerFailed in process_webhook_event.autoretry_for
    assert process_webhook_event.retry_backoff is True
    assert process_webhook_event.max_retries == 8


def test_an_event_claimed_by_another_worker_is_skipped(client, stripe_emulator):
    from django.utils import timezone

    post(client, event("customer.created", {"id": "cus_1"}))
    stored = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=stored.pk).update(
        claimed_until=timezone.now() + webhooks.CLAIM
    )

    assert webhook_event_process(stored.pk) == "skipped"
    stored.refresh_from_db()
    assert stored.processed_at is None


def test_checkout_sessions_are_routed_by_purpose(monkeypatch):
    seen = []
    monkeypatch.setitem(
        webhooks.CHECKOUT_PURPOSES, "subscription", "tests.billing.test_webhooks.STORE"
    )
    monkeypatch.setattr(
        "tests.billing.test_webhooks.STORE",
        lambda session, *, account: seen.append((session["id"], account)),
        raising=False,
    )
    session = {"id": "cs_test_1", "metadata": {"apimon_purpose": "subscription"}}

    webhooks.on_checkout_session_completed(
        {"account": "acct_1", "data": {"object": session}}
    )
    webhooks.on_checkout_session_completed(
        {"data": {"object": {"id": "cs_test_2", "metadata": {}}}}
    )

    assert seen == [("cs_test_1", "acct_1")]


def test_the_admin_replays_events(client, stripe_emulator):
    from tests.conftest import make_user

    admin = make_user("operator@apimon.test")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    post(client, event("customer.created", {"id": "cus_1"}))
    stored = WebhookEvent.objects.get()
    client.force_login(admin, backend="django.contrib.auth.backends.ModelBackend")

    assert (
        client.get("/admin/billing/webhookevent/?status__exact=RECEIVED").status_code
        == 200
    )
    response = client.post(
        "/admin/billing/webhookevent/",
        {"action": "replay", "_selected_action": [stored.pk]},
    )

    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.status == WebhookStatus.IGNORED and stored.attempts == 1


def test_unknown_accounts_are_ignored_quietly(
    client, stripe_emulator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(
            client,
            event(
                "account.application.deauthorized",
                {"id": "ca_x"},
                account="acct_nobody",
            ),
        )

    assert WebhookEvent.objects.get().status == WebhookStatus.PROCESSED
    assert not StripeConnection.objects.exists()
    assert mail.outbox == []


def test_the_plain_text_disconnected_email_keeps_names_as_typed():
    from types import SimpleNamespace

    from django.template.loader import render_to_string

    context = {
        "organization": SimpleNamespace(name="Smith & Sons"),
        "connection": SimpleNamespace(account_id="acct_1"),
    }
    for name in ("subject", "body"):
        text = render_to_string(f"emails/stripe_disconnected_{name}.txt", context)
        assert "Smith & Sons" in text and "&amp;" not in text


def signed_raw(body: bytes, *, at: int | None = None) -> str:
    timestamp = at or int(time.time())
    signature = stripe.WebhookSignature._compute_signature(
        f"{timestamp}.{body.decode()}", SECRET
    )
    return f"t={timestamp},v1={signature}"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'[{"id": "evt_1", "type": "account.updated"}]',
        b'"evt_1"',
        b"42",
        b"null",
        b'{"type": "account.updated"}',
        b'{"id": ["evt_1"], "type": "account.updated"}',
        b'{"id": "evt_1", "type": 7}',
        json.dumps({"id": "evt_" + "x" * 200, "type": "account.updated"}).encode(),
        b'{"id": "evt_nul", "type": "account.updated", "data": {"object": "a\\u0000"}}',
        b'{"id": "evt_deep", "type": "x", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
)
def test_a_signed_body_that_is_not_a_stripe_event_is_400_and_stores_nothing(
    client, stripe_emulator, body
):
    response = client.post(
        URL,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signed_raw(body)},
    )

    assert response.status_code == 400
    assert response.content == b"bad payload"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(("skew", "accepted"), [(290, True), (301, False)])
def test_a_signature_from_the_future_is_refused_past_five_minutes(
    client, stripe_emulator, skew, accepted
):
    response = post(
        client, event("account.updated", {"id": "acct_x"}), at=int(time.time()) + skew
    )

    assert response.status_code == (200 if accepted else 400)
    assert WebhookEvent.objects.exists() is accepted
    if not accepted:
        assert response.content == b"bad signature"


def test_a_signature_just_inside_the_past_tolerance_is_accepted(
    client, stripe_emulator
):
    response = post(
        client, event("account.updated", {"id": "acct_x"}), at=int(time.time()) - 290
    )

    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1
