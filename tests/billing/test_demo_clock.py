"""`manage.py demo_clock`: one clock for the demo. Moving it moves apimon's now for
the billing engine (run_billing without --at, the beat job's code), the dates it
writes, and the Stripe emulator's clock; it only moves forward, and it is refused
with real Stripe and DEBUG=0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apimon import clock
from apimon.models import DemoClock
from billing.models import Invoice
from tests.billing.conftest import flat

pytestmark = pytest.mark.django_db


def run(command, *args):
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_unset_it_is_real_time():
    assert "Demo clock: real time" in run("demo_clock", "show")
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)


def test_advance_moves_apimon_and_the_emulator_and_billing_follows(
    shop, stripe, stripe_emulator
):
    started = clock.now() - timedelta(minutes=5)
    sub = shop.subscribe(shop.tier(flat("10.00")), at=started)
    run("run_billing")
    assert Invoice.objects.get().kind == "start"

    out = run("run_billing")
    sub.refresh_from_db()
    assert "0 invoices written" in out
    assert (
        f"0 invoices — the next period of {shop.org.slug} ends "
        f"{sub.next_invoice_at:%Y-%m-%d %H:%M} UTC" in out
    )

    out = run("demo_clock", "advance", "1", "month")
    assert "(real time + 3" in out  # 30 or 31 days
    assert clock.now() - started >= timedelta(days=28)
    # The emulator's clock went with it.
    assert abs(stripe_emulator.now() - clock.now().timestamp()) < 5

    # The billing job with no --at now closes the month: the renewal, dated then.
    out = run("run_billing")
    assert "1 invoices written" in out
    renewal = Invoice.objects.get(kind="renewal")
    assert renewal.created_at > started + timedelta(days=28)


def test_it_accepts_one_quoted_argument_and_calendar_months():
    clock.set_to(datetime(2027, 1, 31, 10, tzinfo=UTC))
    run("demo_clock", "advance", "1 month")
    assert clock.now() - datetime(2027, 2, 28, 10, tzinfo=UTC) < timedelta(seconds=5)
    run("demo_clock", "advance", "3", "days")
    assert clock.now() - datetime(2027, 3, 3, 10, tzinfo=UTC) < timedelta(seconds=5)


def test_set_and_reset():
    out = run("demo_clock", "set", "2027-06-01T00:00:00Z")
    assert "Demo clock: 2027-06-01 00:00:0" in out
    with pytest.raises(CommandError, match="only moves forward"):
        run("demo_clock", "set", "2027-05-01T00:00:00Z")
    out = run("demo_clock", "reset")
    assert "Demo clock: real time" in out
    assert "never goes back" in out
    assert DemoClock.objects.get().offset_seconds == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["advance", "1", "fortnight"], "'fortnight' is not a unit"),
        (["advance", "month"], "Usage: demo_clock advance"),
        (["set", "tomorrow"], "'tomorrow' is not an ISO date-time"),
    ],
)
def test_bad_input_says_what_is_expected(args, message):
    with pytest.raises(CommandError, match=message):
        run("demo_clock", *args)


def test_other_processes_see_it_within_a_second():
    """The offset lives in the database: another process (the worker, beat, the
    gateway) reads it when its copy is older than clock.TTL."""
    DemoClock.objects.create(pk=1, offset_seconds=86_400)
    assert clock.now() - datetime.now(UTC) < timedelta(seconds=1)  # its copy
    clock.forget()
    assert clock.now() - datetime.now(UTC) > timedelta(hours=23)


def test_it_is_refused_with_real_stripe_in_production(settings):
    settings.DEBUG = False
    settings.STRIPE_EMULATOR = False
    with pytest.raises(CommandError, match="only in demo mode"):
        run("demo_clock", "advance", "1", "month")
    # A row left from a demo is ignored: production keeps real time.
    DemoClock.objects.create(pk=1, offset_seconds=86_400)
    clock.forget()
    assert clock.now() - datetime.now(UTC) < timedelta(seconds=1)
    assert "only in demo mode" in run("demo_clock", "show")


def test_pages_show_the_demo_clocks_time_in_the_banner(world, client_for, settings):
    settings.STRIPE_EMULATOR = True
    client = client_for(world.subscriber)
    assert "demo clock" not in client.get("/").content.decode()
    clock.set_to(datetime(2027, 2, 1, 9, 30, tzinfo=UTC))
    assert "demo clock: 1 Feb 2027 09:30 UTC" in client.get("/").content.decode()
