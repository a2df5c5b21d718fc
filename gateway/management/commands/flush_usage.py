from django.core.management.base import BaseCommand

from gateway.redis import uses_stand_in
from gateway.services import usage_flush


class Command(BaseCommand):
    help = "Flush the gateway's Redis usage counters into UsageRecord (what beat runs)."

    def handle(self, *args, **options):
        if uses_stand_in():
            self.stderr.write(
                "No REDIS_URL: the counters live inside the web process, which "
                "flushes them itself; this process has none to flush."
            )
        result = usage_flush()
        self.stdout.write(
            f"Flushed {result.requests} requests ({result.batches} batches, "
            f"{result.rows} usage rows)."
        )
