"""Stripe's test cards, test PaymentMethod ids and test tokens.

From Stripe's testing docs (https://docs.stripe.com/testing). How the emulator uses
them:
- a card "declines on attach" when saving it fails (attaching to a customer, confirming
  a SetupIntent, the Checkout page) — Stripe validates the card at that point;
- a card "declines on charge" when every payment with it fails; 4000 0000 0000 0341 is
  the card that attaches fine and then fails every charge.
Card numbers that are not test cards are refused as Stripe's test mode does
(`test_mode_live_card`), and numbers failing the Luhn check are `incorrect_number`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT_FUNDS = Decline(
    "card_declined", "insufficient_funds", "Your card has insufficient funds."
)
LOST = Decline("card_declined", "lost_card", "Your card was declined.")
STOLEN = Decline("card_declined", "stolen_card", "Your card was declined.")
EXPIRED = Decline("expired_card", "expired_card", "Your card has expired.")
INCORRECT_CVC = Decline(
    "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
)
PROCESSING = Decline(
    "processing_error",
    "processing_error",
    "An error occurred while processing your card. Try again in a little bit.",
)
VELOCITY = Decline(
    "card_declined",
    "card_velocity_exceeded",
    "Your card was declined for making repeated attempts too frequently or exceeding "
    "its amount limit.",
)
FRAUDULENT = Decline("card_declined", "fraudulent", "Your card was declined.")
AUTHENTICATION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
LIVE_CARD = Decline(
    "card_declined",
    "test_mode_live_card",
    "Your card was declined. Your request was in test mode, but used a non test (live) "
    "card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
)
INCORRECT_NUMBER = Decline("incorrect_number", None, "Your card number is incorrect.")


@dataclass(frozen=True)
class TestCard:
    number: str
    brand: str
    funding: str = "credit"
    country: str = "US"
    attach_decline: Decline | None = None
    charge_decline: Decline | None = None
    pm_ids: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    note: str = ""

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(("emulator-card:" + self.number).encode()).hexdigest()
        return "".join(c for c in digest if c.isalpha())[:16].ljust(16, "X")


def _declines(decline: Decline, *, on_attach: bool) -> dict[str, Decline | None]:
    return {"attach_decline": decline if on_attach else None, "charge_decline": decline}


TEST_CARDS: tuple[TestCard, ...] = (
    TestCard(
        "4242424242424242",
        "visa",
        pm_ids=("pm_card_visa",),
        tokens=("tok_visa",),
        note="Succeeds",
    ),
    TestCard(
        "4000056655665556",
        "visa",
        "debit",
        pm_ids=("pm_card_visa_debit",),
        tokens=("tok_visa_debit",),
        note="Succeeds (debit)",
    ),
    TestCard(
        "5555555555554444",
        "mastercard",
        pm_ids=("pm_card_mastercard",),
        tokens=("tok_mastercard",),
        note="Succeeds",
    ),
    TestCard("2223003122003222", "mastercard", note="Succeeds (2-series)"),
    TestCard(
        "5200828282828210",
        "mastercard",
        "debit",
        pm_ids=("pm_card_mastercard_debit",),
        tokens=("tok_mastercard_debit",),
        note="Succeeds (debit)",
    ),
    TestCard(
        "5105105105105100",
        "mastercard",
        "prepaid",
        pm_ids=("pm_card_mastercard_prepaid",),
        tokens=("tok_mastercard_prepaid",),
        note="Succeeds (prepaid)",
    ),
    TestCard(
        "378282246310005",
        "amex",
        pm_ids=("pm_card_amex",),
        tokens=("tok_amex",),
        note="Succeeds",
    ),
    TestCard("371449635398431", "amex", note="Succeeds"),
    TestCard(
        "6011111111111117",
        "discover",
        pm_ids=("pm_card_discover",),
        tokens=("tok_discover",),
        note="Succeeds",
    ),
    TestCard("6011000990139424", "discover", note="Succeeds"),
    TestCard(
        "3056930009020004",
        "diners",
        pm_ids=("pm_card_diners",),
        tokens=("tok_diners",),
        note="Succeeds",
    ),
    TestCard("36227206271667", "diners", note="Succeeds (14 digits)"),
    TestCard(
        "3566002020360505",
        "jcb",
        pm_ids=("pm_card_jcb",),
        tokens=("tok_jcb",),
        note="Succeeds",
    ),
    TestCard(
        "6200000000000005",
        "unionpay",
        pm_ids=("pm_card_unionpay",),
        tokens=("tok_unionpay",),
        note="Succeeds",
    ),
    TestCard(
        "4000000000000077",
        "visa",
        pm_ids=("pm_card_bypassPending",),
        tokens=("tok_bypassPending",),
        note="Succeeds",
    ),
    TestCard(
        "4000000000000002",
        "visa",
        pm_ids=("pm_card_visa_chargeDeclined", "pm_card_chargeDeclined"),
        tokens=("tok_visa_chargeDeclined", "tok_chargeDeclined"),
        note="Declined on attach and charge: card_declined / generic_decline",
        **_declines(GENERIC, on_attach=True),
    ),
    TestCard(
        "4000000000009995",
        "visa",
        pm_ids=(
            "pm_card_visa_chargeDeclinedInsufficientFunds",
            "pm_card_chargeDeclinedInsufficientFunds",
        ),
        tokens=(
            "tok_visa_chargeDeclinedInsufficientFunds",
            "tok_chargeDeclinedInsufficientFunds",
        ),
        note="Attaches; every charge: card_declined / insufficient_funds",
        **_declines(INSUFFICIENT_FUNDS, on_attach=False),
    ),
    TestCard(
        "4000000000009987",
        "visa",
        pm_ids=(
            "pm_card_visa_chargeDeclinedLostCard",
            "pm_card_chargeDeclinedLostCard",
        ),
        tokens=("tok_visa_chargeDeclinedLostCard", "tok_chargeDeclinedLostCard"),
        note="Declined: card_declined / lost_card",
        **_declines(LOST, on_attach=True),
    ),
    TestCard(
        "4000000000009979",
        "visa",
        pm_ids=(
            "pm_card_visa_chargeDeclinedStolenCard",
            "pm_card_chargeDeclinedStolenCard",
        ),
        tokens=("tok_visa_chargeDeclinedStolenCard", "tok_chargeDeclinedStolenCard"),
        note="Declined: card_declined / stolen_card",
        **_declines(STOLEN, on_attach=True),
    ),
    TestCard(
        "4000000000000069",
        "visa",
        pm_ids=("pm_card_chargeDeclinedExpiredCard",),
        tokens=("tok_chargeDeclinedExpiredCard",),
        note="Declined: expired_card",
        **_declines(EXPIRED, on_attach=True),
    ),
    TestCard(
        "4000000000000127",
        "visa",
        pm_ids=("pm_card_chargeDeclinedIncorrectCvc",),
        tokens=("tok_chargeDeclinedIncorrectCvc",),
        note="Declined: incorrect_cvc",
        **_declines(INCORRECT_CVC, on_attach=True),
    ),
    TestCard(
        "4000000000000119",
        "visa",
        pm_ids=("pm_card_chargeDeclinedProcessingError",),
        tokens=("tok_chargeDeclinedProcessingError",),
        note="Declined: processing_error",
        **_declines(PROCESSING, on_attach=True),
    ),
    TestCard(
        "4000000000006975",
        "visa",
        pm_ids=("pm_card_visa_chargeDeclinedVelocityLimitExceeded",),
        tokens=("tok_visa_chargeDeclinedVelocityLimitExceeded",),
        note="Declined: card_declined / card_velocity_exceeded",
        **_declines(VELOCITY, on_attach=True),
    ),
    TestCard(
        "4100000000000019",
        "visa",
        pm_ids=("pm_card_radarBlock",),
        tokens=("tok_radarBlock",),
        note="Declined: card_declined / fraudulent",
        **_declines(FRAUDULENT, on_attach=True),
    ),
    TestCard(
        "4000000000000341",
        "visa",
        pm_ids=("pm_card_chargeCustomerFail",),
        tokens=("tok_chargeCustomerFail",),
        note="Attaches; every charge: card_declined / generic_decline",
        **_declines(GENERIC, on_attach=False),
    ),
    TestCard(
        "4000002760003184",
        "visa",
        pm_ids=("pm_card_authenticationRequired",),
        tokens=("tok_authenticationRequired",),
        note="Attaches; off-session charges fail: authentication_required",
        **_declines(AUTHENTICATION_REQUIRED, on_attach=False),
    ),
)

BY_NUMBER = {card.number: card for card in TEST_CARDS}
BY_PM_ID = {pm_id: card for card in TEST_CARDS for pm_id in card.pm_ids}
BY_TOKEN = {token: card for card in TEST_CARDS for token in card.tokens}


def luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def normalise_number(raw: str) -> str:
    return "".join(char for char in raw if not char.isspace() and char != "-")


def card_for_number(raw: str) -> TestCard | Decline:
    """The test card a typed number names, or the Decline Stripe answers it with."""
    number = normalise_number(raw)
    if not (number.isascii() and number.isdigit()):  # "²" is a digit to isdigit()
        return INCORRECT_NUMBER
    if not 12 <= len(number) <= 19 or not luhn_ok(number):
        return INCORRECT_NUMBER
    return BY_NUMBER.get(number, LIVE_CARD)


def brand_label(brand: str) -> str:
    return {
        "amex": "American Express",
        "diners": "Diners Club",
        "discover": "Discover",
        "jcb": "JCB",
        "mastercard": "Mastercard",
        "unionpay": "UnionPay",
        "visa": "Visa",
    }.get(brand, brand.title())
