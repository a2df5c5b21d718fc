"""Process stored Stripe events that are not processed yet (what the Celery task
does for each event), e.g. after the worker was down."""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from billing.models import WebhookEvent
from billing.webhooks import HandlerFailed, webhook_event_process


class Command(BaseCommand):
    help = "Run the handlers of stored Stripe events that are not processed yet."

    def handle(self, *args, **options):
        ids = list(
            WebhookEvent.objects.filter(processed_at__isnull=True)
            .order_by("received_at")
            .values_list("pk", flat=True)
        )
        failed = 0
        for pk in tqdm(ids, desc="webhooks", unit="event", disable=None):
            try:
                webhook_event_process(pk)
            except HandlerFailed as exc:
                failed += 1
                self.stderr.write(f"event {pk}: {exc}")
        self.stdout.write(f"{len(ids)} event(s), {failed} failed.")
