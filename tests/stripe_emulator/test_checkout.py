from __future__ import annotations

from typing import Any

import pytest
import stripe

from apimon import stripe_client as sc
from stripe_emulator import testing
from tests.fixtures.stripe import WebhookCapture, connect_account

SUCCESS = "http://testserver/store/subscribed/?session_id={CHECKOUT_SESSION_ID}"
CANCEL = "http://testserver/store/cancelled/"


@pytest.fixture
def customer(stripe_client: Any, opts: dict[str, Any]) -> Any:
    return stripe_client.v1.customers.create({"email": "sub@example.com"}, opts)


@pytest.fixture
def session(stripe_client: Any, opts: dict[str, Any], customer: Any) -> Any:
    return stripe_client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "currency": "usd",
            "customer": customer.id,
            "success_url": SUCCESS,
            "cancel_url": CANCEL,
            "metadata": {"subscription_id": "17"},
            "setup_intent_data": {"metadata": {"subscription_id": "17"}},
        },
        opts,
    )


def test_a_setup_session_has_a_hosted_page_with_a_card_form(
    session: Any, stripe_emulator: Any
) -> None:
    assert session.id.startswith("cs_test_")
    assert (session.mode, session.status, session.payment_status) == (
        "setup",
        "open",
        "no_payment_required",
    )
    assert session.setup_intent.startswith("seti_")
    assert session.url.startswith("http://127.0.0.1:12111/c/pay/" + session.id)
    assert session.expires_at == session.created + 24 * 3600

    status, content_type, page = testing.get_page(stripe_emulator, session.url)

    assert status == 200 and "text/html" in content_type
    assert 'name="cardnumber"' in page or "name=cardnumber" in page
    assert "Save card" in page
    assert "Stripe emulator" in page and "no real money moves" in page
    assert CANCEL in page
    assert "Example Publisher" in page  # the connected account's name
    assert "sub@example.com" in page


def test_typing_4242_saves_the_card_and_completes_the_session(
    stripe_client: Any,
    opts: dict[str, Any],
    session: Any,
    customer: Any,
    stripe_emulator: Any,
) -> None:
    status, location = testing.submit_card(
        stripe_emulator, session.url, "4242 4242 4242 4242", name="Jenny Rosen"
    )

    assert status == 303
    assert location == SUCCESS.replace("{CHECKOUT_SESSION_ID}", session.id)
    done = stripe_client.v1.checkout.sessions.retrieve(
        session.id, {"expand": ["setup_intent.payment_method"]}, opts
    )
    assert done.status == "complete" and done.url is None
    assert done.customer_details.email == "sub@example.com"
    assert done.customer_details.name == "Jenny Rosen"
    intent = done.setup_intent
    assert intent.status == "succeeded" and intent.customer == customer.id
    assert intent.metadata.subscription_id == "17"
    card = intent.payment_method
    assert (card.customer, card.card.last4, card.card.brand) == (
        customer.id,
        "4242",
        "visa",
    )
    assert card.billing_details.name == "Jenny Rosen"
    # Checkout does not make the card the customer's default: apimon does that.
    fresh = stripe_client.v1.customers.retrieve(customer.id, None, opts)
    assert fresh.invoice_settings.default_payment_method is None
    events = stripe_client.v1.events.list({}, opts).data
    completed = [e for e in events if e.type == "checkout.session.completed"]
    assert completed[0].data.object.id == session.id
    assert completed[0].data.object.metadata.subscription_id == "17"
    assert completed[0].account == done_account(opts)
    assert "setup_intent.succeeded" in [e.type for e in events]
    assert "payment_method.attached" in [e.type for e in events]
    status, _type, page = testing.get_page(stripe_emulator, session.url)
    assert "Your card has been saved" in page


def done_account(opts: dict[str, Any]) -> str:
    return opts["stripe_account"]


def test_a_declined_card_shows_the_decline_and_can_be_retried(
    stripe_client: Any, opts: dict[str, Any], session: Any, stripe_emulator: Any
) -> None:
    status, page = testing.submit_card(
        stripe_emulator, session.url, "4000 0000 0000 0002"
    )

    assert status == 402 and "Your card was declined." in page
    still_open = stripe_client.v1.checkout.sessions.retrieve(session.id, None, opts)
    assert still_open.status == "open"
    intent = stripe_client.v1.setup_intents.retrieve(session.setup_intent, None, opts)
    assert intent.status == "requires_payment_method"
    assert intent.last_setup_error.code == "card_declined"

    status, _location = testing.submit_card(
        stripe_emulator, session.url, "4242424242424242"
    )

    assert status == 303
    assert stripe_client.v1.checkout.sessions.retrieve(
        session.id, None, opts
    ).status == ("complete")


@pytest.mark.parametrize(
    ("number", "exp", "message"),
    [
        ("4242 4242 4242 4241", "12/34", "Your card number is incorrect."),
        ("4111 1111 1111 1111", "12/34", "test mode, but used a non test (live) card"),
        ("4242 4242 4242 4242", "01/20", "Your card's expiration year is in the past."),
        ("4242 4242 4242 4242", "1", "Your card's expiration date is incomplete."),
        # Digits to str.isdigit() that int() does not read: the page explains,
        # it does not answer 500.
        ("²" * 16, "12/34", "Your card number is incorrect."),
        ("4242 4242 4242 4242", "¹²/³⁴", "Your card's expiration date is incomplete."),
    ],
)
def test_bad_card_details_are_explained_on_the_page(
    session: Any, stripe_emulator: Any, number: str, exp: str, message: str
) -> None:
    status, page = testing.submit_card(stripe_emulator, session.url, number, exp=exp)

    assert status == 402
    assert message.replace("'", "&#x27;") in page


def test_a_card_that_fails_charges_still_saves(
    stripe_client: Any, opts: dict[str, Any], session: Any, stripe_emulator: Any
) -> None:
    status, _location = testing.submit_card(
        stripe_emulator, session.url, "4000000000000341"
    )

    assert status == 303
    intent = stripe_client.v1.setup_intents.retrieve(session.setup_intent, None, opts)
    assert intent.status == "succeeded"


def test_expire_closes_the_session(
    stripe_client: Any, opts: dict[str, Any], session: Any, stripe_emulator: Any
) -> None:
    expired = stripe_client.v1.checkout.sessions.expire(session.id, None, opts)

    assert expired.status == "expired" and expired.url is None
    status, _type, _page = testing.get_page(stripe_emulator, session.url)
    assert status == 410
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.checkout.sessions.expire(session.id, None, opts)
    assert "checkout.session.expired" in [
        e.type for e in stripe_client.v1.events.list({}, opts).data
    ]


def test_expiring_sends_checkout_session_expired_to_the_webhook(
    stripe_client: Any,
    opts: dict[str, Any],
    session: Any,
    stripe_emulator: Any,
    stripe_webhook_capture: WebhookCapture,
) -> None:
    stripe_emulator.deliver_pending()
    stripe_webhook_capture.received.clear()

    stripe_client.v1.checkout.sessions.expire(session.id, None, opts)
    stripe_emulator.deliver_pending()

    expired = [
        e
        for e in stripe_webhook_capture.events()
        if e["type"] == "checkout.session.expired"
    ]
    assert len(expired) == 1
    event = expired[0]
    assert event["account"] == opts["stripe_account"]
    assert event["data"]["object"]["id"] == session.id
    assert event["data"]["object"]["status"] == "expired"
    assert event["data"]["object"]["metadata"] == {"subscription_id": "17"}
    intent = stripe_client.v1.setup_intents.retrieve(session.setup_intent, None, opts)
    assert intent.status == "canceled"


def test_an_expired_sessions_page_takes_no_card(
    stripe_client: Any,
    opts: dict[str, Any],
    session: Any,
    customer: Any,
    stripe_emulator: Any,
) -> None:
    page_url = session.url
    stripe_client.v1.checkout.sessions.expire(session.id, None, opts)

    status, page = testing.submit_card(stripe_emulator, page_url, "4242424242424242")

    assert status == 410
    assert "This Checkout Session has expired" in page
    assert CANCEL in page  # "Go back"
    after = stripe_client.v1.checkout.sessions.retrieve(session.id, None, opts)
    assert (after.status, after.url, after.customer_details) == ("expired", None, None)
    intent = stripe_client.v1.setup_intents.retrieve(session.setup_intent, None, opts)
    assert intent.status == "canceled" and intent.payment_method is None
    assert (
        stripe_client.v1.customers.payment_methods.list(customer.id, None, opts).data
        == []
    )
    assert "checkout.session.completed" not in [
        e.type for e in stripe_client.v1.events.list({}, opts).data
    ]


def test_a_complete_session_cannot_be_expired(
    stripe_client: Any, opts: dict[str, Any], session: Any, stripe_emulator: Any
) -> None:
    testing.submit_card(stripe_emulator, session.url, "4242424242424242")

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.checkout.sessions.expire(session.id, None, opts)

    assert excinfo.value.http_status == 400
    assert excinfo.value.error.type == "invalid_request_error"
    assert excinfo.value.user_message == (
        'Only Checkout Sessions with a status in ["open"] can be expired. This '
        'Checkout Session has a status of "complete".'
    )
    after = stripe_client.v1.checkout.sessions.retrieve(session.id, None, opts)
    assert after.status == "complete"
    assert "checkout.session.expired" not in [
        e.type for e in stripe_client.v1.events.list({}, opts).data
    ]


def test_another_accounts_session_cannot_be_expired(
    stripe_client: Any, session: Any, stripe_emulator: Any, opts: dict[str, Any]
) -> None:
    other = connect_account(stripe_emulator, email="other@example.com")

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.checkout.sessions.expire(
            session.id, None, sc.request_options(account=other)
        )

    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"
    after = stripe_client.v1.checkout.sessions.retrieve(session.id, None, opts)
    assert after.status == "open"


def test_an_open_session_expires_by_itself_after_24_hours(
    stripe_client: Any, opts: dict[str, Any], session: Any, stripe_emulator: Any
) -> None:
    stripe_emulator.advance(24 * 3600)

    assert stripe_client.v1.checkout.sessions.retrieve(
        session.id, None, opts
    ).status == ("expired")


def test_sessions_are_listed_by_customer(
    stripe_client: Any, opts: dict[str, Any], session: Any, customer: Any
) -> None:
    listed = stripe_client.v1.checkout.sessions.list({"customer": customer.id}, opts)

    assert [s.id for s in listed.data] == [session.id]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"currency": "usd", "success_url": SUCCESS}, "mode"),
        ({"mode": "payment", "currency": "usd", "success_url": SUCCESS}, "mode"),
        ({"mode": "setup", "success_url": SUCCESS}, "currency"),
        ({"mode": "setup", "currency": "usd"}, "success_url"),
        (
            {
                "mode": "setup",
                "currency": "usd",
                "success_url": SUCCESS,
                "customer": "cus_nope",
            },
            "customer",
        ),
    ],
)
def test_invalid_sessions_are_refused(
    stripe_client: Any, opts: dict[str, Any], params: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.checkout.sessions.create(params, opts)

    assert excinfo.value.param == param


def test_without_a_customer_the_card_is_saved_unattached(
    stripe_client: Any, opts: dict[str, Any], stripe_emulator: Any
) -> None:
    session = stripe_client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "allowed_payment_method_types": ["card"],
            "success_url": SUCCESS,
        },
        opts,
    )

    testing.submit_card(stripe_emulator, session.url, "4242 4242 4242 4242")

    intent = stripe_client.v1.setup_intents.retrieve(session.setup_intent, None, opts)
    assert intent.status == "succeeded" and intent.customer is None
    pm = stripe_client.v1.payment_methods.retrieve(intent.payment_method, None, opts)
    assert pm.customer is None


def test_the_page_promises_nothing_about_charges_by_itself(
    session: Any, stripe_emulator: Any
) -> None:
    # Setup mode charges nothing, but the merchant may charge the card at once: the
    # page does not say "You will not be charged now" on the merchant's behalf.
    _status, _type, page = testing.get_page(stripe_emulator, session.url)
    assert "You will not be charged" not in page
    assert "Save a card with Example Publisher for future payments." in page
    assert "you allow Example Publisher to charge it for future payments" in page
    assert session.custom_text.submit is None


def with_submit_text(
    stripe_client: Any, opts: dict[str, Any], customer: Any, message: str
) -> Any:
    return stripe_client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "currency": "usd",
            "customer": customer.id,
            "success_url": SUCCESS,
            "custom_text": {"submit": {"message": message}},
        },
        opts,
    )


@pytest.mark.parametrize(
    "message",
    [
        "You will be charged $29.00 now for your first month, then monthly.",
        "Your 14-day free trial starts now: nothing is charged today.",
        "Nothing is charged now: this card pays your next invoices.",
    ],
)
def test_the_merchants_submit_text_says_what_happens(
    stripe_client: Any,
    opts: dict[str, Any],
    customer: Any,
    stripe_emulator: Any,
    message: str,
) -> None:
    session = with_submit_text(stripe_client, opts, customer, message)
    assert session.custom_text.submit.message == message
    assert session.custom_text.after_submit is None

    _status, _type, page = testing.get_page(stripe_emulator, session.url)

    assert f"<p class=submit-text>{message}</p>" in page
    assert "You will not be charged" not in page


def test_custom_text_is_escaped_and_limited(
    stripe_client: Any, opts: dict[str, Any], customer: Any, stripe_emulator: Any
) -> None:
    session = with_submit_text(stripe_client, opts, customer, "<b>bold</b>")
    _status, _type, page = testing.get_page(stripe_emulator, session.url)
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.checkout.sessions.create(
            {
                "mode": "setup",
                "currency": "usd",
                "success_url": SUCCESS,
                "custom_text": {"submit": {"message": "x" * 1201}},
            },
            opts,
        )
    assert excinfo.value.param == "custom_text[submit][message]"


def test_the_hosted_pages_carry_a_content_security_policy(
    session: Any, stripe_emulator: Any
) -> None:
    """No script at all; the page's one stylesheet allowed by its hash."""
    import base64
    import hashlib
    import re

    from werkzeug.test import Client

    response = Client(stripe_emulator.app).get(
        session.url.removeprefix("http://127.0.0.1:12111"),
        base_url="http://127.0.0.1:12111",
    )
    policy = response.headers["Content-Security-Policy"]
    css = re.search(r"<style>(.*?)</style>", response.get_data(as_text=True), re.S)
    digest = base64.b64encode(hashlib.sha256(css.group(1).encode()).digest())

    assert "default-src 'none'" in policy
    assert f"style-src 'sha256-{digest.decode()}'" in policy
    assert "script" not in policy and "unsafe-inline" not in policy
    assert "<script" not in response.get_data(as_text=True)
