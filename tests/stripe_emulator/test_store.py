"""The emulator's SQLite store keeps when each object next needs automatic work."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from stripe_emulator.emulator import Emulator
from stripe_emulator.store import Store
from tests.fixtures.stripe import create_customer_with_card
from tests.stripe_emulator.test_invoices import draft_with_lines


def test_a_state_file_from_before_due_times_finds_its_due_work(
    tmp_path: Path,
) -> None:
    """A database written by an older emulator (no `due_at` column) is upgraded on
    open: its pending drafts and open sessions are found, finished ones are not."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE objects (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL "
        "UNIQUE, account TEXT NOT NULL, type TEXT NOT NULL, created INTEGER NOT NULL, "
        "data TEXT NOT NULL)"
    )
    draft = {"id": "in_draft", "object": "invoice", "status": "draft",
             "auto_advance": True, "automatically_finalizes_at": 5000}  # fmt: skip
    paid = {"id": "in_paid", "object": "invoice", "status": "paid",
            "auto_advance": False, "automatically_finalizes_at": None}  # fmt: skip
    session = {"id": "cs_open", "object": "checkout.session", "status": "open",
               "expires_at": 7000}  # fmt: skip
    for obj in (draft, paid, session):
        old.execute(
            "INSERT INTO objects (id, account, type, created, data) VALUES "
            "(?, 'acct_1', ?, 1, ?)",
            (obj["id"], obj["object"], json.dumps(obj)),
        )
    old.commit()
    old.close()

    store = Store(path)

    assert store.next_due_at() == 5000
    assert [obj["id"] for _account, _type, obj in store.due(6000)] == ["in_draft"]
    assert [obj["id"] for _account, _type, obj in store.due(7000)] == [
        "in_draft",
        "cs_open",
    ]
    store.close()


def test_work_is_due_again_only_when_a_change_schedules_it(
    stripe_client: Any,
    opts: dict[str, Any],
    stripe_account: str,
    stripe_emulator: Emulator,
) -> None:
    customer, _pm = create_customer_with_card(stripe_account)
    invoice = draft_with_lines(stripe_client, opts, customer, auto_advance=True)
    assert stripe_emulator.store.next_due_at() == invoice.created + 3600

    stripe_client.v1.invoices.update(invoice.id, {"auto_advance": False}, opts)
    assert stripe_emulator.store.next_due_at() is None
    stripe_emulator.advance(2 * 3600)
    assert stripe_client.v1.invoices.retrieve(invoice.id, None, opts).status == "draft"

    stripe_client.v1.invoices.update(invoice.id, {"auto_advance": True}, opts)
    stripe_emulator.advance(2 * 3600)
    paid = stripe_client.v1.invoices.retrieve(invoice.id, None, opts)
    assert paid.status == "paid" and stripe_emulator.store.next_due_at() is None
