"""The webhook endpoint: verified, stored once, processed once in Celery, replayable,
idempotent under retries; and the handlers of Connect and platform-plan events."""

from __future__ import annotations

import json
import time

import pytest
import stripe
from django.core import mail
from django.db import connection
from django.urls import reverse

from apimon import stripe_client as sc
from billing import webhooks
from billing.models import StripeConnection, WebhookEvent, WebhookStatus
from billing.models import monetization_enabled as is_monetized
from billing.webhooks import HandlerFailed, webhook_event_process
from tests.conftest import PASSWORD, make_user

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
    assert stored.processed_at is None

    assert webhooks.webhook_event_replay(event=stored) == WebhookStatus.PROCESSED
    stored.refresh_from_db()
    assert stored.attempts == 2 and stored.last_error == ""
    assert calls == ["evt_test_1", "evt_test_1"]


@pytest.fixture
def worker_retries(monkeypatch):
    """Tasks still run inline, but a failing one is retried as a worker retries it
    (at once here, without the backoff's wait) instead of its first error being
    raised to the caller: in production the caller never sees the task's errors."""
    from apimon.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)


@pytest.fixture
def deliver_failing(
    client,
    stripe_emulator,
    monkeypatch,
    worker_retries,
    django_capture_on_commit_callbacks,
):
    """Registers a handler for "test.event" that fails its first `failures` calls
    (each a RuntimeError), delivers such an event to the endpoint and lets it be
    processed; returns the response and the events the handler was called with."""
    calls: list[str] = []
    failures = [0]

    def handler(event):
        calls.append(event["id"])
        if len(calls) <= failures[0]:
            raise RuntimeError(f"database went away (call {len(calls)})")

    monkeypatch.setitem(
        webhooks.HANDLERS, "test.event", ["tests.billing.test_webhooks.HANDLER"]
    )
    monkeypatch.setattr("tests.billing.test_webhooks.HANDLER", handler, raising=False)

    def deliver(times: int):
        failures[0] = times
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, event("test.event", {"id": "obj_1"}))
        return response, calls

    return deliver


def test_a_handler_that_fails_for_a_while_is_retried_until_it_succeeds(
    deliver_failing,
):
    response, calls = deliver_failing(2)

    assert response.status_code == 200  # Stripe is answered before processing
    assert calls == ["evt_test_1"] * 3
    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.attempts, stored.last_error) == (
        WebhookStatus.PROCESSED,
        3,
        "",
    )
    assert stored.processed_at is not None


def test_a_handler_that_keeps_failing_is_recorded_as_failed_for_the_operator(
    client, deliver_failing
):
    response, calls = deliver_failing(100)

    assert response.status_code == 200
    assert len(calls) == 9  # the first try and eight retries, then it stops
    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.attempts) == (WebhookStatus.FAILED, 9)
    assert stored.last_error == "RuntimeError: database went away (call 9)"
    assert stored.processed_at is None

    # The operator finds it among the failed events, with its attempts and error.
    operator = make_user("operator@apimon.test")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    client.force_login(operator, backend="django.contrib.auth.backends.ModelBackend")
    listing = client.get("/admin/billing/webhookevent/", {"status__exact": "FAILED"})
    assert [e.pk for e in listing.context["cl"].result_list] == [stored.pk]
    html = listing.content.decode()
    assert '<td class="field-attempts">9</td>' in html
    page = client.get(f"/admin/billing/webhookevent/{stored.pk}/change/")
    assert "RuntimeError: database went away (call 9)" in page.content.decode()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks with SKIP LOCKED need PostgreSQL (SQLite has one writer)",
)
@pytest.mark.django_db(transaction=True)
def test_an_event_held_by_another_worker_is_skipped_then_taken_when_it_dies():
    """Another worker holds the event (its row lock, as while its handlers run):
    this one skips it. When that worker dies its connection closes and its lock
    goes with it: the next delivery processes the event at once."""
    import psycopg2

    stored = WebhookEvent.objects.create(  # received, its task not yet run
        event_id="evt_1",
        type="customer.created",
        payload=event("customer.created", {"id": "cus_1"}, id_="evt_1"),
    )
    params = connection.get_connection_params()
    other = psycopg2.connect(**params)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM billing_webhookevent WHERE id = %s FOR UPDATE",
                [stored.pk],
            )
        assert webhook_event_process(stored.pk) == "skipped"
        stored.refresh_from_db()
        assert (stored.processed_at, stored.attempts) == (None, 0)
    finally:
        other.close()  # the worker dies without committing

    assert webhook_event_process(stored.pk) == WebhookStatus.IGNORED
    stored.refresh_from_db()
    assert stored.processed_at is not None and stored.attempts == 1


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


def test_an_event_whose_task_was_lost_is_processed_by_the_billing_job():
    """A worker killed while it held the event's task (or a broker that lost its
    queue) leaves the event RECEIVED: the billing job enqueues it again once it is
    two minutes old; a recent, failed or claimed event is left alone."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.services import billing_tick

    now = timezone.now()

    def stored(event_id, **fields):
        return WebhookEvent.objects.create(
            event_id=event_id,
            type="customer.created",  # no handler: processing marks it IGNORED
            payload=event("customer.created", {"id": "cus_1"}, id_=event_id),
            **fields,
        )

    lost = stored("evt_lost", received_at=now - timedelta(minutes=3))
    died = stored(  # taken by a worker that died mid-event
        "evt_died",
        received_at=now - timedelta(minutes=9),
        attempts=1,
    )
    recent = stored("evt_recent", received_at=now - timedelta(seconds=30))
    failed = stored(
        "evt_failed",
        received_at=now - timedelta(minutes=3),
        status=WebhookStatus.FAILED,
    )

    assert billing_tick(now=now).webhooks == 2

    for row in (lost, died, recent, failed):
        row.refresh_from_db()
    assert lost.status == died.status == WebhookStatus.IGNORED
    assert lost.processed_at is not None and died.processed_at is not None
    assert recent.processed_at is failed.processed_at is None


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
