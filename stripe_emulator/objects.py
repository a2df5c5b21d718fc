"""The shapes of the objects the emulator returns, for the pinned API version.

Each builder returns every field Stripe's own example object has for that type (see
tests/stripe_emulator/test_contract.py, which checks them against Stripe's published
fixtures and stripe-python's annotations). Keys starting with "_" are the emulator's
private bookkeeping and never leave it (see `public`).
"""

from __future__ import annotations

import copy
from typing import Any

from stripe_emulator.cards import TestCard

# Countries offered on the emulator's account pages, with their default currency.
# IR is there on purpose: an account that cannot take payments or receive payouts.
COUNTRIES: dict[str, tuple[str, str]] = {
    "US": ("United States", "usd"),
    "GB": ("United Kingdom", "gbp"),
    "DE": ("Germany", "eur"),
    "FR": ("France", "eur"),
    "NL": ("Netherlands", "eur"),
    "IE": ("Ireland", "eur"),
    "CA": ("Canada", "cad"),
    "AU": ("Australia", "aud"),
    "JP": ("Japan", "jpy"),
    "SG": ("Singapore", "sgd"),
    "BR": ("Brazil", "brl"),
    "IR": ("Iran", "usd"),
}
UNSUPPORTED_COUNTRIES = frozenset({"IR"})

ONBOARDING_REQUIREMENTS = [
    "business_profile.product_description",
    "business_profile.url",
    "external_account",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API shows it: without the emulator's private keys."""
    return {
        key: copy.deepcopy(value)
        for key, value in obj.items()
        if not key.startswith("_")
    }


def empty_list(url: str) -> dict[str, Any]:
    return {"object": "list", "data": [], "has_more": False, "url": url}


def _address(values: dict[str, Any] | None = None) -> dict[str, Any]:
    values = values or {}
    return {
        key: values.get(key)
        for key in ("city", "country", "line1", "line2", "postal_code", "state")
    }


def address_or_none(values: Any) -> dict[str, Any] | None:
    return _address(values) if isinstance(values, dict) and values else None


# --- Accounts -------------------------------------------------------------------------


def account(
    *,
    id: str,
    created: int,
    email: str | None,
    business_name: str | None,
    country: str,
    type: str = "standard",
    url: str | None = None,
    product_description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "name": business_name,
            "product_description": product_description,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": url,
        },
        "business_type": None,
        "capabilities": {"card_payments": "inactive", "transfers": "inactive"},
        "charges_enabled": False,
        "controller": {"type": "account" if type == "standard" else "application"},
        "country": country,
        "created": created,
        "default_currency": COUNTRIES.get(country, ("", "usd"))[1],
        "details_submitted": False,
        "email": email,
        "external_accounts": empty_list(f"/v1/accounts/{id}/external_accounts"),
        "future_requirements": _requirements([], None),
        "metadata": metadata or {},
        "payouts_enabled": False,
        "requirements": _requirements(ONBOARDING_REQUIREMENTS, "requirements.past_due"),
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "dashboard": {"display_name": business_name, "timezone": "Etc/UTC"},
            "invoices": {
                "default_account_tax_ids": None,
                "hosted_payment_method_save": None,
            },
            "payments": {
                "statement_descriptor": None,
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": type,
    }


def _requirements(due: list[str], disabled_reason: str | None) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def complete_onboarding(acct: dict[str, Any], *, now: int, ip: str | None) -> None:
    """Details submitted: the account can charge, unless its country is unsupported."""
    supported = acct["country"] not in UNSUPPORTED_COUNTRIES
    acct["details_submitted"] = True
    acct["charges_enabled"] = supported
    acct["payouts_enabled"] = supported
    acct["capabilities"] = {
        "card_payments": "active" if supported else "inactive",
        "transfers": "active" if supported else "inactive",
    }
    acct["tos_acceptance"] = {"date": now, "ip": ip, "user_agent": None}
    if supported:
        acct["requirements"] = _requirements([], None)
    else:
        acct["requirements"] = _requirements([], "rejected.other")
        acct["requirements"]["errors"] = [
            {
                "code": "unsupported_business_type",
                "reason": "Stripe does not support accounts in this country.",
                "requirement": "country",
            }
        ]


def application(client_id: str, name: str) -> dict[str, Any]:
    return {"id": client_id, "object": "application", "name": name}


# --- Customers and payment methods ----------------------------------------------------


def customer(*, id: str, created: int, invoice_prefix: str) -> dict[str, Any]:
    return {
        "id": id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


_DISPLAY_BRANDS = {"amex": "american_express", "diners": "diners_club"}


def card_details(card: TestCard, exp_month: int, exp_year: int) -> dict[str, Any]:
    return {
        "brand": card.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": card.country,
        "display_brand": _DISPLAY_BRANDS.get(card.brand, card.brand),
        "exp_month": exp_month,
        "exp_year": exp_year,
        "fingerprint": card.fingerprint,
        "funding": card.funding,
        "generated_from": None,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def payment_method(
    *,
    id: str,
    created: int,
    card: TestCard,
    exp_month: int,
    exp_year: int,
    name: str | None = None,
    email: str | None = None,
    metadata: dict[str, str] | None = None,
    allow_redisplay: str = "unspecified",
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "payment_method",
        "allow_redisplay": allow_redisplay,
        "billing_details": {
            "address": _address(),
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        "card": card_details(card, exp_month, exp_year),
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": metadata or {},
        "type": "card",
        # Which test card this is, so charges know how to behave.
        "_card_number": card.number,
    }


def setup_intent(
    *,
    id: str,
    created: int,
    client_secret: str,
    customer: str | None,
    application: str | None,
    usage: str = "off_session",
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "setup_intent",
        "application": application,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": client_secret,
        "created": created,
        "customer": customer,
        "description": description,
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": metadata or {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": usage,
    }


def setup_attempt(
    *, id: str, created: int, intent: dict[str, Any], pm: dict[str, Any], error: Any
) -> dict[str, Any]:
    card = pm["card"]
    return {
        "id": id,
        "object": "setup_attempt",
        "application": intent["application"],
        "created": created,
        "customer": intent["customer"],
        "customer_account": None,
        "flow_directions": None,
        "livemode": False,
        "on_behalf_of": None,
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "brand": card["brand"],
                "checks": card["checks"],
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "fingerprint": card["fingerprint"],
                "funding": card["funding"],
                "last4": card["last4"],
                "network": card["brand"],
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "setup_error": error,
        "setup_intent": intent["id"],
        "status": "failed" if error else "succeeded",
        "usage": intent["usage"],
    }


# Checkout's custom text slots (`custom_text[<slot>][message]`).
CUSTOM_TEXT_FIELDS = (
    "after_submit",
    "shipping_address",
    "submit",
    "terms_of_service_acceptance",
)


def checkout_session(
    *,
    id: str,
    created: int,
    expires_at: int,
    url: str,
    params: dict[str, Any],
    customer: str | None,
    customer_email: str | None,
    setup_intent: str,
    currency: str | None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "billing_address_collection": params.get("billing_address_collection"),
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            name: ({"message": text["message"]} if text else None)
            for name in CUSTOM_TEXT_FIELDS
            for text in [(params.get("custom_text") or {}).get(name)]
        },
        "customer": customer,
        "customer_account": None,
        "customer_creation": params.get("customer_creation"),
        "customer_details": None,
        "customer_email": customer_email,
        "discounts": None,
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": params.get("locale"),
        "managed_payments": None,
        "metadata": params.get("metadata") or {},
        "mode": "setup",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "no_payment_required",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": setup_intent,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": params.get("success_url"),
        "total_details": None,
        "ui_mode": params.get("ui_mode", "hosted"),
        "url": url,
        "wallet_options": None,
    }


# --- Catalog --------------------------------------------------------------------------


def product(*, id: str, created: int, name: str) -> dict[str, Any]:
    return {
        "id": id,
        "object": "product",
        "active": True,
        "created": created,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price(*, id: str, created: int, currency: str, product: str) -> dict[str, Any]:
    return {
        "id": id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product,
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": None,
        "unit_amount_decimal": None,
    }


# --- Invoicing ------------------------------------------------------------------------


def invoice_item(
    *, id: str, created: int, customer: str, currency: str
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "invoiceitem",
        "amount": 0,
        "currency": currency,
        "customer": customer,
        "customer_account": None,
        "date": created,
        "description": None,
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": 0,
        "parent": None,
        "period": {"end": created, "start": created},
        "pricing": None,
        "proration": False,
        "quantity": 1,
        "quantity_decimal": "1",
        "tax_rates": [],
        "test_clock": None,
    }


def line_item_for(item: dict[str, Any]) -> dict[str, Any]:
    """The invoice line Stripe shows for a (one-off) invoice item."""
    return {
        "id": item["_line_id"],
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": item["invoice"],
        "livemode": False,
        "metadata": dict(item["metadata"]),
        "parent": {
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": item["proration"],
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        },
        "period": dict(item["period"]),
        "pretax_credit_amounts": [],
        "pricing": copy.deepcopy(item["pricing"]),
        "quantity": item["quantity"],
        "quantity_decimal": item["quantity_decimal"],
        "subscription": None,
        "subtotal": item["amount"],
        "taxes": [],
    }


def invoice(
    *,
    id: str,
    created: int,
    customer: dict[str, Any],
    currency: str,
    account_country: str,
    account_name: str | None,
    application: str | None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "invoice",
        "account_country": account_country,
        "account_name": account_name,
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": application,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer["address"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"],
        "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": empty_list(f"/v1/invoices/{id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": created,
        "period_start": created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


# --- Payments -------------------------------------------------------------------------


def payment_intent(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    customer: str | None,
    description: str | None,
    application: str | None,
    application_fee_amount: int | None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": application,
        "application_fee_amount": application_fee_amount,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{id}_secret_{id[-12:]}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": customer,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(
    *,
    id: str,
    created: int,
    intent: dict[str, Any],
    pm: dict[str, Any],
    receipt_url: str,
) -> dict[str, Any]:
    card = pm["card"]
    return {
        "id": id,
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "application": intent["application"],
        "application_fee": None,
        "application_fee_amount": intent["application_fee_amount"],
        "balance_transaction": None,
        "billing_details": copy.deepcopy(pm["billing_details"]),
        "calculated_statement_descriptor": None,
        "captured": False,
        "created": created,
        "currency": intent["currency"],
        "customer": intent["customer"],
        "description": intent["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": None,
        "paid": False,
        "payment_intent": intent["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": None,
                "authorization_code": None,
                "brand": card["brand"],
                "checks": card["checks"],
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": card["fingerprint"],
                "funding": card["funding"],
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": card["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card["brand"],
                "network_token": {"used": False},
                "network_transaction_id": None,
                "overcapture": {
                    "maximum_amount_capturable": intent["amount"],
                    "status": "unavailable",
                },
                "regulated_status": "unregulated",
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": receipt_url,
        "refunded": False,
        "refunds": empty_list(f"/v1/charges/{id}/refunds"),
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "pending",
        "transfer_data": None,
        "transfer_group": None,
    }


def balance_transaction(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    source: str,
    type: str,
    fee_details: list[dict[str, Any]],
    description: str | None,
    available_on: int,
) -> dict[str, Any]:
    fee = sum(detail["amount"] for detail in fee_details)
    return {
        "id": id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": available_on,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": "charge" if type == "charge" else "fee",
        "source": source,
        "status": "pending",
        "type": type,
    }


def application_fee(
    *,
    id: str,
    created: int,
    account: str,
    amount: int,
    currency: str,
    application: str,
    charge: str,
    balance_transaction: str,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "application_fee",
        "account": account,
        "amount": amount,
        "amount_refunded": 0,
        "application": application,
        "balance_transaction": balance_transaction,
        "charge": charge,
        "created": created,
        "currency": currency,
        "fee_source": {"charge": charge, "type": "charge"},
        "livemode": False,
        "originating_transaction": None,
        "refunded": False,
        "refunds": empty_list(f"/v1/application_fees/{id}/refunds"),
    }


def invoice_payment(
    *, id: str, created: int, invoice: dict[str, Any], intent: str, amount: int
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": amount,
        "created": created,
        "currency": invoice["currency"],
        "invoice": invoice["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": intent, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }
