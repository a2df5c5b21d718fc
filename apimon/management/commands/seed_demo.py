"""Seed the demo: organization "acme" with an owner, a publisher and a subscriber.

Idempotent: running it again changes nothing that exists and prints the same logins.
Later parts of apimon add their demo data in `apimon/demo.py`.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apimon import demo


class Command(BaseCommand):
    help = "Create (or keep) the demo organization 'acme' and its users; print logins."

    def handle(self, *args, **options):
        try:
            result = demo.seed()
        except ValidationError as exc:
            # e.g. the sample API on 127.0.0.1 with BACKEND_PRIVATE_NETWORKS=deny.
            raise CommandError(
                f"The demo cannot be seeded: {' '.join(exc.messages)} (its APIs point "
                "at SAMPLE_API_URL: list that network in BACKEND_ALLOWED_NETWORKS)"
            ) from exc
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(
            f"  Organization: {result.organization.name} (/t/{result.organization.slug}/)"
        )
        for role, email in result.logins:
            self.stdout.write(
                f"  {role:<11} {email:<26} password: {demo.DEMO_PASSWORD}"
            )
        if result.api_key:
            self.stdout.write(
                f"  API key of the subscriber's Weather dashboard (shown once): "
                f"{result.api_key}"
            )
