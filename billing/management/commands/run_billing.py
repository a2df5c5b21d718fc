"""`manage.py run_billing [--at ISO-DATETIME] [--org SLUG]`: the billing job by hand.

Runs the same code as the beat job (billing.services.billing_tick): flush usage,
close due periods and write invoices, push waiting invoices, then
the dunning job. `--at` simulates "now" for the period logic, so a demo can jump a
month ahead; with the Stripe emulator (no STRIPE_SECRET_KEY) its clock is moved
forward to the same time first, so invoices, payments and retries carry that date.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from apimon import stripe_client as sc
from apimon.models import Organization
from billing import engine, services


def _parse_at(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError(
                f"--at {value!r} is not an ISO date-time (e.g. 2027-03-01T00:00Z)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # apimon's clock is UTC
    return parsed.astimezone(UTC)


def _duration(seconds: float) -> str:
    """'31.0 days', '5 hours', '4 minutes': how far the clock moved, readably."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds / size
            text = f"{count:.1f}" if unit == "day" else f"{round(count)}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return f"{round(seconds)} second{'' if round(seconds) == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Close due billing periods, write and push invoices, and block subscriptions "
        "past their grace period: what the beat job does every minute."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--at",
            help="Simulate this time (ISO 8601, UTC if no offset), e.g. a month ahead.",
        )
        parser.add_argument("--org", help="Only this organization (its slug).")
        parser.add_argument(
            "--no-emulator-clock",
            action="store_true",
            help="With --at, leave the Stripe emulator's clock alone.",
        )

    def handle(self, *args, **options):
        now = _parse_at(options["at"]) if options["at"] else None
        organization = None
        if options["org"]:
            organization = Organization.objects.filter(slug=options["org"]).first()
            if organization is None:
                raise CommandError(f"No organization with the slug {options['org']!r}.")
        if now is not None and not options["no_emulator_clock"]:
            try:
                moved = sc.advance_emulator_clock(now)
            except Exception as error:  # the emulator may simply not be running
                self.stderr.write(
                    f"Could not move the Stripe emulator's clock: {error}"
                )
            else:
                if moved:
                    self.stdout.write(
                        f"Stripe emulator clock moved {_duration(moved)} ahead."
                    )
        from django.utils import timezone

        at = now or timezone.now()
        due = engine.due_subscriptions(now=at, organization=organization).count()
        with tqdm(
            total=due, unit="subscription", desc="Billing", disable=due == 0
        ) as bar:
            result = engine.billing_run(
                now=at, organization=organization, progress=bar.update
            )
        platform = engine.platform_billing_run(now=at, organization=organization)
        pushed = services.push_sweep(now=at)
        from billing.webhooks import webhook_sweep

        requeued = webhook_sweep(now=at)
        blocked = services.dunning_run(now=at)
        self.stdout.write(
            f"Billing at {at:%Y-%m-%d %H:%M:%S} UTC: {result.steps} steps, "
            f"{result.invoices} invoices written ({len(result.invoice_ids)} to push), "
            f"{platform.invoices} platform plan invoices, "
            f"{pushed} waiting invoices pushed, "
            f"{requeued} unprocessed webhook events queued again, "
            f"{blocked} subscriptions blocked for non-payment"
            + (
                f", {result.failed} subscriptions failed (see the log)"
                if result.failed
                else ""
            )
            + "."
        )
