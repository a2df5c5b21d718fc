from django.core.management.base import BaseCommand

from gateway.services import quota_alerts_send


class Command(BaseCommand):
    help = "Email subscribers at 80 % and 100 % of a quota (what beat runs)."

    def handle(self, *args, **options):
        result = quota_alerts_send()
        self.stdout.write(
            f"Checked {result.checked} subscriptions, sent {result.sent}."
        )
