"""`manage.py readyz`: the checks of `/readyz`, for health checks of processes that
serve no HTTP (compose's worker and beat). Exit status 0 when ready, 1 otherwise."""

import json

from django.core.management.base import BaseCommand, CommandError

from apimon.health import readiness


class Command(BaseCommand):
    help = "Check the database, Redis and the background jobs; exit 1 if not ready."

    def handle(self, *args, **options):
        checks = readiness()
        self.stdout.write(json.dumps(checks))
        failed = [name for name, check in checks.items() if not check["ok"]]
        if failed:
            raise CommandError(f"not ready: {', '.join(failed)}")
