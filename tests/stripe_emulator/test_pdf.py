"""The invoice PDF's text reads back as written: the fonts' WinAnsiEncoding carries
Latin-1 and the typographic marks apimon writes (– in a period, €, •, curly
quotes); the title is a UTF-16 text string."""

from __future__ import annotations

import io
from typing import Any

import pypdf

from stripe_emulator import testing
from stripe_emulator.pdf import text_pdf
from tests.fixtures.stripe import create_customer_with_card


def text_of(pdf: bytes) -> str:
    return pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def test_typographic_characters_survive_in_the_text():
    pdf = text_pdf(
        [
            ("apimon Starter plan, 31 Jan 2027 – 28 Feb 2027", 11, False),
            ("Café “Zürich” • €12.00 — 100 %", 11, True),
            ("Dvořák ő ¥", 11, False),
        ],
        title="Invoice ACME-P000002 – “Starter”",
    )
    text = text_of(pdf)
    assert "31 Jan 2027 – 28 Feb 2027" in text
    assert "Café “Zürich” • €12.00 — 100 %" in text
    # Not in WinAnsiEncoding: the closest ASCII letters, never a lost character.
    assert "Dvorák o ¥" in text
    assert "?" not in text
    title = pypdf.PdfReader(io.BytesIO(pdf)).metadata.title
    assert title == "Invoice ACME-P000002 – “Starter”"


def test_the_invoice_pdf_prints_the_en_dash_of_a_period(
    stripe_client: Any, opts: dict[str, Any], stripe_account: str, stripe_emulator: Any
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    draft = stripe_client.v1.invoices.create(
        {"customer": customer, "number": "ACME-000002"}, opts
    )
    stripe_client.v1.invoice_items.create(
        {
            "customer": customer,
            "invoice": draft.id,
            "amount": 2900,
            "description": "Gold, 31 Jan 2027 – 28 Feb 2027",
        },
        opts,
    )
    invoice = stripe_client.v1.invoices.finalize_invoice(draft.id, None, opts)

    status, content_type, pdf = testing.get_bytes(stripe_emulator, invoice.invoice_pdf)

    assert (status, content_type) == (200, "application/pdf")
    text = text_of(pdf)
    assert "Invoice ACME-000002" in text
    assert "Gold, 31 Jan 2027 – 28 Feb 2027" in text
    assert "?" not in text
