"""`manage.py run_billing [--at ISO-DATETIME] [--org SLUG]`: the billing job by hand.

Runs the same code as the beat job (billing.services.billing_tick): flush usage,
close due periods and write invoices, push waiting invoices, then
the dunning job, at apimon's now (the demo clock's, `manage.py demo_clock`).
`--at` simulates another "now" for this run only; with the Stripe emulator its
clock is moved forward to the same time first. When it writes nothing it says, per
organization, when the next period ends.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apimon import clock
from apimon import stripe_client as sc
from apimon.models import Organization
from billing import engine, services
from store.models import Subscription


def _parse_at(value: str) -> datetime:
    try:
        return clock.parse_iso(value)
    except ValueError as error:
        raise CommandError(f"--at {error}") from None


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

        at = now or clock.now()
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
        if not result.invoices and not platform.invoices:
            for line in _next_period_ends(organization, at):
                self.stdout.write(line)


NEXT_LISTED = 20  # organizations named when nothing was written


def _next_period_ends(organization: Organization | None, at: datetime) -> list[str]:
    """Why nothing was written: per organization, when the first of its periods
    ends (and its invoice can be written, once usage has settled)."""
    subs = (
        Subscription.objects.filter(next_invoice_at__isnull=False)
        .select_related("organization", "application", "api")
        .order_by("next_invoice_at", "pk")
    )
    if organization is not None:
        subs = subs.filter(organization=organization)
    first: dict[int, Subscription] = {}
    for sub in subs.iterator():
        first.setdefault(sub.organization_id, sub)
        if len(first) >= NEXT_LISTED:
            break
    if not first:
        return ["0 invoices — no subscription has a period to close."]
    settle = engine.settle_delay()
    lines = []
    for sub in first.values():
        ends = sub.next_invoice_at
        lines.append(
            f"0 invoices — the next period of {sub.organization.slug} ends "
            f"{ends:%Y-%m-%d %H:%M} UTC ({sub.application.name} → {sub.api.name}); "
            f"`manage.py demo_clock set {ends + settle:%Y-%m-%dT%H:%M:%SZ}` "
            "moves the demo there."
        )
    return lines
