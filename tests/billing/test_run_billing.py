"""`manage.py run_billing`: the beat job's code by hand, with --at and --org."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.models import Invoice
from tests.billing.conftest import add_usage, flat, make_shop, per_unit, utc

pytestmark = pytest.mark.django_db


def run_billing(*args):
    out, err = StringIO(), StringIO()
    call_command("run_billing", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_jumps_a_month_ahead_and_writes_the_invoices(shop, stripe_emulator):
    sub = shop.subscribe(shop.tier(per_unit("0.01")), at=utc(2027, 1, 1))
    add_usage(sub, utc(2027, 1, 2), 250)
    before = stripe_emulator.now()

    out, _err = run_billing("--at", "2027-02-01T00:01:00Z")

    invoice = Invoice.objects.get()
    assert (invoice.kind, invoice.total_minor) == ("renewal", 250)
    assert "1 invoices written" in out
    assert "Billing at 2027-02-01 00:01:00 UTC" in out
    # The emulator's clock followed, so Stripe dates the invoice in February.
    assert stripe_emulator.now() >= utc(2027, 2, 1, 0, 1).timestamp() > before
    assert "Stripe emulator clock moved" in out and "days ahead." in out

    # A few minutes further: said in minutes, not "0.0 days".
    out, _err = run_billing("--at", "2027-02-01T00:06:00Z")
    assert "Stripe emulator clock moved 5 minutes ahead." in out


def test_without_at_it_bills_what_is_due_now(shop):
    from datetime import timedelta

    from django.utils import timezone

    started = timezone.now() - timedelta(hours=1)
    shop.subscribe(shop.tier(flat("10.00")), at=started)

    out, _err = run_billing("--no-emulator-clock")

    assert "1 invoices written" in out
    assert Invoice.objects.get().kind == "start"


def test_org_limits_the_run_to_one_organization(shop, world):
    other = make_shop(world.other_org, world.outsider)
    shop.subscribe(shop.tier(flat("10.00")), at=utc(2027, 1, 1))
    other.subscribe(other.tier(flat("10.00")), at=utc(2027, 1, 1))

    run_billing("--at", "2027-01-01T00:05Z", "--org", "globex", "--no-emulator-clock")

    assert list(Invoice.objects.values_list("organization__slug", flat=True)) == [
        "globex"
    ]
    assert Invoice.objects.get().number == "GLOBEX-000001"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "nope"], "No organization with the slug 'nope'"),
        (["--at", "next tuesday"], "is not an ISO date-time"),
    ],
)
def test_bad_arguments_are_explained(db, args, message):
    with pytest.raises(CommandError, match=message):
        run_billing(*args)


def test_it_queues_again_webhook_events_whose_task_was_lost():
    """By hand as by beat: an event still unprocessed two minutes after it arrived
    (its task died with a worker) is processed by the run."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import WebhookEvent, WebhookStatus

    lost = WebhookEvent.objects.create(
        event_id="evt_lost_by_hand",
        type="customer.created",  # no handler: processing marks it IGNORED
        payload={"id": "evt_lost_by_hand", "type": "customer.created", "data": {}},
        received_at=timezone.now() - timedelta(minutes=3),
    )

    out, _err = run_billing("--no-emulator-clock")

    assert "1 unprocessed webhook events queued again" in out
    lost.refresh_from_db()
    assert lost.status == WebhookStatus.IGNORED and lost.processed_at is not None
