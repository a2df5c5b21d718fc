"""Fidelity: the objects the emulator returns have Stripe's shapes for the pinned API
version, and every field apimon reads exists in Stripe's own objects.

Stripe's published example objects (`stripe-openapi/fixtures3.json` beside this file,
from Stripe's OpenAPI repository, MIT licence) are the reference, with stripe-python's resource annotations for
the same API version as the second witness: a top-level field must be in both; a
nested field must be in Stripe's example, or — where the example leaves that nested
object empty or shows another variant — in stripe-python's nested class.
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

import pytest
import stripe
from stripe._api_version import _ApiVersion

from apimon import stripe_client as sc
from stripe_emulator import testing
from tests.fixtures.stripe import connect_account, create_customer_with_card

# The repository carries Stripe's file; STRIPE_FIXTURES checks against another copy.
FIXTURES = Path(
    os.environ.get("STRIPE_FIXTURES")
    or Path(__file__).resolve().parent / "stripe-openapi" / "fixtures3.json"
)

# Fields apimon reads from Stripe objects. Code that starts reading another field adds
# it here; the test then proves Stripe has it (dotted paths for nested fields).
APIMON_READS: dict[str, list[str]] = {
    "account": [
        "id",
        "object",
        "email",
        "country",
        "default_currency",
        "charges_enabled",
        "payouts_enabled",
        "details_submitted",
        "business_profile.name",
        "business_profile.url",
        "requirements.currently_due",
        "requirements.disabled_reason",
        "settings.dashboard.display_name",
        "type",
        "metadata",
    ],
    "account_link": ["url", "expires_at"],
    "application_fee": ["id", "account", "amount", "currency", "charge", "created"],
    "checkout.session": [
        "id",
        "url",
        "status",
        "mode",
        "customer",
        "setup_intent",
        "metadata",
        "client_reference_id",
        "expires_at",
        "success_url",
        # expanded (expand=["setup_intent.payment_method"])
        "setup_intent.status",
        "setup_intent.payment_method.id",
        "setup_intent.payment_method.card.brand",
        "setup_intent.payment_method.card.last4",
        "setup_intent.payment_method.card.exp_month",
        "setup_intent.payment_method.card.exp_year",
        # what the Checkout page tells about charges (sent by apimon)
        "custom_text.submit",
    ],
    "customer": [
        "id",
        "email",
        "name",
        "metadata",
        "invoice_settings.default_payment_method",
        "delinquent",
        "balance",
        "livemode",
    ],
    "event": [
        "id",
        "type",
        "created",
        "api_version",
        "data.object",
        "data.previous_attributes",
        "account",
        "livemode",
    ],
    "invoice": [
        "id",
        "object",
        "status",
        "number",
        "customer",
        "currency",
        "total",
        "subtotal",
        "amount_due",
        "amount_paid",
        "amount_remaining",
        "attempt_count",
        "attempted",
        "next_payment_attempt",
        "hosted_invoice_url",
        "invoice_pdf",
        "metadata",
        "auto_advance",
        "collection_method",
        "default_payment_method",
        "due_date",
        "status_transitions.finalized_at",
        "status_transitions.paid_at",
        "status_transitions.voided_at",
        "status_transitions.marked_uncollectible_at",
        "lines",
        "period_start",
        "period_end",
        "created",
        "effective_at",
        "automatically_finalizes_at",
        "parent",
        "last_finalization_error",
        "last_finalization_error.message",
    ],
    "invoiceitem": [
        "id",
        "amount",
        "currency",
        "customer",
        "invoice",
        "description",
        "quantity",
        "metadata",
        "period.start",
        "period.end",
        "pricing.unit_amount_decimal",
    ],
    "line_item": [
        "id",
        "amount",
        "description",
        "quantity",
        "period.start",
        "period.end",
        "metadata",
        "pricing.unit_amount_decimal",
        "parent.type",
    ],
    "payment_method": [
        "id",
        "type",
        "customer",
        "card.brand",
        "card.last4",
        "card.exp_month",
        "card.exp_year",
    ],
    "price": [
        "id",
        "active",
        "currency",
        "product",
        "unit_amount",
        "unit_amount_decimal",
        "recurring.interval",
        "recurring.interval_count",
        "recurring.usage_type",
        "recurring.trial_period_days",
        "billing_scheme",
        "tiers_mode",
        "tiers",
        "tiers.up_to",
        "tiers.flat_amount",
        "tiers.flat_amount_decimal",
        "tiers.unit_amount_decimal",
        "type",
        "metadata",
        "lookup_key",
        "nickname",
    ],
    "product": ["id", "name", "active", "description", "metadata", "default_price"],
    # What retrieving a deleted Product or Price answers (billing.reconcile).
    "deleted_product": ["id", "deleted"],
    "deleted_price": ["id", "deleted"],
    "setup_intent": [
        "id",
        "status",
        "customer",
        "payment_method",
        "last_setup_error",
        "metadata",
    ],
}

# Top-level fields the emulator emits that stripe-python has for the pinned version but
# Stripe's example object happens not to show.
FIXTURE_GAPS = {
    ("event", "account"): "set on Connect events; the example is a platform event",
}

CLASSES: dict[str, type] = {
    "account": stripe.Account,
    "account_link": stripe.AccountLink,
    "application": stripe.Application,
    "application_fee": stripe.ApplicationFee,
    "balance_transaction": stripe.BalanceTransaction,
    "charge": stripe.Charge,
    "checkout.session": stripe.checkout.Session,
    "customer": stripe.Customer,
    "event": stripe.Event,
    "invoice": stripe.Invoice,
    "invoice_payment": stripe.InvoicePayment,
    "invoiceitem": stripe.InvoiceItem,
    "line_item": stripe.InvoiceLineItem,
    "payment_intent": stripe.PaymentIntent,
    "payment_method": stripe.PaymentMethod,
    "price": stripe.Price,
    "product": stripe.Product,
    "setup_attempt": stripe.SetupAttempt,
    "setup_intent": stripe.SetupIntent,
}


@pytest.fixture(scope="module")
def stripe_examples() -> dict[str, Any]:
    # A missing file is a broken checkout or a wrong STRIPE_FIXTURES, never a skip.
    assert FIXTURES.is_file(), f"Stripe's example objects are not at {FIXTURES}"
    return json.loads(FIXTURES.read_text())["resources"]


# --- Shape comparison -----------------------------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _annotations(cls: type | None) -> dict[str, Any]:
    if cls is None:
        return {}
    merged: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        merged.update(getattr(klass, "__annotations__", {}))
    return merged


def _nullable(annotation: Any) -> bool:
    return annotation is not None and type(None) in typing.get_args(annotation)


def _nested_class(annotation: Any) -> type | None:
    """The StripeObject subclass a field holds (through Optional / List / Union)."""
    if isinstance(annotation, type) and issubclass(annotation, stripe.StripeObject):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested_class(arg)
        if found is not None:
            return found
    return None


def check_shape(
    obj: dict[str, Any],
    example: dict[str, Any] | None,
    cls: type | None,
    where: str,
    examples: dict[str, Any],
    problems: list[str],
    *,
    top: str | None = None,
) -> None:
    annotations = _annotations(cls)
    for key, value in obj.items():
        path = f"{where}.{key}"
        annotation = annotations.get(key)
        if top is not None:
            if key not in annotations:
                problems.append(
                    f"{path}: not a field of {cls.__name__} in the pinned version"
                )
                continue
            if key not in (example or {}) and (top, key) not in FIXTURE_GAPS:
                problems.append(f"{path}: not in Stripe's example {top}")
                continue
        elif key not in (example or {}) and key not in annotations:
            problems.append(f"{path}: neither in Stripe's example nor in stripe-python")
            continue
        expected = (example or {}).get(key, None)
        known_in_example = key in (example or {})
        if value is None:
            if known_in_example and expected is not None and not _nullable(annotation):
                problems.append(
                    f"{path}: null, but Stripe's is {_json_type(expected)} and "
                    "not nullable"
                )
            continue
        if (
            known_in_example
            and expected is not None
            and _json_type(value) != _json_type(expected)
        ):
            problems.append(
                f"{path}: {_json_type(value)}, Stripe's is {_json_type(expected)}"
            )
            continue
        # metadata is free-form; previous_attributes holds a partial object
        if key in ("metadata", "previous_attributes") or not isinstance(
            value, dict | list
        ):
            continue
        check_nested(
            value,
            expected if known_in_example else None,
            annotation,
            path,
            examples,
            problems,
        )


def check_nested(
    value: Any,
    expected: Any,
    annotation: Any,
    path: str,
    examples: dict[str, Any],
    problems: list[str],
) -> None:
    if isinstance(value, list):
        sample = expected[0] if isinstance(expected, list) and expected else None
        for index, item in enumerate(value):
            if isinstance(item, dict):
                check_nested(
                    item, sample, annotation, f"{path}[{index}]", examples, problems
                )
        return
    kind = value.get("object")
    if kind == "list":
        for index, item in enumerate(value["data"]):
            check_object(item, examples, problems, f"{path}.data[{index}]")
        return
    if isinstance(kind, str) and kind in examples and kind in CLASSES:
        check_object(value, examples, problems, path)
        return
    example = expected if isinstance(expected, dict) and expected else None
    check_shape(value, example, _nested_class(annotation), path, examples, problems)


def check_object(
    obj: dict[str, Any],
    examples: dict[str, Any],
    problems: list[str],
    where: str | None = None,
) -> None:
    kind = obj["object"]
    check_shape(
        obj, examples[kind], CLASSES[kind], where or kind, examples, problems, top=kind
    )


def missing_fields(obj: dict[str, Any], examples: dict[str, Any]) -> set[str]:
    """Fields Stripe's example (and the pinned version) has that the emulator omits."""
    kind = obj["object"]
    expected = set(examples[kind]) & set(_annotations(CLASSES[kind]))
    return expected - set(obj)


def field_exists(kind: str, dotted: str, examples: dict[str, Any]) -> bool:
    example: Any = examples[kind]
    # deleted_* objects have no class of their own: Stripe's example alone decides.
    cls: type | None = CLASSES.get(kind)
    for part in dotted.split("."):
        annotation = _annotations(cls).get(part)
        in_example = isinstance(example, dict) and part in example
        if not in_example and annotation is None:
            return False
        example = example[part] if in_example else None
        cls = _nested_class(annotation)
        expanded = _expandable_kind(annotation)
        if cls is None and expanded is not None:
            # An expandable field (an id, or the object when expanded): go on in
            # Stripe's example of that object.
            cls = CLASSES[expanded]
            example = example if isinstance(example, dict) else examples[expanded]
    return True


def _expandable_kind(annotation: Any) -> str | None:
    """The object type an expandable field (`Union[str, "SetupIntent"]`) expands to,
    when it is one of CLASSES."""
    names = {
        arg.__forward_arg__
        for arg in typing.get_args(annotation)
        if isinstance(arg, typing.ForwardRef)
    }
    for kind, klass in CLASSES.items():
        if klass.__name__ in names:
            return kind
    return None


# --- A scenario that makes one of everything ------------------------------------------


def raw(path: str, account: str | None = None, **params: Any) -> dict[str, Any]:
    """The exact JSON the emulator answers (stripe-python would turn decimals into
    Decimal objects)."""
    if account:
        params["stripe_account"] = account
    return sc.get_client().raw_request("get", path, **params).data


@pytest.fixture(scope="module")
def emitted() -> dict[str, list[dict[str, Any]]]:
    from stripe_emulator.inprocess import reset_inprocess_emulator

    sc.reset_for_tests()
    emulator = reset_inprocess_emulator()
    client = sc.get_client()
    acct = connect_account(emulator)
    options = sc.request_options(account=acct)
    customer_id, pm_id = create_customer_with_card(acct, name="Jenny Rosen")
    product = client.v1.products.create({"name": "Weather API"}, options)
    client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount_decimal": "0.0004",
            "recurring": {"interval": "month"},
        },
        options,
    )
    one_time = client.v1.prices.create(
        {"currency": "usd", "product": product.id, "unit_amount": 2500}, options
    )
    client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [
                {"up_to": 1000, "unit_amount": 0},
                {"up_to": "inf", "unit_amount_decimal": "0.5"},
            ],
        },
        options,
    )
    invoice = client.v1.invoices.create(
        {"customer": customer_id, "application_fee_amount": 100, "auto_advance": True},
        options,
    )
    client.v1.invoice_items.create(
        {
            "customer": customer_id,
            "invoice": invoice.id,
            "pricing": {"price": one_time.id},
        },
        options,
    )
    client.v1.invoice_items.create(
        {
            "customer": customer_id,
            "invoice": invoice.id,
            "quantity": 1200,
            "unit_amount_decimal": "0.0004",
            "period": {"start": 1, "end": 2},
        },
        options,
    )
    draft = client.v1.invoices.create({"customer": customer_id}, options)
    client.v1.invoice_items.create({"customer": customer_id, "amount": 700}, options)
    client.v1.invoices.pay(invoice.id, None, options)
    session = client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "currency": "usd",
            "customer": customer_id,
            "success_url": "http://testserver/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://testserver/cancel",
        },
        options,
    )
    open_session = client.v1.checkout.sessions.create(
        {"mode": "setup", "currency": "usd", "success_url": "http://testserver/ok"},
        options,
    )
    testing.submit_card(emulator, session.url, "4242 4242 4242 4242")
    link = client.v1.account_links.create(
        {
            "account": acct,
            "type": "account_onboarding",
            "refresh_url": "http://testserver/r",
            "return_url": "http://testserver/d",
        }
    )
    sc.oauth_deauthorize(connect_account(emulator, email="gone@example.com"))

    fee = raw("/v1/application_fees")["data"][0]
    charges = raw("/v1/charges", acct)["data"]
    seti_id = raw(f"/v1/checkout/sessions/{session.id}", acct)["setup_intent"]
    seti = raw(f"/v1/setup_intents/{seti_id}", acct, expand=["latest_attempt"])
    objects: dict[str, list[dict[str, Any]]] = {
        "account": [raw(f"/v1/accounts/{acct}"), raw("/v1/account")],
        "account_link": [dict(link.to_dict())],
        "application_fee": [fee],
        "balance_transaction": raw("/v1/balance_transactions", acct)["data"]
        + raw("/v1/balance_transactions")["data"],
        "charge": charges,
        "checkout.session": [
            raw(f"/v1/checkout/sessions/{session.id}", acct),
            raw(f"/v1/checkout/sessions/{open_session.id}", acct),
        ],
        "customer": [raw(f"/v1/customers/{customer_id}", acct)],
        "event": raw("/v1/events", acct, limit=100)["data"]
        + raw("/v1/events", limit=100)["data"],
        "invoice": [
            raw(f"/v1/invoices/{invoice.id}", acct),
            raw(f"/v1/invoices/{draft.id}", acct),
        ],
        "invoice_payment": raw("/v1/invoice_payments", acct)["data"],
        "invoiceitem": raw("/v1/invoiceitems", acct)["data"],
        "line_item": raw(f"/v1/invoices/{invoice.id}/lines", acct)["data"],
        "payment_intent": raw("/v1/payment_intents", acct)["data"],
        "payment_method": [raw(f"/v1/payment_methods/{pm_id}", acct)],
        "price": raw("/v1/prices", acct)["data"],
        "product": [raw(f"/v1/products/{product.id}", acct)],
        "setup_attempt": [seti["latest_attempt"]],
        "setup_intent": [{**seti, "latest_attempt": seti["latest_attempt"]["id"]}],
    }
    sc.reset_for_tests()
    return objects


def test_the_seam_pins_the_api_version_of_the_pinned_stripe_python() -> None:
    assert sc.API_VERSION == _ApiVersion.CURRENT
    assert sc.get_client()._requestor._options.stripe_version == sc.API_VERSION


@pytest.mark.parametrize("kind", sorted(CLASSES.keys() - {"application"}))
def test_every_emitted_field_exists_in_stripes_object_with_the_same_type(
    kind: str, emitted: dict[str, list[dict[str, Any]]], stripe_examples: dict[str, Any]
) -> None:
    assert emitted[kind], f"the scenario produced no {kind}"
    problems: list[str] = []
    for obj in emitted[kind]:
        assert obj["object"] == kind
        check_object(obj, stripe_examples, problems)
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("kind", sorted(CLASSES.keys() - {"application"}))
def test_the_emulator_emits_every_field_stripe_does(
    kind: str, emitted: dict[str, list[dict[str, Any]]], stripe_examples: dict[str, Any]
) -> None:
    missing = set().union(
        *(missing_fields(obj, stripe_examples) for obj in emitted[kind])
    )
    assert not missing, f"{kind} lacks {sorted(missing)}"


@pytest.mark.parametrize("kind", sorted(APIMON_READS))
def test_every_field_apimon_reads_exists_in_stripes_object(
    kind: str, stripe_examples: dict[str, Any]
) -> None:
    unknown = [
        path
        for path in APIMON_READS[kind]
        if not field_exists(kind, path, stripe_examples)
    ]
    assert not unknown, f"apimon reads {kind} fields Stripe does not have: {unknown}"


def test_todays_invoice_has_parent_and_lines_and_no_top_level_subscription(
    emitted: dict[str, list[dict[str, Any]]],
) -> None:
    invoice = emitted["invoice"][0]
    assert "parent" in invoice and invoice["lines"]["object"] == "list"
    assert "subscription" not in invoice
    assert "charge" not in invoice and "payment_intent" not in invoice


def test_the_checker_catches_a_wrong_type_and_an_invented_field(
    stripe_examples: dict[str, Any],
) -> None:
    problems: list[str] = []
    check_object(
        {"object": "customer", "id": "cus_1", "balance": "0", "made_up": 1},
        stripe_examples,
        problems,
    )
    assert any("balance" in p for p in problems)
    assert any("made_up" in p for p in problems)
