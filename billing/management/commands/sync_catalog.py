"""Sync the Stripe catalogs by hand: the same code as the Celery task."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apimon.models import Organization
from apimon.payment_errors import PaymentProviderError
from billing.catalog import catalog_sync
from billing.models import StripeConnection


class Command(BaseCommand):
    help = "Create, replace or archive Stripe products and prices to match apimon."

    def add_arguments(self, parser):
        parser.add_argument("--org", help="Only this organization (slug).")

    def handle(self, *args, org=None, **options):
        connections = StripeConnection.objects.filter(
            disconnected_at__isnull=True, monetization_enabled=True
        )
        if org:
            connections = connections.filter(organization__slug=org)
            if not connections.exists():
                raise CommandError(
                    f"{org!r} is not an organization with monetization on"
                )
        ids = list(connections.values_list("organization_id", flat=True))
        for pk in tqdm(ids, desc="sync", unit="org", disable=None):
            organization = Organization.objects.get(pk=pk)
            try:
                result = catalog_sync(organization=organization)
            except PaymentProviderError as exc:
                self.stderr.write(f"{organization.slug}: {exc}")
                continue
            if result.changed:
                self.stdout.write(
                    f"{organization.slug}: {len(result.created)} created, "
                    f"{len(result.reactivated)} re-activated, "
                    f"{len(result.updated)} updated, {len(result.archived)} archived"
                )
            if result.not_chargeable:
                self.stderr.write(f"{organization.slug}: {result.not_chargeable_note}")
        self.stdout.write(f"{len(ids)} organization(s) synced.")
