"""Seed the demo (apimon/demo.py): organizations "acme" and "globex", their users,
catalogs and subscribers, and 60 days of usage and invoices.

Idempotent: running it again changes nothing that exists and prints the same logins.
"""

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apimon import demo


class Command(BaseCommand):
    help = (
        "Create (or keep) the demo organizations 'acme' and 'globex' with 60 days "
        "of history; print the logins."
    )

    def handle(self, *args, **options):
        started = time.monotonic()
        try:
            result = demo.seed()
        except ValidationError as exc:
            # e.g. the sample API on 127.0.0.1 with BACKEND_PRIVATE_NETWORKS=deny.
            raise CommandError(
                f"The demo cannot be seeded: {' '.join(exc.messages)} (its APIs point "
                "at SAMPLE_API_URL: list that network in BACKEND_ALLOWED_NETWORKS)"
            ) from exc
        seconds = time.monotonic() - started
        if result.subscriptions:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data ready: {result.subscriptions} subscriptions with "
                    f"{demo.HISTORY.days} days of usage ({result.usage_rows:,} hourly "
                    f"rows) and {result.invoices} invoices, in {seconds:.1f} s."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS("Demo data ready."))
        if result.history:
            self.stderr.write(
                self.style.WARNING(f"No Stripe history was written: {result.history}.")
            )
        self.stdout.write("  Platform operator (/admin/)")
        self.stdout.write(self._login("operator", result.operator))
        for org in result.organizations:
            self.stdout.write(
                f"  Organization: {org.organization.name} "
                f"(/t/{org.organization.slug}/), selling {org.spec.sells}"
            )
            for role, email in org.logins:
                self.stdout.write(self._login(role, email))
            if org.other_subscribers:
                self.stdout.write(
                    "    more subscribers, same password: "
                    + ", ".join(org.other_subscribers)
                )
        if result.api_key:
            self.stdout.write(
                "  API key of the subscriber's Weather dashboard (shown once): "
                f"{result.api_key}"
            )

    @staticmethod
    def _login(role: str, email: str) -> str:
        return f"    {role:<11} {email:<28} password: {demo.DEMO_PASSWORD}"
