"""`manage.py demo_clock show | advance <N> <unit> | set <ISO> | reset`: the demo's
one clock (apimon.clock), like a Stripe test clock.

Moving it moves apimon's now — the billing engine and dunning, the gateway's quota
and rate windows, the dates written and shown on pages — and the Stripe emulator's
clock with it (the emulator runs what falls due on the way: finalizations, payment
retries). Demo mode only: refused with real Stripe and DEBUG=0.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from apimon import clock
from apimon import stripe_client as sc


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _ahead(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours or not days:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if not days and not hours:
        parts = [f"{rest // 60} minute{'s' if rest // 60 != 1 else ''}"]
    return " ".join(parts)


class Command(BaseCommand):
    help = (
        "Show or move the demo clock: apimon's now for billing, the gateway's quota "
        "windows and the pages, and the Stripe emulator's clock, together."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["show", "advance", "set", "reset"])
        parser.add_argument(
            "value",
            nargs="*",
            help='advance: an amount and a unit ("1 month", "3 days"); set: an '
            "ISO date-time (UTC if it names no offset).",
        )

    def handle(self, *args, action, value, **options):
        if action != "show" and not clock.allowed():
            raise CommandError(clock.REFUSED)
        try:
            if action == "advance":
                self._advance(value)
            elif action == "set":
                if len(value) != 1:
                    raise CommandError("Usage: demo_clock set 2027-01-01T00:00:00Z")
                clock.set_to(clock.parse_iso(value[0]))
            elif action == "reset":
                if value:
                    raise CommandError("Usage: demo_clock reset")
                clock.reset()
        except clock.DemoClockRefused as error:
            raise CommandError(str(error)) from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        if action in ("advance", "set"):
            self._move_emulator()
        self._show(reset=action == "reset")

    def _advance(self, value: list[str]) -> None:
        words = " ".join(value).split()
        if len(words) != 2 or not words[0].isdigit():
            raise CommandError('Usage: demo_clock advance <N> <unit>, e.g. "1 month"')
        clock.set_to(clock.later(clock.now(), int(words[0]), words[1]))

    def _move_emulator(self) -> None:
        if not sc.emulator_dashboard_url():
            self.stdout.write(
                "Real Stripe is configured: its clock does not move with apimon's."
            )
            return
        try:
            sc.advance_emulator_clock(clock.now())
        except Exception as error:  # the emulator may simply not be running
            self.stderr.write(f"Could not move the Stripe emulator's clock: {error}")

    def _show(self, *, reset: bool) -> None:
        now = clock.now()
        ahead = clock.offset()
        if ahead:
            self.stdout.write(
                f"Demo clock: {_when(now)} (real time + {_ahead(ahead)})."
            )
            self.stdout.write(
                "Billing runs at this time within a minute (make run's beat job), "
                "or now with `manage.py run_billing`."
            )
        else:
            self.stdout.write(f"Demo clock: real time, {_when(now)}.")
        if reset and sc.emulator_dashboard_url():
            self.stdout.write(
                "The Stripe emulator's clock stays where it is: like Stripe's test "
                "clocks it never goes back."
            )
        if not clock.allowed():
            self.stdout.write(clock.REFUSED)
