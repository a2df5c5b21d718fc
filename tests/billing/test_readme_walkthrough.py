"""The README's walk-through "A month later: the demo clock", run as written: its
commands are read from the README's block and run in order against a paid monthly
subscription (what the prose before it has the reader make, its first invoice
written by the beat job). A command the test cannot run, or an outcome the README
promises and the product does not give, fails it."""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from apimon import clock
from billing.engine import billing_run
from billing.models import Invoice, InvoiceStatus
from tests.billing.conftest import flat

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### A month later: the demo clock"
PREFIX = [".venv/bin/python", "manage.py"]


def walkthrough_commands() -> list[list[str]]:
    text = README.read_text()
    assert SECTION in text, "the README lost its demo clock walk-through"
    section = text.split(SECTION, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [shlex.split(line) for line in block.group(1).splitlines() if line]
    for command in commands:
        assert command[:2] == PREFIX, f"not a manage.py command: {command}"
    return [command[2:] for command in commands]


def test_the_readme_walkthrough_runs_as_written(
    shop, stripe, stripe_emulator, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    sub = shop.subscribe(
        shop.tier(flat("10.00")),
        at=clock.now() - timedelta(minutes=5),
        customer=stripe.customer(shop),
    )
    with capture(execute=True):
        billing_run(flush=False)  # the beat job: the first month's invoice
    assert Invoice.objects.get(subscription=sub).status == InvoiceStatus.PAID

    outputs = []
    for name, *args in walkthrough_commands():
        out = StringIO()
        with capture(execute=True):  # the invoices are pushed once committed
            call_command(name, *args, stdout=out, stderr=StringIO())
        outputs.append((name, args, out.getvalue()))

    billing = [out for name, _args, out in outputs if name == "run_billing"]
    shows = [out for name, args, out in outputs if args == ["show"]]
    # "The first `run_billing` writes nothing yet and says why"
    assert "0 invoices written" in billing[0]
    assert f"0 invoices — the next period of {shop.org.slug} ends" in billing[0]
    # "After `advance 1 month` it writes the renewal invoices", paid, dated then.
    assert "1 invoices written" in billing[1]
    renewal = Invoice.objects.get(subscription=sub, kind="renewal")
    assert renewal.status == InvoiceStatus.PAID
    assert renewal.created_at - sub.started_at >= timedelta(days=28)
    assert abs(stripe_emulator.now() - clock.now().timestamp()) < 60
    assert "Demo clock: real time" in shows[0]
    assert "(real time + 3" in shows[-1]
