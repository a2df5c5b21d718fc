"""The Celery app. Broker: Redis when REDIS_URL is set, else Kombu's filesystem
transport (see settings). Every periodic schedule of apimon lives in BEAT_SCHEDULE below.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apimon.settings")

app = Celery("apimon")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The one place that holds apimon's periodic jobs. Each entry names a task that
# takes no arguments and is safe to run twice at once.
BEAT_SCHEDULE: dict[str, dict] = {
    "heartbeat": {"task": "apimon.tasks.heartbeat", "schedule": 60.0},
    # Gateway counters → UsageRecord; exact however often it runs (docs/metering.md).
    "gateway-flush-usage": {"task": "gateway.tasks.flush_usage", "schedule": 3.0},
    "gateway-quota-alerts": {
        "task": "gateway.tasks.send_quota_alerts",
        "schedule": 30.0,
    },
    # Close due periods, write and push invoices (billing.services.billing_tick).
    "billing-run": {"task": "billing.tasks.run_billing", "schedule": 60.0},
    # ON_HOLD past its grace period → BLOCKED.
    "billing-dunning": {"task": "billing.tasks.run_dunning", "schedule": 60.0},
    # Paid platform plans past due beyond PLATFORM_PLAN_GRACE_DAYS → the trial plan.
    "billing-platform-dunning": {
        "task": "billing.tasks.run_platform_dunning",
        "schedule": 60.0,
    },
    # Compare the Stripe catalog of every connected account with apimon's records.
    "reconcile-catalogs": {
        "task": "billing.tasks.reconcile_catalogs",
        "schedule": 3600.0,
    },
}
app.conf.beat_schedule = BEAT_SCHEDULE


@app.on_after_configure.connect
def _make_queue_folders(sender, **kwargs) -> None:  # pragma: no cover - start-up glue
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)
