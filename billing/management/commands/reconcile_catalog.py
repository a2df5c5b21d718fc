"""Reconcile the Stripe catalogs by hand: the same code as the hourly beat job."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apimon.models import Organization
from apimon.payment_errors import PaymentProviderError
from billing.reconcile import catalog_reconcile, organizations_to_reconcile


class Command(BaseCommand):
    help = "Compare the Stripe products and prices apimon created with its records."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="Only this organization (slug).")

    def handle(self, *args, org=None, **options):
        if org:
            ids = list(
                Organization.objects.filter(slug=org).values_list("pk", flat=True)
            )
            if not ids:
                raise CommandError(f"No organization {org!r}")
        else:
            ids = organizations_to_reconcile()
        drift = failed = 0
        for pk in tqdm(ids, desc="reconcile", unit="org", disable=None):
            organization = Organization.objects.get(pk=pk)
            try:
                result = catalog_reconcile(organization=organization)
            except PaymentProviderError as exc:
                failed += 1
                self.stderr.write(f"{organization.slug}: {exc}")
                continue
            drift += result.open_drift
            if result.open_drift:
                self.stdout.write(
                    f"{organization.slug}: {result.open_drift} open drift"
                )
        self.stdout.write(
            f"{len(ids)} organization(s) checked, {drift} open drift, {failed} failed."
        )
