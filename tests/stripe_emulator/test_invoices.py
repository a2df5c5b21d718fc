from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_emulator import testing
from stripe_emulator.api.invoices import RETRY_DAYS
from tests.fixtures.stripe import create_customer_with_card

DAY = 86400


def types(client: Any, opts: dict[str, Any]) -> list[str]:
    return [
        event.type
        for event in client.v1.events.list({"limit": 100}, opts).auto_paging_iter()
    ]


def draft_with_lines(
    client: Any, opts: dict[str, Any], customer: str, **invoice: Any
) -> Any:
    draft = client.v1.invoices.create({"customer": customer, **invoice}, opts)
    client.v1.invoice_items.create(
        {
            "customer": customer,
            "invoice": draft.id,
            "quantity": 12345,
            "unit_amount_decimal": "0.04",
            "description": "12,345 calls",
        },
        opts,
    )
    client.v1.invoice_items.create(
        {
            "customer": customer,
            "invoice": draft.id,
            "amount": 1000,
            "description": "Gold",
        },
        opts,
    )
    return client.v1.invoices.retrieve(draft.id, None, opts)


def test_totals_are_the_sum_of_lines_rounded_half_up(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)

    invoice = draft_with_lines(stripe_client, opts, customer)

    # 12,345 calls at $0.0004 = 493.8 cents, so 494; plus 1,000
    assert [line.amount for line in invoice.lines.data] == [494, 1000]
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (1494, 1494, 1494)
    assert invoice.status == "draft" and invoice.number is None
    assert invoice.hosted_invoice_url is None and invoice.invoice_pdf is None
    line = invoice.lines.data[0]
    assert line.id.startswith("il_") and line.parent.type == "invoice_item_details"
    assert line.parent.invoice_item_details.invoice_item.startswith("ii_")
    assert str(line.pricing.unit_amount_decimal) == "0.04"
    assert line.quantity == 12345


def test_a_half_cent_rounds_up(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    item = stripe_client.v1.invoice_items.create(
        {"customer": customer, "quantity": 5, "unit_amount_decimal": "0.1"}, opts
    )
    assert item.amount == 1  # 0.5 cents → 1
    item = stripe_client.v1.invoice_items.update(item.id, {"quantity": 4}, opts)
    assert item.amount == 0  # 0.4 cents → 0


def test_an_item_priced_by_a_one_time_price(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    product = stripe_client.v1.products.create({"name": "Setup fee"}, opts)
    price = stripe_client.v1.prices.create(
        {"product": product.id, "currency": "usd", "unit_amount": 2500}, opts
    )
    recurring = stripe_client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
        },
        opts,
    )

    item = stripe_client.v1.invoice_items.create(
        {"customer": customer, "pricing": {"price": price.id}, "quantity": 2}, opts
    )

    assert item.amount == 5000 and item.description == "Setup fee"
    assert item.pricing.price_details.price == price.id
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoice_items.create(
            {"customer": customer, "pricing": {"price": recurring.id}}, opts
        )
    assert "type=one_time" in excinfo.value.user_message


def test_finalize_numbers_the_invoice_and_publishes_its_page_and_pdf(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str, stripe_emulator: Any
) -> None:
    customer, _pm = create_customer_with_card(stripe_account, email="sub@example.com")
    draft = draft_with_lines(stripe_client, opts, customer)

    invoice = stripe_client.v1.invoices.finalize_invoice(draft.id, None, opts)

    assert invoice.status == "open"
    assert invoice.number.endswith("-0001")
    assert invoice.status_transitions.finalized_at is not None
    assert invoice.customer_email == "sub@example.com"
    assert invoice.next_payment_attempt is None  # auto_advance defaults to false
    status, content_type, page = testing.get_page(
        stripe_emulator, invoice.hosted_invoice_url
    )
    assert status == 200 and "text/html" in content_type
    assert invoice.number in page and "$14.94" in page
    assert "Amount paid" not in page
    assert "Amount remaining</td><td class=num>$14.94" in page
    status, content_type, pdf = testing.get_bytes(stripe_emulator, invoice.invoice_pdf)
    assert (status, content_type) == (200, "application/pdf")
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert invoice.number.encode() in pdf
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.finalize_invoice(draft.id, None, opts)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoice_items.create(
            {"customer": customer, "invoice": draft.id, "amount": 1}, opts
        )
    assert excinfo.value.code == "invoice_not_editable"
    second = stripe_client.v1.invoices.create({"customer": customer}, opts)
    assert stripe_client.v1.invoices.finalize_invoice(
        second.id, None, opts
    ).number.endswith("-0002")


def test_paying_charges_the_default_card_and_takes_the_platform_fee(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, pm = create_customer_with_card(stripe_account)
    draft = draft_with_lines(stripe_client, opts, customer, application_fee_amount=149)
    stripe_client.v1.invoices.finalize_invoice(draft.id, None, opts)

    paid = stripe_client.v1.invoices.pay(draft.id, None, opts)

    assert paid.status == "paid"
    assert (paid.amount_paid, paid.amount_remaining, paid.attempt_count) == (1494, 0, 1)
    assert paid.status_transitions.paid_at is not None
    expanded = stripe_client.v1.invoices.retrieve(
        draft.id, {"expand": ["payments"]}, opts
    )
    payment = expanded.payments.data[0]
    assert payment.status == "paid" and payment.amount_paid == 1494
    intent = stripe_client.v1.payment_intents.retrieve(
        payment.payment.payment_intent, None, opts
    )
    assert (intent.status, intent.amount_received, intent.application_fee_amount) == (
        "succeeded",
        1494,
        149,
    )
    charge = stripe_client.v1.charges.retrieve(intent.latest_charge, None, opts)
    assert (charge.paid, charge.amount, charge.payment_method) == (True, 1494, pm)
    assert charge.payment_method_details.card.last4 == "4242"
    # The fee lives on the platform, pointing at the connected account's charge.
    fee = stripe_client.v1.application_fees.retrieve(charge.application_fee)
    assert (fee.amount, fee.account, fee.charge) == (149, stripe_account, charge.id)
    assert [f.id for f in stripe_client.v1.application_fees.list().data] == [fee.id]
    assert stripe_client.v1.application_fees.list({}, opts).data == []
    txn = stripe_client.v1.balance_transactions.retrieve(
        charge.balance_transaction, None, opts
    )
    assert txn.amount == 1494 and txn.fee == 149 + round(1494 * 0.029) + 30
    seen = types(stripe_client, opts)
    for expected in (
        "charge.succeeded",
        "payment_intent.succeeded",
        "invoice.paid",
        "invoice.payment_succeeded",
    ):
        assert expected in seen
    platform = [e.type for e in stripe_client.v1.events.list().data]
    assert platform == ["application_fee.created"]
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.pay(draft.id, None, opts)


def test_paying_a_draft_finalizes_it_first(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    draft = draft_with_lines(stripe_client, opts, customer)

    paid = stripe_client.v1.invoices.pay(draft.id, None, opts)

    assert paid.status == "paid" and paid.number is not None
    assert "invoice.finalized" in types(stripe_client, opts)


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_chargeCustomerFail", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_a_declined_payment_leaves_the_invoice_open_and_counts_the_attempt(
    stripe_client: Any,
    opts: dict[str, Any],
    stripe_account: str,
    card: str,
    decline_code: str,
) -> None:
    customer, _pm = create_customer_with_card(stripe_account, card=card)
    draft = draft_with_lines(stripe_client, opts, customer)
    stripe_client.v1.invoices.finalize_invoice(draft.id, None, opts)

    with pytest.raises(stripe.CardError) as excinfo:
        stripe_client.v1.invoices.pay(draft.id, None, opts)

    error = excinfo.value
    assert error.http_status == 402 and error.code == "card_declined"
    assert error.error.decline_code == decline_code
    assert error.error.charge.startswith("ch_")
    invoice = stripe_client.v1.invoices.retrieve(draft.id, None, opts)
    assert (invoice.status, invoice.attempt_count, invoice.attempted) == (
        "open",
        1,
        True,
    )
    assert invoice.amount_paid == 0 and invoice.amount_remaining == 1494
    assert "invoice.payment_failed" in types(stripe_client, opts)
    assert stripe_client.v1.customers.retrieve(customer, None, opts).delinquent is True
    charge = stripe_client.v1.charges.retrieve(error.error.charge, None, opts)
    assert (charge.status, charge.outcome.reason) == ("failed", decline_code)
    # A new card fixes it.
    paid = stripe_client.v1.invoices.pay(
        draft.id, {"payment_method": "pm_card_visa"}, opts
    )
    assert paid.status == "paid" and paid.attempt_count == 2
    assert stripe_client.v1.customers.retrieve(customer, None, opts).delinquent is False


def test_paying_without_a_default_payment_method_is_refused(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer = stripe_client.v1.customers.create({}, opts)
    stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer.id}, opts
    )
    invoice = stripe_client.v1.invoices.create({"customer": customer.id}, opts)
    stripe_client.v1.invoice_items.create(
        {"customer": customer.id, "invoice": invoice.id, "amount": 500}, opts
    )

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoices.pay(invoice.id, None, opts)

    assert (
        "no attached payment source or default payment method"
        in excinfo.value.user_message
    )


def test_an_invoice_default_payment_method_wins_over_the_customers(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _declining = create_customer_with_card(
        stripe_account, card="pm_card_chargeCustomerFail"
    )
    good = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer}, opts
    )
    invoice = draft_with_lines(
        stripe_client, opts, customer, default_payment_method=good.id
    )

    paid = stripe_client.v1.invoices.pay(invoice.id, None, opts)

    assert paid.status == "paid" and paid.default_payment_method == good.id


def test_void_and_uncollectible(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    one = draft_with_lines(stripe_client, opts, customer)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.void_invoice(one.id, None, opts)  # drafts are deleted
    stripe_client.v1.invoices.finalize_invoice(one.id, None, opts)

    voided = stripe_client.v1.invoices.void_invoice(one.id, None, opts)

    assert voided.status == "void" and voided.status_transitions.voided_at is not None
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.pay(one.id, None, opts)
    two = draft_with_lines(stripe_client, opts, customer)
    stripe_client.v1.invoices.finalize_invoice(two.id, None, opts)
    lost = stripe_client.v1.invoices.mark_uncollectible(two.id, None, opts)
    assert lost.status == "uncollectible"
    assert lost.status_transitions.marked_uncollectible_at is not None
    assert stripe_client.v1.invoices.pay(two.id, None, opts).status == "paid"
    seen = types(stripe_client, opts)
    assert "invoice.voided" in seen and "invoice.marked_uncollectible" in seen


def test_a_draft_can_be_updated_and_deleted(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    draft = draft_with_lines(stripe_client, opts, customer)

    updated = stripe_client.v1.invoices.update(
        draft.id, {"description": "March", "metadata": {"period": "2026-03"}}, opts
    )

    assert updated.description == "March"
    event = stripe_client.v1.events.list({"type": "invoice.updated"}, opts).data[0]
    assert event.data.previous_attributes.description is None
    assert stripe_client.v1.invoices.delete(draft.id, None, opts).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.retrieve(draft.id, None, opts)
    assert stripe_client.v1.invoice_items.list({"customer": customer}, opts).data == []


def test_finalized_invoices_only_take_a_few_changes(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    invoice = draft_with_lines(stripe_client, opts, customer)
    stripe_client.v1.invoices.finalize_invoice(invoice.id, None, opts)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoices.update(
            invoice.id, {"application_fee_amount": 5}, opts
        )

    assert excinfo.value.code == "invoice_not_editable"
    updated = stripe_client.v1.invoices.update(
        invoice.id, {"metadata": {"a": "b"}}, opts
    )
    assert updated.metadata.a == "b"


def test_pending_items_are_included_only_when_asked(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    stripe_client.v1.invoice_items.create({"customer": customer, "amount": 300}, opts)

    excluded = stripe_client.v1.invoices.create({"customer": customer}, opts)
    included = stripe_client.v1.invoices.create(
        {"customer": customer, "pending_invoice_items_behavior": "include"}, opts
    )

    assert excluded.total == 0 and included.total == 300
    pending = stripe_client.v1.invoice_items.list(
        {"customer": customer, "pending": True}, opts
    )
    assert pending.data == []


def test_a_zero_invoice_is_paid_when_finalized(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    invoice = stripe_client.v1.invoices.create({"customer": customer}, opts)

    finalized = stripe_client.v1.invoices.finalize_invoice(invoice.id, None, opts)

    assert finalized.status == "paid" and finalized.amount_paid == 0
    assert "invoice.paid" in types(stripe_client, opts)


def test_a_credit_note_like_negative_invoice_leaves_a_customer_credit(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    credit = stripe_client.v1.invoices.create({"customer": customer}, opts)
    stripe_client.v1.invoice_items.create(
        {
            "customer": customer,
            "invoice": credit.id,
            "amount": -700,
            "description": "Unused time",
        },
        opts,
    )
    credit = stripe_client.v1.invoices.finalize_invoice(credit.id, None, opts)
    assert (credit.total, credit.amount_due, credit.ending_balance) == (-700, 0, -700)
    assert stripe_client.v1.customers.retrieve(customer, None, opts).balance == -700

    next_invoice = draft_with_lines(stripe_client, opts, customer)
    next_invoice = stripe_client.v1.invoices.finalize_invoice(
        next_invoice.id, None, opts
    )

    assert (next_invoice.starting_balance, next_invoice.amount_due) == (-700, 794)
    assert stripe_client.v1.customers.retrieve(customer, None, opts).balance == 0


def test_the_application_fee_needs_a_connected_account(stripe_client: Any) -> None:
    customer = stripe_client.v1.customers.create({})

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoices.create(
            {"customer": customer.id, "application_fee_amount": 10}
        )

    assert excinfo.value.param == "application_fee_amount"


def test_send_invoice_collection_has_a_due_date(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoices.create(
            {"customer": customer, "collection_method": "send_invoice"}, opts
        )
    assert excinfo.value.param == "days_until_due"

    invoice = draft_with_lines(
        stripe_client,
        opts,
        customer,
        collection_method="send_invoice",
        days_until_due=14,
    )
    sent = stripe_client.v1.invoices.send_invoice(invoice.id, None, opts)

    assert sent.status == "open"
    assert sent.due_date == sent.status_transitions.finalized_at + 14 * DAY
    assert "invoice.sent" in types(stripe_client, opts)


def test_lines_beyond_ten_are_paginated(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    invoice = stripe_client.v1.invoices.create({"customer": customer}, opts)
    for amount in range(1, 13):
        stripe_client.v1.invoice_items.create(
            {"customer": customer, "invoice": invoice.id, "amount": amount}, opts
        )

    fetched = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)

    assert fetched.total == sum(range(1, 13))
    assert len(fetched.lines.data) == 10 and fetched.lines.has_more is True
    lines = stripe_client.v1.invoices.line_items.list(invoice.id, {"limit": 100}, opts)
    assert [line.amount for line in lines.data] == list(range(1, 13))


def test_auto_advance_finalizes_after_an_hour_and_collects(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str, stripe_emulator: Any
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    invoice = draft_with_lines(stripe_client, opts, customer, auto_advance=True)
    assert invoice.automatically_finalizes_at == invoice.created + 3600

    stripe_emulator.advance(3000)
    assert stripe_client.v1.invoices.retrieve(invoice.id, None, opts).status == "draft"
    stripe_emulator.advance(700)

    collected = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)
    assert collected.status == "paid" and collected.attempt_count == 1
    assert collected.status_transitions.finalized_at == invoice.created + 3600
    assert collected.status_transitions.paid_at == invoice.created + 3600
    finalized = stripe_client.v1.events.list({"type": "invoice.finalized"}, opts).data[
        0
    ]
    assert finalized.request.id is None  # done by Stripe, not by a request


def test_finalizing_with_auto_advance_attempts_payment_on_the_next_tick(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str, stripe_emulator: Any
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    invoice = draft_with_lines(stripe_client, opts, customer)

    finalized = stripe_client.v1.invoices.finalize_invoice(
        invoice.id, {"auto_advance": True}, opts
    )
    assert finalized.status == "open" and finalized.next_payment_attempt is not None
    stripe_emulator.run_due()

    assert stripe_client.v1.invoices.retrieve(invoice.id, None, opts).status == "paid"


def test_failed_automatic_payments_are_retried_on_the_documented_schedule(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str, stripe_emulator: Any
) -> None:
    assert RETRY_DAYS == (1, 3, 5)
    customer, _pm = create_customer_with_card(
        stripe_account, card="pm_card_chargeCustomerFail"
    )
    invoice = draft_with_lines(stripe_client, opts, customer)
    stripe_client.v1.invoices.finalize_invoice(invoice.id, {"auto_advance": True}, opts)
    stripe_emulator.run_due()
    first = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)
    failed_at = first.status_transitions.finalized_at
    assert first.attempt_count == 1 and first.next_payment_attempt == failed_at + DAY

    stripe_emulator.advance(DAY)
    second = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)
    assert (
        second.attempt_count == 2 and second.next_payment_attempt == failed_at + 3 * DAY
    )
    stripe_emulator.advance(4 * DAY)  # runs day 3 and day 5, each at its own time
    last = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)
    assert last.attempt_count == 4 and last.next_payment_attempt is None
    assert last.status == "open"  # Stripe's default: leave it past due
    failures = stripe_client.v1.events.list(
        {"type": "invoice.payment_failed"}, opts
    ).data
    assert sorted(e.created for e in failures) == [
        failed_at,
        failed_at + DAY,
        failed_at + 3 * DAY,
        failed_at + 5 * DAY,
    ]
    stripe_emulator.advance(30 * DAY)
    assert stripe_client.v1.invoices.retrieve(invoice.id, None, opts).attempt_count == 4


def test_a_new_default_card_is_used_by_the_next_retry(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str, stripe_emulator: Any
) -> None:
    customer, _pm = create_customer_with_card(
        stripe_account, card="pm_card_chargeCustomerFail"
    )
    invoice = draft_with_lines(stripe_client, opts, customer)
    stripe_client.v1.invoices.finalize_invoice(invoice.id, {"auto_advance": True}, opts)
    stripe_emulator.run_due()
    good = stripe_client.v1.payment_methods.attach(
        "pm_card_visa", {"customer": customer}, opts
    )
    stripe_client.v1.customers.update(
        customer, {"invoice_settings": {"default_payment_method": good.id}}, opts
    )

    stripe_emulator.advance(DAY)

    paid = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)
    assert paid.status == "paid" and paid.attempt_count == 2


def test_the_hosted_invoice_page_takes_a_card_payment(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str, stripe_emulator: Any
) -> None:
    customer, _pm = create_customer_with_card(
        stripe_account, card="pm_card_chargeCustomerFail"
    )
    invoice = draft_with_lines(stripe_client, opts, customer)
    invoice = stripe_client.v1.invoices.finalize_invoice(invoice.id, None, opts)

    status, page = testing.submit_card(
        stripe_emulator, invoice.hosted_invoice_url, "4000 0000 0000 0002"
    )
    assert status == 402 and "Your card was declined." in page
    status, _location = testing.submit_card(
        stripe_emulator, invoice.hosted_invoice_url, "4242 4242 4242 4242"
    )

    assert status == 303
    paid = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)
    assert paid.status == "paid" and paid.attempt_count == 2
    _status, _type, page = testing.get_page(stripe_emulator, invoice.hosted_invoice_url)
    assert "Paid on" in page
    assert "Amount paid</td><td class=num>$14.94" in page
    assert "Amount remaining</td><td class=num>$0.00" in page


def test_an_invoice_number_is_unique_per_account(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    first = stripe_client.v1.invoices.create(
        {"customer": customer, "number": "ACME-000001"}, opts
    )
    assert first.number == "ACME-000001"

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        stripe_client.v1.invoices.create(
            {"customer": customer, "number": "ACME-000001"}, opts
        )
    error = excinfo.value
    assert error.http_status == 400 and error.param == "number"
    assert error.error.type == "invalid_request_error"
    assert "ACME-000001" in error.user_message
    other = stripe_client.v1.invoices.create({"customer": customer}, opts)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.invoices.update(other.id, {"number": "ACME-000001"}, opts)
    # Saving an invoice with its own number is no conflict; a finalized invoice
    # keeps it.
    stripe_client.v1.invoices.update(first.id, {"number": "ACME-000001"}, opts)
    assert (
        stripe_client.v1.invoices.finalize_invoice(first.id, None, opts).number
        == "ACME-000001"
    )
    # Another account (the platform's own) has its own numbers.
    platform_customer = stripe_client.v1.customers.create({"email": "p@example.com"})
    on_platform = stripe_client.v1.invoices.create(
        {"customer": platform_customer.id, "number": "ACME-000001"}
    )
    assert on_platform.number == "ACME-000001"


def test_a_deleted_draft_gives_its_number_back(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    draft = stripe_client.v1.invoices.create(
        {"customer": customer, "number": "ACME-000009"}, opts
    )
    stripe_client.v1.invoices.delete(draft.id, None, opts)
    again = stripe_client.v1.invoices.create(
        {"customer": customer, "number": "ACME-000009"}, opts
    )
    assert again.number == "ACME-000009"


def test_automatic_numbers_skip_a_number_given_through_the_api(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    prefix = stripe_client.v1.customers.retrieve(customer, None, opts).invoice_prefix
    stripe_client.v1.invoices.create(
        {"customer": customer, "number": f"{prefix}-0001"}, opts
    )
    draft = stripe_client.v1.invoices.create({"customer": customer}, opts)
    assert (
        stripe_client.v1.invoices.finalize_invoice(draft.id, None, opts).number
        == f"{prefix}-0002"
    )
