"""Object ids shaped like Stripe's: a type prefix, then random base62 characters."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits

# Prefixes Stripe uses for the objects the emulator creates.
PREFIXES: dict[str, str] = {
    "account": "acct",
    "application_fee": "fee",
    "balance_transaction": "txn",
    "charge": "ch",
    "checkout.session": "cs_test",
    "customer": "cus",
    "event": "evt",
    "invoice": "in",
    "invoice_payment": "inpay",
    "invoiceitem": "ii",
    "line_item": "il",
    "oauth_code": "ac",
    "payment_intent": "pi",
    "payment_method": "pm",
    "price": "price",
    "product": "prod",
    "request": "req",
    "setup_attempt": "setatt",
    "setup_intent": "seti",
}


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(object_type: str) -> str:
    prefix = PREFIXES[object_type]
    if object_type == "checkout.session":
        # Checkout Session ids are long: cs_test_a1…
        return f"{prefix}_a1{random_token(56)}"
    if object_type in ("customer", "product"):
        return f"{prefix}_{random_token(14)}"
    if object_type == "account":
        return f"{prefix}_1{random_token(15)}"
    if object_type == "request":
        return f"{prefix}_{random_token(14)}"
    return f"{prefix}_1{random_token(23)}"


def type_for_id(object_id: str) -> str | None:
    """The object type an id names, from its prefix (longest prefix wins)."""
    best: tuple[int, str] | None = None
    for object_type, prefix in PREFIXES.items():
        if object_id.startswith(prefix + "_") and (
            best is None or len(prefix) > best[0]
        ):
            best = (len(prefix), object_type)
    return best[1] if best else None
